"""`depictiod migrate` round trip between a DuckDB file and DuckLake, checked over a live `depictiod serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.test_backup_live import (
    COLLECTIONS,
    COMMAND_DEADLINE_SECONDS,
    DASHBOARD_ID,
    PENGUINS_PROJECT_ID,
    _prepare_service,
    _read_routes,
    _responses,
    _run,
    _sign_in,
)
from tests.e2e.test_live_server import API, PASSWORD, LiveServer, _free_port, _stop_server, _wait_until_healthy
from tests.examples import BUNDLED_PENGUINS_WORKFLOW_ID, copy_bundled_examples
from tests.postgres import PostgresCluster

OTHER_USER = "analyst@example.org"


def _write_settings(root: Path, projects: list[Path], catalog: dict[str, str], port: int) -> Path:
    listed = ", ".join(f'"{path}"' for path in projects)
    lines = "".join(f'{key} = "{value}"\n' for key, value in catalog.items())
    settings = root / "depictio.toml"
    settings.write_text(
        f"projects = [{listed}]\n[server]\nport = {port}\n[catalog]\n{lines}"
        f'[auth]\nkey_file = "{root / "auth.key"}"\nadmin_email = "admin@example.org"\n'
        "[ingest]\nreconcile_seconds = 0\nsettle_seconds = 0\n",
        encoding="utf-8",
    )
    return settings


def _serve(root: Path, projects: list[Path], catalog: dict[str, str]) -> LiveServer:
    """Start `depictiod serve` on the catalog that `catalog` ([catalog] settings) describes, on a free port."""
    port = _free_port()
    settings = _write_settings(root, projects, catalog, port)
    log = root / "server.log"
    with log.open("a") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "depictiod", "serve", "--config", str(settings)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "DEPICTIO_ADMIN_PASSWORD": PASSWORD},
            text=True,
        )
    return LiveServer(process, f"http://127.0.0.1:{port}", log)


def _read_all(server: LiveServer, headers: dict[str, str], routes: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """Return every read route's response and the scan reports of a service that has finished starting."""
    _wait_until_healthy(server)
    responses = _responses(server, headers, routes)
    scans = httpx.get(f"{server.base_url}{API}/scans", params={"limit": 500}, headers=headers, timeout=30).json()
    # A dashboard export carries the time of its request.
    responses[f"dashboards/{DASHBOARD_ID}/json?{{}}"][1].pop("_export_timestamp")
    return responses, scans["scans"]


def test_round_trip_serves_same_responses(
    tmp_path: Path, postgres_cluster: PostgresCluster, postgres_database: str
) -> None:
    root = tmp_path / "site"
    root.mkdir()
    projects = copy_bundled_examples(root)
    original = root / "catalog.duckdb"
    returned = root / "returned.duckdb"
    file_catalog = {"path": str(original)}
    lake_catalog = {
        "backend": "ducklake",
        "path": str(original),
        "postgres": postgres_cluster.dsn(postgres_database),
        "data_path": str(root / "lake-data"),
        "metadata_schema": "site",
    }
    settings = _write_settings(root, projects, file_catalog, _free_port())
    # A second user besides the administrator; the first start creates no administrator once a user exists.
    for email, password, options in (
        (OTHER_USER, "analyst-password-1", []),
        ("admin@example.org", PASSWORD, ["--admin"]),
    ):
        added = subprocess.run(
            [sys.executable, "-m", "depictiod", "users", "add", email, *options, "--config", str(settings)],
            input=password + "\n",
            capture_output=True,
            text=True,
            timeout=COMMAND_DEADLINE_SECONDS,
        )
        assert added.returncode == 0, added.stderr

    first = _serve(root, projects, file_catalog)
    try:
        _wait_until_healthy(first)
        headers = {"Authorization": f"Bearer {_sign_in(first)}"}
        _prepare_service(first, headers)
        token = httpx.post(
            f"{first.base_url}{API}/auth/me/tokens", json={"name": "nightly script"}, headers=headers, timeout=30
        )
        assert token.status_code == 200, token.text
        runs = httpx.get(f"{first.base_url}{API}/runs/list/{BUNDLED_PENGUINS_WORKFLOW_ID}", headers=headers, timeout=30)
        project = httpx.get(
            f"{first.base_url}{API}/projects/get/from_id", params={"project_id": PENGUINS_PROJECT_ID}, headers=headers
        )
        files = httpx.get(f"{first.base_url}{API}/files/list/{COLLECTIONS[0]}", headers=headers, timeout=30)
        routes = _read_routes(project.json()["name"], runs.json()[0]["_id"], files.json()[0]["_id"])
        before, scans_before = _read_all(first, headers, routes)
    finally:
        _stop_server(first)

    to_lake = _run(
        "migrate",
        "--config",
        str(settings),
        "--to",
        "ducklake",
        "--postgres",
        lake_catalog["postgres"],
        "--data-path",
        lake_catalog["data_path"],
        "--metadata-schema",
        lake_catalog["metadata_schema"],
    )
    assert to_lake.returncode == 0, to_lake.stderr
    assert "every table matches" in to_lake.stdout
    assert f"the uploaded files stay in {original}.uploads" in to_lake.stdout

    on_lake = _serve(root, projects, lake_catalog)
    try:
        from_lake, scans_on_lake = _read_all(on_lake, headers, routes)
    finally:
        _stop_server(on_lake)
    assert "attached DuckLake catalog" in on_lake.log.read_text()

    to_file = _run("migrate", "--config", str(settings), "--to", "duckdb", "--path", str(returned))
    assert to_file.returncode == 0, to_file.stderr
    assert "every table matches" in to_file.stdout
    assert f"copied 1 uploaded files to {returned}.uploads" in to_file.stdout

    back = _serve(root, projects, {"path": str(returned)})
    try:
        after, scans_after = _read_all(back, headers, routes)
    finally:
        _stop_server(back)

    # The uploaded file was copied to the uploads folder of the returned catalog file.
    moved = json.loads(json.dumps(before).replace(f"{original}.uploads", f"{returned}.uploads"))
    for request in before:
        assert from_lake[request] == before[request], request
        assert after[request] == moved[request], request
    # Every route returned 200, so equal responses mean equal data.
    failed = [request for request, response in before.items() if request != "/health" and response[0] != 200]
    assert failed == []
    users = before["auth/list?{}"][1]
    assert sorted(user["email"] for user in users) == ["admin@example.org", OTHER_USER]
    assert "nightly script" in json.dumps(before["auth/list_tokens?{}"][1])
    # Each start scans again, adding reports; the earlier reports moved with the catalog.
    assert all(report in scans_on_lake for report in scans_before)
    assert all(report in scans_after for report in scans_on_lake)
