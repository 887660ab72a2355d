"""Field failures that concern the running service, checked against `depictiod serve` over HTTP.

Entry 1 (a scan that finds nothing), entry 2 (several collections in one workflow) and
entry 12 (one writer process, concurrent readers) of the field-failure list. The other
entries are in tests/ingestor/test_field_failures.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
import yaml

from tests.e2e.test_live_server import (
    API,
    PASSWORD,
    START_DEADLINE_SECONDS,
    LiveServer,
    _free_port,
    _start_server,
    _stop_server,
    _wait_until_healthy,
)
from tests.ingestor.helpers import table_collection, write_file

# Ids written into the project files, so the tests can address them.
COLLECTIONS_PROJECT = "6f0000000000000000000001"
STATS_ID = "6f0000000000000000000003"
GENES_ID = "6f0000000000000000000004"
LARGE_PROJECT = "6f0000000000000000000011"
LARGE_TABLE_ID = "6f0000000000000000000013"
MISROOTED_PROJECT = "6f0000000000000000000021"
# Rows of the file written while readers query the table.
LARGE_ROWS = 1_000_000
CONCURRENT_REQUESTS = 50
# Seconds allowed for a new run to reach the catalog, and for a large file to be ingested.
CHANGE_DEADLINE_SECONDS = 60


def _write_project(
    folder: Path, name: str, ids: list[str], collections: list[dict[str, Any]], location: str = "data"
) -> Path:
    """Write a one-workflow project with fixed ids: project, workflow, then one per collection."""
    (folder / location).mkdir(parents=True, exist_ok=True)
    for collection, collection_id in zip(collections, ids[2:], strict=True):
        collection["id"] = collection_id
    project = {
        "id": ids[0],
        "name": name,
        "workflows": [
            {
                "id": ids[1],
                "name": "pipeline",
                "engine": {"name": "nextflow"},
                "data_location": {"structure": "sequencing-runs", "locations": [location], "runs_regex": "^run_"},
                "data_collections": collections,
            }
        ],
    }
    path = folder / "project.yaml"
    path.write_text(yaml.safe_dump(project, sort_keys=False), encoding="utf-8")
    return path


def _publish(path: Path, text: str) -> None:
    """Write `text` under a temporary name, then rename it into place, as pipelines publish."""
    partial = write_file(path.with_name(path.name + ".part"), text)
    os.replace(partial, path)


def _projects(root: Path) -> list[Path]:
    collections = root / "collections"
    for run in (1, 2, 3):
        write_file(collections / "data" / f"run_{run}" / "qc" / "stats.tsv", f"sample\treads\nS{run}\t{run}\n")
        write_file(collections / "data" / f"run_{run}" / "counts" / "genes.tsv", f"gene\tcount\nG{run}\t{run}\n")
    large = root / "large"
    write_file(large / "data" / "run_1" / "t.csv", "id,value\n" + "".join(f"{i},{i}.5\n" for i in range(10)))
    misrooted = root / "misrooted"
    write_file(misrooted / "projA" / "run_A" / "tables" / "stats.tsv", "sample\treads\nS1\t1\n")
    return [
        _write_project(
            collections,
            "two-collections",
            [COLLECTIONS_PROJECT, "6f0000000000000000000002", STATS_ID, GENES_ID],
            [table_collection("stats", r"stats\.tsv$", "tsv"), table_collection("genes", r"genes\.tsv$", "tsv")],
        ),
        _write_project(
            large,
            "large-file",
            [LARGE_PROJECT, "6f0000000000000000000012", LARGE_TABLE_ID],
            [table_collection("t", r"t\.csv$")],
        ),
        _write_project(
            misrooted,
            "misrooted",
            [MISROOTED_PROJECT, "6f0000000000000000000022", "6f0000000000000000000023"],
            [table_collection("stats", r"stats\.tsv$", "tsv")],
            location="projA/run_A",
        ),
    ]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("field-failures")
    server = _start_server(root, _projects(root))
    try:
        _wait_until_healthy(server)
        yield server
    finally:
        _stop_server(server)


@pytest.fixture(scope="module")
def headers(live: LiveServer) -> dict[str, str]:
    login = httpx.post(
        f"{live.base_url}{API}/auth/login", data={"username": "admin@example.org", "password": PASSWORD}, timeout=10
    )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def _get(live: LiveServer, headers: dict[str, str], path: str, **params: Any) -> Any:
    response = httpx.get(f"{live.base_url}{API}{path}", params=params, headers=headers, timeout=30)
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
    return response.json()


def _run_tags(live: LiveServer, headers: dict[str, str], collection_id: str) -> list[str]:
    return sorted(file["run_tag"] for file in _get(live, headers, f"/files/list/{collection_id}"))


# Entry 1


def test_misrooted_location_reported_over_http(live: LiveServer, headers: dict[str, str]) -> None:
    # Entry 1: the scan report names the location, the pattern and what is there.
    page = _get(live, headers, "/scans", project_id=MISROOTED_PROJECT)

    [report] = page["scans"]
    assert report["collections"][0]["status"] == "no_files"
    run_warnings = [warning for warning in report["warnings"] if warning.startswith("no subfolder of location")]
    assert len(run_warnings) == 1
    assert "projA/run_A" in run_warnings[0]
    assert "'^run_'" in run_warnings[0]
    assert "tables/" in run_warnings[0]
    assert run_warnings[0] in live.log.read_text()


def test_complete_project_reports_no_warning(live: LiveServer, headers: dict[str, str]) -> None:
    # Entry 1: a project whose every file matched raises no warning at start.
    page = _get(live, headers, "/scans", project_id=LARGE_PROJECT)

    startup = page["scans"][-1]
    assert startup["trigger"] == "startup"
    assert startup["warnings"] == []
    assert [collection["status"] for collection in startup["collections"]] == ["ok"]


# Entry 2


def test_new_run_reaches_every_collection(live: LiveServer, headers: dict[str, str]) -> None:
    # Entry 2: the service starts on three runs, then run_4 arrives with one file per collection.
    data = Path(_get(live, headers, "/files/list/" + STATS_ID)[0]["file_location"]).parents[2]
    assert _run_tags(live, headers, STATS_ID) == ["run_1", "run_2", "run_3"]
    (data / "run_4" / "qc").mkdir(parents=True)
    (data / "run_4" / "counts").mkdir()
    _publish(data / "run_4" / "qc" / "stats.tsv", "sample\treads\nS4\t4\n")
    _publish(data / "run_4" / "counts" / "genes.tsv", "gene\tcount\nG4\t4\n")

    every_run = ["run_1", "run_2", "run_3", "run_4"]
    deadline = time.monotonic() + CHANGE_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        found = {collection: _run_tags(live, headers, collection) for collection in (STATS_ID, GENES_ID)}
        if found == {STATS_ID: every_run, GENES_ID: every_run}:
            break
        time.sleep(0.2)

    assert _run_tags(live, headers, STATS_ID) == every_run
    assert _run_tags(live, headers, GENES_ID) == every_run
    runs = _get(live, headers, "/runs/list/6f0000000000000000000002")
    assert sorted(run["run_tag"] for run in runs) == every_run
    latest = _get(live, headers, "/scans", project_id=COLLECTIONS_PROJECT)["scans"][0]
    assert {collection["tag"]: collection["files"] for collection in latest["collections"]} == {"stats": 4, "genes": 4}


# Entry 12


def _total_rows(live: LiveServer, headers: dict[str, str]) -> tuple[int, int]:
    """Return (HTTP status, total rows) of a preview of the large collection's table."""
    response = httpx.get(
        f"{live.base_url}{API}/deltatables/preview/{LARGE_TABLE_ID}", params={"limit": 5}, headers=headers, timeout=60
    )
    total = response.json().get("total_rows", -1) if response.status_code == 200 else -1
    return response.status_code, int(total)


def test_reads_during_ingest_see_committed_rows(live: LiveServer, headers: dict[str, str]) -> None:
    # Entry 12: 50 concurrent readers while a million-row file is ingested see the old or the new table.
    data = Path(_get(live, headers, f"/files/list/{LARGE_TABLE_ID}")[0]["file_location"]).parents[1]
    assert _total_rows(live, headers) == (200, 10)
    (data / "run_2").mkdir()
    _publish(data / "run_2" / "t.csv", "id,value\n" + "".join(f"{i},{i}.5\n" for i in range(LARGE_ROWS)))

    answers: list[tuple[int, int]] = []
    deadline = time.monotonic() + CHANGE_DEADLINE_SECONDS
    with ThreadPoolExecutor(max_workers=CONCURRENT_REQUESTS) as pool:
        while time.monotonic() < deadline:
            batch = list(pool.map(lambda _: _total_rows(live, headers), range(CONCURRENT_REQUESTS)))
            answers += batch
            if all(total == 10 + LARGE_ROWS for _, total in batch):
                break

    assert {status for status, _ in answers} == {200}
    # Readers that overlapped the ingest saw the previous table, never a part of the new rows.
    assert {total for _, total in answers} == {10, 10 + LARGE_ROWS}
    assert answers[-1] == (200, 10 + LARGE_ROWS)
    assert live.process.poll() is None
    assert "Traceback" not in live.log.read_text()


def test_second_service_stops_with_pid(live: LiveServer) -> None:
    # Entry 12: a second `depictiod serve` on the same catalog stops at once and names the owner.
    settings = live.log.parent / "depictio.toml"

    second = subprocess.run(
        [sys.executable, "-m", "depictiod", "serve", "--config", str(settings), "--port", str(_free_port())],
        capture_output=True,
        text=True,
        timeout=START_DEADLINE_SECONDS,
        env={**os.environ, "DEPICTIO_ADMIN_PASSWORD": PASSWORD},
    )

    assert second.returncode == 1
    assert f"in use by PID {live.process.pid}" in second.stderr
    assert "Traceback" not in second.stderr + second.stdout
    assert httpx.get(f"{live.base_url}/health", timeout=10).status_code == 200


def test_other_duckdb_client_is_refused(live: LiveServer) -> None:
    # Entry 12: opening the catalog with another DuckDB client fails there; the service keeps serving.
    catalog_path = live.log.parent / "catalog.duckdb"

    with pytest.raises(duckdb.IOException) as caught:
        duckdb.connect(str(catalog_path), read_only=True)

    assert f"PID {live.process.pid}" in str(caught.value)
    assert httpx.get(f"{live.base_url}/health", timeout=10).status_code == 200
    assert live.process.poll() is None
