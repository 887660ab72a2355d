"""`depictiod serve` as a real process on loopback, driven over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.examples import (
    BUNDLED_PHYSICAL_FEATURES_ID,
    PHYSICAL_FEATURES_ID,
    copy_all_examples,
    copy_bundled_examples,
    require_examples,
    shared_examples_available,
    write_settings,
)

API = "/depictio/api/v1"
PASSWORD = "live-server-password"
START_DEADLINE_SECONDS = 60
STOP_DEADLINE_SECONDS = 30


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LiveServer:
    def __init__(self, process: subprocess.Popen[str], base_url: str, log: Path) -> None:
        self.process = process
        self.base_url = base_url
        self.log = log


def _wait_until_healthy(server: LiveServer) -> None:
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"depictiod exited with {server.process.returncode}:\n{server.log.read_text()}")
        try:
            if httpx.get(f"{server.base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"depictiod did not answer /health within {START_DEADLINE_SECONDS} s:\n{server.log.read_text()}")


def _start_server(root: Path, projects: list[Path]) -> LiveServer:
    """Start `depictiod serve` over `projects` on a free port, logging to root/server.log."""
    port = _free_port()
    settings = write_settings(root, projects, port=port)
    log = root / "server.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "depictiod", "serve", "--config", str(settings)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "DEPICTIO_ADMIN_PASSWORD": PASSWORD},
            text=True,
        )
    return LiveServer(process, f"http://127.0.0.1:{port}", log)


def _stop_server(server: LiveServer, stop_signal: int = signal.SIGINT) -> None:
    """Send `stop_signal` and wait for the process; kill it when it outlives the deadline."""
    if server.process.poll() is None:
        server.process.send_signal(stop_signal)
    try:
        server.process.wait(timeout=STOP_DEADLINE_SECONDS)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=STOP_DEADLINE_SECONDS)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("live")
    server = _start_server(root, copy_all_examples(root))
    try:
        _wait_until_healthy(server)
        yield server
    finally:
        _stop_server(server)


def test_login_list_and_preview_over_http(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.base_url, timeout=10) as client:
        login = client.post(f"{API}/auth/login", data={"username": "admin@example.org", "password": PASSWORD})
        assert login.status_code == 200
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

        projects = client.get(f"{API}/projects/get/all", headers=headers)
        assert projects.status_code == 200
        assert len(projects.json()) == (5 if shared_examples_available() else 2)

        preview = client.get(
            f"{API}/deltatables/preview/{BUNDLED_PHYSICAL_FEATURES_ID}", params={"limit": 5}, headers=headers
        )
        assert preview.status_code == 200
        assert len(preview.json()["rows"]) == 5
        assert preview.json()["total_rows"] == 344


def test_depictio_penguins_over_http(live_server: LiveServer) -> None:
    require_examples()
    with httpx.Client(base_url=live_server.base_url, timeout=10) as client:
        login = client.post(f"{API}/auth/login", data={"username": "admin@example.org", "password": PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

        preview = client.get(
            f"{API}/deltatables/preview/{PHYSICAL_FEATURES_ID}", params={"limit": 1000}, headers=headers
        )

        assert preview.status_code == 200
        assert preview.json()["total_rows"] == 342
        assert sorted({row["depictio_run_id"] for row in preview.json()["rows"]}) == [
            "run_1_adelie",
            "run_2_chinstrap",
            "run_3_gentoo",
        ]


def test_unauthenticated_request_gets_401_over_http(live_server: LiveServer) -> None:
    response = httpx.get(f"{live_server.base_url}{API}/projects/get/all", timeout=10)
    assert response.status_code == 401
    assert set(response.json()) == {"status_code", "detail"}


def test_log_has_one_line_per_project(live_server: LiveServer) -> None:
    log = live_server.log.read_text()
    assert log.count("scanned project") == (5 if shared_examples_available() else 2)
    assert PASSWORD not in log


def test_ctrl_c_stops_cleanly(tmp_path: Path) -> None:
    server = _start_server(tmp_path, copy_bundled_examples(tmp_path))
    try:
        _wait_until_healthy(server)
    finally:
        _stop_server(server)
    process, log = server.process, server.log

    text = log.read_text()
    assert process.returncode == 0, text
    assert "depictiod stopped" in text
    assert "closed catalog" in text
    assert "Traceback" not in text


def test_sigterm_during_startup_scan_stops_cleanly(tmp_path: Path) -> None:
    projects = copy_bundled_examples(tmp_path)
    # Enough files that the start-up scan is still running when the signal arrives.
    for run in range(400):
        folder = tmp_path / "bundled" / "penguins" / "data" / f"run_9{run:03d}"
        folder.mkdir()
        (folder / "physical_features.csv").write_text(f"individual_id,bill_length_mm\nx{run},{run}.5\n")
    server = _start_server(tmp_path, projects)
    try:
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        while "created catalog" not in server.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        _stop_server(server, signal.SIGTERM)
    process, log = server.process, server.log

    text = log.read_text()
    assert process.returncode in (0, 130), text
    assert "Traceback" not in text
    assert "closed catalog" in text


def test_users_command_refuses_catalog_of_running_service(live_server: LiveServer) -> None:
    settings = live_server.log.parent / "depictio.toml"

    result = subprocess.run(
        [sys.executable, "-m", "depictiod", "users", "list", "--config", str(settings)],
        capture_output=True,
        text=True,
        timeout=START_DEADLINE_SECONDS,
    )

    assert result.returncode == 1
    assert "stop it first" in result.stderr
    assert "Traceback" not in result.stderr


def _sign_in(base_url: str) -> dict[str, str]:
    response = httpx.post(
        f"{base_url}{API}/auth/login", data={"username": "admin@example.org", "password": PASSWORD}, timeout=10
    )
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def _get_me(base_url: str, token: str) -> httpx.Response:
    return httpx.get(f"{base_url}{API}/auth/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def _restart(server: LiveServer, root: Path, projects: list[Path]) -> LiveServer:
    _stop_server(server)
    assert server.process.returncode == 0, server.log.read_text()
    restarted = _start_server(root, projects)
    _wait_until_healthy(restarted)
    return restarted


def test_tokens_survive_restart_until_key_rotation(tmp_path: Path) -> None:
    projects = copy_bundled_examples(tmp_path)
    server = _start_server(tmp_path, projects)
    try:
        _wait_until_healthy(server)
        before = _sign_in(server.base_url)

        server = _restart(server, tmp_path, projects)
        after_restart = _get_me(server.base_url, before["access_token"])
        refreshed = httpx.post(
            f"{server.base_url}{API}/auth/refresh", json={"refresh_token": before["refresh_token"]}, timeout=10
        )

        # A new signing key: every token signed with the old one must stop working.
        key = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        (tmp_path / "auth.key").write_bytes(key)
        server = _restart(server, tmp_path, projects)
        after_rotation = _get_me(server.base_url, refreshed.json()["access_token"])
        refresh_after_rotation = httpx.post(
            f"{server.base_url}{API}/auth/refresh",
            json={"refresh_token": refreshed.json()["refresh_token"]},
            timeout=10,
        )
        after_new_sign_in = _get_me(server.base_url, _sign_in(server.base_url)["access_token"])
    finally:
        _stop_server(server)

    assert after_restart.status_code == 200
    assert refreshed.status_code == 200
    assert after_rotation.status_code == 401
    assert set(after_rotation.json()) == {"status_code", "detail"}
    assert after_rotation.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert refresh_after_rotation.status_code == 401
    assert set(refresh_after_rotation.json()) == {"status_code", "detail"}
    assert after_new_sign_in.status_code == 200
