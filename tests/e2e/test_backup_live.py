"""`depictiod backup` and `depictiod restore` against a live `depictiod serve` on loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
import yaml

from api import create_app
from catalog import Catalog, verify_backup
from config import Settings
from tests.e2e.test_live_server import (
    API,
    PASSWORD,
    LiveServer,
    _start_server,
    _stop_server,
    _wait_until_healthy,
)
from tests.examples import (
    BUNDLED_PENGUINS_WORKFLOW_ID,
    BUNDLED_PHYSICAL_FEATURES_ID,
    copy_bundled_examples,
    write_settings,
)

COMMAND_DEADLINE_SECONDS = 120
# The growing project of the ingest test: its ids, runs at start and added while backups run.
GROWING_PROJECT_ID = "6b0000000000000000000001"
GROWING_WORKFLOW_ID = "6b0000000000000000000002"
MEASURES_ID = "6b0000000000000000000003"
FIRST_RUNS = 5
ADDED_RUNS = 60
ROWS_PER_FILE = 200
# Seconds between two added runs: the runs keep coming for about 6 s, while the backups run.
PUBLISH_INTERVAL_SECONDS = 0.1
BACKUPS_DURING_INGEST = 3
INGEST_DEADLINE_SECONDS = 90

# The bundled examples, for the test that compares every read route before and after a restore.
PENGUINS_PROJECT_ID = "6a0001000000000000000001"
IRIS_PROJECT_ID = "6a0002000000000000000001"
IRIS_WORKFLOW_ID = "6a0002000000000000000002"
COLLECTIONS = [
    "6a0001000000000000000003",
    "6a0001000000000000000004",
    "6a0001000000000000000005",
    "6a0002000000000000000003",
]
DASHBOARD_ID = "6c0000000000000000000001"
UPLOAD = "individual_id,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g\nuploaded_001,40.1,18.2,190,3800\n"

# GET routes whose responses may differ after a restore, and why.
NOT_COMPARED = {
    # A stream of changes from now on, not a stored response.
    f"{API}/events",
    # The service's own scans since it started, and the time of its last backup.
    f"{API}/utils/status",
    # Compared separately: the restored service adds the reports of its start-up scan.
    f"{API}/scans",
    # The report of the project's last scan, which is the restored service's start-up scan.
    f"{API}/projects/ingestion-report/{{project_id:str}}",
}


def _run(*arguments: str, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "depictiod", *arguments],
        capture_output=True,
        text=True,
        timeout=COMMAND_DEADLINE_SECONDS,
        env={**os.environ, **(environ or {})},
    )


def _sign_in(server: LiveServer) -> str:
    response = httpx.post(
        f"{server.base_url}{API}/auth/login", data={"username": "admin@example.org", "password": PASSWORD}, timeout=30
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _write_growing_project(root: Path) -> Path:
    project = {
        "id": GROWING_PROJECT_ID,
        "name": "growing",
        "workflows": [
            {
                "id": GROWING_WORKFLOW_ID,
                "name": "pipeline",
                "engine": {"name": "nextflow"},
                "data_location": {"structure": "sequencing-runs", "locations": ["data"], "runs_regex": "^run_"},
                "data_collections": [
                    {
                        "id": MEASURES_ID,
                        "data_collection_tag": "measures",
                        "config": {
                            "type": "table",
                            "scan": {
                                "mode": "recursive",
                                "scan_parameters": {"regex_config": {"pattern": "measures.csv"}},
                            },
                            "dc_specific_properties": {"format": "csv"},
                        },
                    }
                ],
            }
        ],
    }
    path = root / "project.yaml"
    path.write_text(yaml.safe_dump(project, sort_keys=False), encoding="utf-8")
    for run in range(FIRST_RUNS):
        _publish_run(root, run)
    return path


def _publish_run(root: Path, run: int) -> None:
    """Write one run's measures.csv under a temporary name, then rename it, as pipelines publish."""
    folder = root / "data" / f"run_{run:03d}"
    folder.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{run}-{index},{run * index % 997}\n" for index in range(ROWS_PER_FILE))
    partial = folder / "measures.csv.part"
    partial.write_text("sample,value\n" + rows, encoding="utf-8")
    os.replace(partial, folder / "measures.csv")


def _check_consistent(database: Path) -> int:
    """Check that each table matches its catalog records in a backup; return the rows of the measures table."""
    connection = duckdb.connect(str(database), read_only=True)
    try:
        tables = connection.execute(
            "SELECT data_collection_id, table_name, row_count FROM aggregated_tables"
        ).fetchall()
        for _, table_name, row_count in tables:
            counted = connection.execute(f"SELECT count(*) FROM {table_name}").fetchall()[0][0]
            assert counted == row_count, f"{table_name}: {counted} rows, aggregated_tables says {row_count}"
            per_file = connection.execute(
                f"SELECT t.depictio_file_id, count(*), any_value(f.row_count) FROM {table_name} t "
                "LEFT JOIN files f ON f.id = t.depictio_file_id GROUP BY t.depictio_file_id"
            ).fetchall()
            for file_id, rows, recorded in per_file:
                assert rows == recorded, f"{table_name}: file {file_id} has {rows} rows, its record says {recorded}"
        measures = [row[2] for row in tables if row[0] == MEASURES_ID]
        return int(measures[0]) if measures else 0
    finally:
        connection.close()


def _measures_rows(server: LiveServer, headers: dict[str, str]) -> int:
    response = httpx.get(f"{server.base_url}{API}/deltatables/shape/{MEASURES_ID}", headers=headers, timeout=30)
    return int(response.json()["num_rows"]) if response.status_code == 200 else 0


def test_backup_during_ingest_is_consistent(tmp_path: Path) -> None:
    root = tmp_path / "service"
    root.mkdir()
    server = _start_server(root, [_write_growing_project(root)])
    stop = threading.Event()
    try:
        _wait_until_healthy(server)
        token = _sign_in(server)
        headers = {"Authorization": f"Bearer {token}"}

        def publish_runs() -> None:
            for run in range(FIRST_RUNS, FIRST_RUNS + ADDED_RUNS):
                _publish_run(root, run)
                time.sleep(PUBLISH_INTERVAL_SECONDS)

        def scan_again() -> None:
            while not stop.is_set():
                httpx.post(f"{server.base_url}{API}/projects/{GROWING_PROJECT_ID}/scan", headers=headers, timeout=60)

        writers = [threading.Thread(target=publish_runs), threading.Thread(target=scan_again)]
        for writer in writers:
            writer.start()
        folders = []
        try:
            for number in range(BACKUPS_DURING_INGEST):
                folder = tmp_path / f"backup-{number}"
                result = _run(
                    "backup",
                    "--config",
                    str(root / "depictio.toml"),
                    "--to",
                    str(folder),
                    environ={"DEPICTIO_TOKEN": token},
                )
                assert result.returncode == 0, result.stderr
                assert "made by the service at" in result.stdout
                folders.append(folder)
        finally:
            stop.set()
            for writer in writers:
                writer.join(timeout=INGEST_DEADLINE_SECONDS)

        final_rows = (FIRST_RUNS + ADDED_RUNS) * ROWS_PER_FILE
        deadline = time.monotonic() + INGEST_DEADLINE_SECONDS
        while _measures_rows(server, headers) < final_rows and time.monotonic() < deadline:
            httpx.post(f"{server.base_url}{API}/projects/{GROWING_PROJECT_ID}/scan", headers=headers, timeout=60)
        assert _measures_rows(server, headers) == final_rows
    finally:
        stop.set()
        _stop_server(server)

    counts = []
    for folder in folders:
        manifest = verify_backup(str(folder))
        rows = _check_consistent(folder / "catalog.duckdb")
        assert rows % ROWS_PER_FILE == 0, f"{folder}: {rows} rows is not a whole number of files"
        assert {f"{table.schema}.{table.table}": table.rows for table in manifest.tables}[
            f"data.dc_{MEASURES_ID}"
        ] == rows
        counts.append(rows)
    assert counts == sorted(counts)
    assert counts[0] < final_rows, "the first backup came after the whole ingest, so it proves nothing"


def _read_routes(project_name: str, run_id: str, file_id: str) -> dict[str, list[tuple[str, dict[str, str]]]]:
    """Return the requests that read each GET route of the API: path and query parameters."""
    per_collection = {
        "datacollections/get_tag_from_id/{data_collection_id:str}": {},
        "datacollections/specs/{data_collection_id:str}": {},
        "datacollections/{data_collection_id:str}/export": {"format": "csv"},
        "datacollections/{data_collection_id:str}/rows": {"limit": "1000"},
        "deltatables/get/{data_collection_id:str}": {},
        "deltatables/preview/{data_collection_id:str}": {"limit": "1000"},
        "deltatables/shape/{data_collection_id:str}": {},
        "deltatables/specs/{data_collection_id:str}": {},
        "deltatables/unique_values/{data_collection_id:str}": {"column": "depictio_run_id"},
        "files/list/{data_collection_id:str}": {"details": "true"},
    }
    routes: dict[str, list[tuple[str, dict[str, str]]]] = {
        f"{API}/{template}": [
            (template.replace("{data_collection_id:str}", collection_id), query) for collection_id in COLLECTIONS
        ]
        for template, query in per_collection.items()
    }
    single = {
        "auth/list": ("auth/list", {}),
        "auth/list_tokens": ("auth/list_tokens", {}),
        "auth/me": ("auth/me", {}),
        "dashboards/get/{dashboard_id:str}": (f"dashboards/get/{DASHBOARD_ID}", {}),
        "dashboards/list": ("dashboards/list", {}),
        "dashboards/{dashboard_id:str}/json": (f"dashboards/{DASHBOARD_ID}/json", {}),
        "dashboards/{dashboard_id:str}/yaml": (f"dashboards/{DASHBOARD_ID}/yaml", {}),
        "projects/get/all": ("projects/get/all", {}),
        "projects/get/from_id": ("projects/get/from_id", {"project_id": PENGUINS_PROJECT_ID}),
        "projects/get/from_name/{project_name:path}": (f"projects/get/from_name/{project_name}", {}),
        "runs/get/{run_id:str}": (f"runs/get/{run_id}", {}),
        "runs/{run_id:str}/archive": (f"runs/{run_id}/archive", {}),
        "files/{file_id:str}/content": (f"files/{file_id}/content", {}),
        "runs/list/{workflow_id:str}": (f"runs/list/{BUNDLED_PENGUINS_WORKFLOW_ID}", {}),
        "workflows/get/from_args": ("workflows/get/from_args", {"name": "iris_workflow", "engine": "python"}),
        "workflows/get/from_id": ("workflows/get/from_id", {"workflow_id": IRIS_WORKFLOW_ID}),
        "workflows/get_all_workflows": ("workflows/get_all_workflows", {}),
        "workflows/get_tag_from_id/{workflow_id:str}": (f"workflows/get_tag_from_id/{IRIS_WORKFLOW_ID}", {}),
    }
    routes.update({f"{API}/{template}": [request] for template, request in single.items()})
    return routes


def _api_get_routes() -> set[str]:
    app = create_app(Settings(), [])
    return {
        route.path
        for route in app.routes
        for handler in getattr(route, "route_handlers", [])
        if "GET" in handler.http_methods and route.path.startswith(API)
    }


def _responses(
    server: LiveServer, headers: dict[str, str], routes: dict[str, list[tuple[str, dict[str, str]]]]
) -> dict[str, Any]:
    """Read every request of `routes`; return [status, body] by request, with JSON bodies decoded."""
    responses: dict[str, Any] = {}
    with httpx.Client(base_url=f"{server.base_url}{API}/", headers=headers, timeout=30) as client:
        for requests in routes.values():
            for path, query in requests:
                response = client.get(path, params=query)
                is_json = response.headers.get("content-type", "").startswith("application/json")
                responses[f"{path}?{query}"] = [response.status_code, response.json() if is_json else response.text]
        responses["/health"] = httpx.get(f"{server.base_url}/health", timeout=30).json()
    return responses


def _prepare_service(server: LiveServer, headers: dict[str, str]) -> None:
    """Upload a file into a table and save a dashboard, so the backup has both."""
    uploaded = httpx.post(
        f"{server.base_url}{API}/datacollections/{BUNDLED_PHYSICAL_FEATURES_ID}/append",
        files=[("files", ("extra.csv", UPLOAD.encode()))],
        headers=headers,
        timeout=60,
    )
    assert uploaded.status_code == 200, uploaded.text
    component = {
        "tag": "records",
        "component_type": "table",
        "workflow_tag": "python/penguin_species_analysis",
        "data_collection_tag": "physical_features",
    }
    dashboard = {"title": "Backup check", "project_id": PENGUINS_PROJECT_ID, "components": [component]}
    saved = httpx.post(
        f"{server.base_url}{API}/dashboards/save/{DASHBOARD_ID}", json=dashboard, headers=headers, timeout=30
    )
    assert saved.status_code == 200, saved.text


def test_every_read_route_is_compared() -> None:
    routes = _read_routes("any", "any", "any")

    assert sorted(_api_get_routes() - set(NOT_COMPARED)) == sorted(routes)


def test_restored_catalog_serves_same_responses(tmp_path: Path) -> None:
    first_root = tmp_path / "first"
    first_root.mkdir()
    projects = copy_bundled_examples(first_root)
    backup = tmp_path / "backup"
    first = _start_server(first_root, projects)
    try:
        _wait_until_healthy(first)
        token = _sign_in(first)
        headers = {"Authorization": f"Bearer {token}"}
        _prepare_service(first, headers)
        runs = httpx.get(f"{first.base_url}{API}/runs/list/{BUNDLED_PENGUINS_WORKFLOW_ID}", headers=headers, timeout=30)
        project = httpx.get(
            f"{first.base_url}{API}/projects/get/from_id", params={"project_id": PENGUINS_PROJECT_ID}, headers=headers
        )
        files = httpx.get(f"{first.base_url}{API}/files/list/{COLLECTIONS[0]}", headers=headers, timeout=30)
        routes = _read_routes(project.json()["name"], runs.json()[0]["_id"], files.json()[0]["_id"])
        before = _responses(first, headers, routes)
        scans_before = httpx.get(f"{first.base_url}{API}/scans", params={"limit": 500}, headers=headers).json()
        result = _run(
            "backup",
            "--config",
            str(first_root / "depictio.toml"),
            "--to",
            str(backup),
            environ={"DEPICTIO_TOKEN": token},
        )
        assert result.returncode == 0, result.stderr
    finally:
        _stop_server(first)

    # The restored service signs tokens with the same key, so the first service's token still works.
    second_root = tmp_path / "second"
    second_root.mkdir()
    write_settings(second_root, projects)
    shutil.copy2(first_root / "auth.key", second_root / "auth.key")
    restored = _run("restore", "--config", str(second_root / "depictio.toml"), "--from", str(backup))
    assert restored.returncode == 0, restored.stderr
    second = _start_server(second_root, projects)
    try:
        _wait_until_healthy(second)
        after = _responses(second, headers, routes)
        scans_after = httpx.get(f"{second.base_url}{API}/scans", params={"limit": 500}, headers=headers).json()
        status = httpx.get(f"{second.base_url}{API}/utils/status", headers=headers, timeout=30).json()
    finally:
        _stop_server(second)

    # Uploaded files moved with the catalog, and a dashboard export carries the time of its
    # request; every other byte of every response is the same.
    for responses in (before, after):
        responses[f"dashboards/{DASHBOARD_ID}/json?{{}}"][1].pop("_export_timestamp")
    moved = json.loads(
        json.dumps(before).replace(f"{first_root}/catalog.duckdb.uploads", f"{second_root}/catalog.duckdb.uploads")
    )
    for request in before:
        assert after[request] == moved[request], request
    # Every route answered with data, so equal answers mean equal data.
    failed = [request for request, response in before.items() if request != "/health" and response[0] != 200]
    assert failed == []
    assert all(report in scans_after["scans"] for report in scans_before["scans"])
    assert status["last_backup"]["path"] == str(backup)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Path]]:
    """A live service over the bundled examples, and the settings file it runs with."""
    root = tmp_path_factory.mktemp("running")
    server = _start_server(root, copy_bundled_examples(root))
    try:
        _wait_until_healthy(server)
        yield server, root / "depictio.toml"
    finally:
        _stop_server(server)


def test_restore_rejects_running_service(running: tuple[LiveServer, Path], tmp_path: Path) -> None:
    server, settings = running
    backup = tmp_path / "backup"
    written = _run(
        "backup", "--config", str(settings), "--to", str(backup), environ={"DEPICTIO_TOKEN": _sign_in(server)}
    )
    assert written.returncode == 0, written.stderr

    rejected = _run("restore", "--config", str(settings), "--from", str(backup))

    assert rejected.returncode == 1
    assert f"in use by PID {server.process.pid}" in rejected.stderr
    assert "stop the depictiod service first" in rejected.stderr
    assert httpx.get(f"{server.base_url}/health", timeout=30).status_code == 200
    assert not settings.with_name("catalog.duckdb.before-restore").exists()


def test_backup_command_needs_admin_token(running: tuple[LiveServer, Path], tmp_path: Path) -> None:
    server, settings = running
    backup = tmp_path / "backup"

    without = _run("backup", "--config", str(settings), "--to", str(backup))
    wrong = _run("backup", "--config", str(settings), "--to", str(backup), environ={"DEPICTIO_TOKEN": "not-a-token"})

    assert without.returncode == 1
    assert f"in use by PID {server.process.pid}" in without.stderr
    assert "--token-file" in without.stderr
    assert wrong.returncode == 1
    assert "rejected the backup (401)" in wrong.stderr
    assert not backup.exists()


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A scanned catalog that no service holds, its settings file, and a backup made by the command."""
    root = tmp_path_factory.mktemp("stopped")
    settings = write_settings(root, copy_bundled_examples(root))
    assert _run("scan", "--config", str(settings)).returncode == 0
    backup = root.parent / f"{root.name}-backup"
    written = _run("backup", "--config", str(settings), "--to", str(backup))
    assert written.returncode == 0, written.stderr
    assert "no service was running" in written.stdout
    return settings, backup


@pytest.mark.parametrize("damage", ["changed byte", "truncated"])
def test_restore_command_rejects_damaged_backup(stopped: tuple[Path, Path], tmp_path: Path, damage: str) -> None:
    settings, intact = stopped
    backup = tmp_path / "backup"
    shutil.copytree(intact, backup)
    database = backup / "catalog.duckdb"
    data = database.read_bytes()
    if damage == "changed byte":
        database.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    else:
        database.write_bytes(data[: len(data) // 3])
    catalog = settings.with_name("catalog.duckdb")
    original = catalog.read_bytes()

    checked = _run("restore", "--config", str(settings), "--from", str(backup), "--check")
    rejected = _run("restore", "--config", str(settings), "--from", str(backup))

    expected = "damaged or was changed" if damage == "changed byte" else "truncated or was changed"
    assert checked.returncode == 1
    assert expected in checked.stderr
    assert rejected.returncode == 1
    assert expected in rejected.stderr
    assert catalog.read_bytes() == original


def test_restore_command_checks_intact_backup(stopped: tuple[Path, Path]) -> None:
    settings, backup = stopped

    checked = _run("restore", "--config", str(settings), "--from", str(backup), "--check")

    assert checked.returncode == 0, checked.stderr
    assert f"backup {backup} is valid" in checked.stdout


def test_backup_command_rejects_other_catalog(running: tuple[LiveServer, Path], tmp_path: Path) -> None:
    # These settings name another catalog, held open by this test, so the command asks the
    # service at --url, which holds the catalog of `running` instead.
    server, _ = running
    other = tmp_path / "other"
    other.mkdir()
    other_settings = write_settings(other, copy_bundled_examples(other))
    held = Catalog(str(other / "catalog.duckdb"))
    backup = tmp_path / "backup"
    try:
        written = _run(
            "backup",
            "--config",
            str(other_settings),
            "--to",
            str(backup),
            "--url",
            server.base_url,
            environ={"DEPICTIO_TOKEN": _sign_in(server)},
        )
    finally:
        held.close()

    assert written.returncode == 1
    assert f"not {str(other / 'catalog.duckdb')!r} of these settings" in written.stderr
    assert "the backup in" in written.stderr
    assert "backup written" not in written.stdout


def test_restore_command_warns_about_tokens(stopped: tuple[Path, Path], tmp_path: Path) -> None:
    _, intact = stopped
    root = tmp_path / "restored"
    root.mkdir()
    restored_settings = write_settings(root, [])

    restored = _run("restore", "--config", str(restored_settings), "--from", str(intact))
    shutil.move(root / "catalog.duckdb", root / "first.duckdb")
    shutil.rmtree(root / "catalog.duckdb.uploads", ignore_errors=True)
    revoking = _run("restore", "--config", str(restored_settings), "--from", str(intact), "--revoke-tokens")

    assert restored.returncode == 0, restored.stderr
    assert "warning: users, passwords and tokens are as they were at backup time" in restored.stdout
    assert "--revoke-tokens" in restored.stdout
    assert revoking.returncode == 0, revoking.stderr
    assert "revoked 0 tokens; every user and script must sign in again" in revoking.stdout
    assert "warning: users" not in revoking.stdout
