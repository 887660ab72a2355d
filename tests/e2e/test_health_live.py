"""Liveness, readiness and metrics of a live `depictiod serve` during a slow start-up scan."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_live_server import API, PASSWORD, START_DEADLINE_SECONDS, _start_server, _stop_server
from tests.examples import BUNDLED_PHYSICAL_FEATURES_ID, copy_bundled_examples

# Runs added to the bundled penguins, one small file each, so that the start-up scan is
# still running when the server first responds. The scan took about 9 s, and the server
# listened 0.01 s after the scan began, on the two-core machine where the test was written.
EXTRA_RUNS = 1500
HEADER = "individual_id,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g\n"
# Bound of the whole start-up scan on a busy two-core machine.
READY_DEADLINE_SECONDS = 300
POLL_SECONDS = 0.05


def _add_runs(root: Path) -> None:
    for run in range(EXTRA_RUNS):
        folder = root / "bundled" / "penguins" / "data" / f"run_9{run:04d}"
        folder.mkdir()
        (folder / "physical_features.csv").write_text(f"{HEADER}x{run},{run}.5,18.0,190,4000\n")


def _first_responses(base_url: str, log: Path) -> tuple[httpx.Response, httpx.Response, httpx.Response]:
    """Wait for the first response of /health/live; return it with /health/ready and /health right after."""
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        try:
            live = httpx.get(f"{base_url}/health/live", timeout=5)
        except httpx.TransportError:
            time.sleep(POLL_SECONDS)
            continue
        return live, httpx.get(f"{base_url}/health/ready", timeout=5), httpx.get(f"{base_url}/health", timeout=5)
    pytest.fail(f"depictiod did not respond to /health/live within {START_DEADLINE_SECONDS} s:\n{log.read_text()}")


def _wait_until_ready(base_url: str, log: Path) -> float:
    """Poll /health/ready until it responds 200; return the seconds that took."""
    started = time.monotonic()
    while time.monotonic() - started < READY_DEADLINE_SECONDS:
        if httpx.get(f"{base_url}/health/ready", timeout=5).status_code == 200:
            return time.monotonic() - started
        time.sleep(POLL_SECONDS)
    pytest.fail(f"/health/ready did not turn 200 within {READY_DEADLINE_SECONDS} s:\n{log.read_text()}")


def _metric_total(text: str, name: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


def test_ready_only_after_startup_scan(tmp_path: Path) -> None:
    projects = copy_bundled_examples(tmp_path)
    _add_runs(tmp_path)
    server = _start_server(tmp_path, projects)
    try:
        live, ready, health = _first_responses(server.base_url, server.log)
        _wait_until_ready(server.base_url, server.log)
        health_after = httpx.get(f"{server.base_url}/health", timeout=5)
        login = httpx.post(
            f"{server.base_url}{API}/auth/login",
            data={"username": "admin@example.org", "password": PASSWORD},
            timeout=10,
        )
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        shape = httpx.get(f"{server.base_url}{API}/deltatables/shape/{BUNDLED_PHYSICAL_FEATURES_ID}", headers=headers)
        metrics = httpx.get(f"{server.base_url}/metrics", headers=headers, timeout=10)
    finally:
        _stop_server(server)

    assert live.status_code == 200
    assert ready.status_code == 503, server.log.read_text()
    assert ready.json()["detail"] == "not ready: the start-up scan has not finished"
    assert health.status_code == 503
    assert health.json()["status"] == "starting"
    assert health_after.status_code == 200
    # Once ready, the table has every run of the start-up scan.
    assert shape.status_code == 200
    assert shape.json()["num_rows"] == 344 + EXTRA_RUNS
    assert metrics.status_code == 200
    assert _metric_total(metrics.text, "depictiod_ready") == 1
    assert _metric_total(metrics.text, "depictiod_files_ingested_total") == 7 + EXTRA_RUNS
    assert server.process.returncode == 0, server.log.read_text()
    assert "Traceback" not in server.log.read_text()
