"""`/monitoring/ingestion`: ingestions that a client reports, kept as scan reports of trigger `client`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api import create_app
from api.monitoring import ingestion_out, new_ingestion
from api.monitoring_schemas import MAX_STEPS, MAX_TEXT_CHARS, IngestionStartIn
from catalog import utc_now
from config import load_projects, load_settings
from tests.api.conftest import API, add_user, login
from tests.examples import copy_bundled_examples, write_settings

PASSWORD = "monitoring-test-password"
OWNER = "owner@example.org"
EDITOR = "editor@example.org"
VIEWER = "viewer@example.org"
STRANGER = "stranger@example.org"
PENGUINS = "6a0001000000000000000001"
PENGUINS_NAME = "Palmer penguins (bundled example)"
# A project that the tests register after an ingestion of it started.
LATE_PROJECT = "6a0003000000000000000001"
LATE_NAME = "Iris registered late"
MONITORING = f"{API}/monitoring/ingestion"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("monitoring")
    penguins, iris = copy_bundled_examples(root)
    roles = f"permissions:\n  owners: [{OWNER}]\n  editors: [{EDITOR}]\n  viewers: [{VIEWER}]"
    penguins.write_text(penguins.read_text().replace("is_public: true", f"is_public: false\n{roles}"))
    # A copy of iris with its own ids and name, owned by OWNER. Only a test registers it.
    late = root / "bundled" / "iris" / "late.yaml"
    text = iris.read_text().replace("6a0002", "6a0003").replace("Iris (bundled example)", LATE_NAME)
    late.write_text(text.replace("is_public: true", f"is_public: false\npermissions:\n  owners: [{OWNER}]"))
    write_settings(root, [penguins, iris])
    return root


@pytest.fixture(scope="module")
def client(root: Path) -> Iterator[TestClient]:
    settings = load_settings(str(root / "depictio.toml"), environ={})
    app = create_app(settings, load_projects(settings.projects), admin_password=PASSWORD)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def users(client: TestClient) -> dict[str, dict[str, str]]:
    return {
        "admin": login(client, "admin@example.org", PASSWORD),
        "owner": add_user(client, OWNER, PASSWORD),
        "editor": add_user(client, EDITOR, PASSWORD),
        "viewer": add_user(client, VIEWER, PASSWORD),
        "stranger": add_user(client, STRANGER, PASSWORD),
    }


def _start(client: TestClient, headers: dict[str, str], **fields: Any) -> str:
    body = {"command": "ingest", "cli_version": "1.19.2", **fields}
    response = client.post(f"{MONITORING}/start", json=body, headers=headers)
    assert response.status_code == 200, response.text
    run_id: str = response.json()["run_id"]
    return run_id


def _client_scans(client: TestClient, headers: dict[str, str], project_id: str) -> list[dict[str, Any]]:
    response = client.get(f"{API}/scans", params={"project_id": project_id, "limit": "500"}, headers=headers)
    assert response.status_code == 200, response.text
    return [scan for scan in response.json()["scans"] if scan["trigger"] == "client"]


def _client_scan(client: TestClient, headers: dict[str, str], project_id: str, run_id: str) -> dict[str, Any]:
    found = [scan for scan in _client_scans(client, headers, project_id) if scan["id"] == run_id]
    assert len(found) == 1, f"ingestion {run_id} is listed {len(found)} times in project {project_id}"
    return found[0]


def test_ingestion_by_project_name_is_listed(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    headers = users["editor"]
    run_id = _start(client, headers, project_name=PENGUINS_NAME, command_line="depictio ingest --project p.yaml")
    step = {"name": "sync", "status": "running", "started_at": "2026-01-02T10:00:00.250000", "index": 0}

    response = client.post(f"{MONITORING}/{run_id}/step", json={"step": step, "current_step": "sync"}, headers=headers)
    scan = _client_scan(client, users["viewer"], PENGUINS, run_id)

    assert response.status_code == 200
    assert response.json() == {"run_id": run_id, "step": "sync"}
    assert scan["workflow_id"] is None
    ingestion = scan["ingestion"]
    assert ingestion["status"] == "running"
    assert ingestion["current_step"] == "sync"
    assert ingestion["command"] == "ingest"
    assert ingestion["command_line"] == "depictio ingest --project p.yaml"
    assert ingestion["trigger"] == "manual"
    assert ingestion["finished_at"] is None
    assert ingestion["steps"][0]["name"] == "sync"
    assert ingestion["steps"][0]["started_at"] == "2026-01-02T10:00:00.250000"


def test_finish_records_status_steps_and_collections(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    headers = users["owner"]
    run_id = _start(client, headers, project_id=PENGUINS)
    client.post(f"{MONITORING}/{run_id}/step", json={"step": {"name": "scan"}}, headers=headers)
    finish = {
        "status": "partial",
        "steps": [{"name": "scan", "status": "success", "duration_ms": 12.5}, {"name": "process", "status": "failed"}],
        "error": "process failed",
        "project_id": PENGUINS,
        "data_collections": [
            {"tag": "physical_features", "type": "table", "format": "csv", "files_matched": 3, "files_new": 2},
            {"tag": "demographic_data", "files_matched": 3, "files_failed": 1},
        ],
    }

    response = client.post(f"{MONITORING}/{run_id}/finish", json=finish, headers=headers)
    scan = _client_scan(client, headers, PENGUINS, run_id)

    assert response.status_code == 200
    assert response.json() == {"run_id": run_id, "status": "partial"}
    assert scan["files_total"] == 6
    assert scan["files_new"] == 2
    assert scan["files_failed"] == 1
    ingestion = scan["ingestion"]
    assert ingestion["status"] == "partial"
    assert ingestion["error"] == "process failed"
    assert ingestion["current_step"] is None
    assert ingestion["finished_at"] is not None
    assert [step["name"] for step in ingestion["steps"]] == ["scan", "process"]
    assert ingestion["steps"][0]["duration_ms"] == 12.5
    assert [item["tag"] for item in ingestion["data_collections"]] == ["physical_features", "demographic_data"]


def test_step_of_same_name_replaces_it(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    headers = users["owner"]
    run_id = _start(client, headers, project_id=PENGUINS)

    for status in ("running", "success"):
        step = {"name": "scan", "status": status, "counters": {"files_new": 3}}
        response = client.post(f"{MONITORING}/{run_id}/step", json={"step": step}, headers=headers)
        assert response.status_code == 200, response.text
    steps = _client_scan(client, headers, PENGUINS, run_id)["ingestion"]["steps"]

    assert len(steps) == 1
    assert steps[0]["status"] == "success"
    assert steps[0]["counters"] == {"files_new": 3}


def test_first_ingest_is_filed_once_project_exists(
    client: TestClient, users: dict[str, dict[str, str]], root: Path
) -> None:
    headers = users["owner"]
    run_id = _start(client, headers, project_id=LATE_PROJECT, project_name=LATE_NAME)
    client.post(f"{MONITORING}/{run_id}/step", json={"step": {"name": "sync"}}, headers=headers)
    admin_page = client.get(f"{API}/scans", params={"limit": "500"}, headers=users["admin"]).json()
    assert run_id not in [scan["id"] for scan in admin_page["scans"]]

    # What POST /projects/create does for the client: the project appears in the catalog.
    catalog = client.app.state.catalog
    late = load_projects([str(root / "bundled" / "iris" / "late.yaml")])
    catalog.projects.sync_from_config([*client.app.state.ingestor.projects, *late])
    response = client.post(f"{MONITORING}/{run_id}/finish", json={"status": "success"}, headers=headers)
    report = client.get(f"{API}/projects/ingestion-report/{LATE_PROJECT}", headers=headers).json()

    assert response.status_code == 200
    assert _client_scan(client, headers, LATE_PROJECT, run_id)["ingestion"]["status"] == "success"
    assert [item["run_id"] for item in report["client_ingestions"]] == [run_id]
    assert report["triggered_by"] == "client"
    assert [step["name"] for step in report["client_ingestions"][0]["steps"]] == ["sync"]


def test_finish_skips_unwritable_project(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    headers = users["viewer"]
    run_id = _start(client, headers, project_name="A project of the viewer's own")

    response = client.post(f"{MONITORING}/{run_id}/finish", json={"project_id": PENGUINS}, headers=headers)

    assert response.status_code == 200
    assert run_id not in [scan["id"] for scan in _client_scans(client, users["admin"], PENGUINS)]


def test_ingestion_report_lists_client_ingestions(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    headers = users["owner"]
    run_id = _start(client, headers, project_id=PENGUINS)
    client.post(f"{MONITORING}/{run_id}/finish", json={"status": "success"}, headers=headers)

    report = client.get(f"{API}/projects/ingestion-report/{PENGUINS}", headers=users["viewer"]).json()

    assert report["client_ingestions"][0]["run_id"] == run_id
    assert report["triggered_by"] == "client"
    assert {item["data_collection_tag"] for item in report["data_collections"]} == {
        "physical_features",
        "demographic_data",
        "joined_penguins_complete",
    }


def test_start_for_existing_project_needs_write(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    body = {"command": "ingest", "project_id": PENGUINS}

    viewer = client.post(f"{MONITORING}/start", json=body, headers=users["viewer"])
    stranger = client.post(f"{MONITORING}/start", json=body, headers=users["stranger"])
    anonymous = client.post(f"{MONITORING}/start", json=body)

    assert viewer.status_code == 403
    assert stranger.status_code == 404
    assert stranger.json()["detail"] == f"project {PENGUINS!r} not found"
    assert anonymous.status_code == 401


def test_other_users_cannot_change_an_ingestion(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    run_id = _start(client, users["owner"], project_id=PENGUINS)

    step = client.post(f"{MONITORING}/{run_id}/step", json={"step": {"name": "x"}}, headers=users["editor"])
    finish = client.post(f"{MONITORING}/{run_id}/finish", json={}, headers=users["stranger"])
    by_admin = client.post(f"{MONITORING}/{run_id}/finish", json={"status": "failed"}, headers=users["admin"])

    assert step.status_code == 404
    assert step.json() == {"status_code": 404, "detail": f"ingestion {run_id!r} not found"}
    assert finish.status_code == 404
    assert by_admin.status_code == 200
    assert _client_scan(client, users["owner"], PENGUINS, run_id)["ingestion"]["status"] == "failed"


def test_unknown_ingestion_is_404(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    response = client.post(f"{MONITORING}/no-such-run/step", json={"step": {"name": "x"}}, headers=users["admin"])

    assert response.status_code == 404


def test_steps_are_limited(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    headers = users["owner"]
    run_id = _start(client, headers, project_id=PENGUINS)
    for number in range(MAX_STEPS):
        response = client.post(f"{MONITORING}/{run_id}/step", json={"step": {"name": f"s{number}"}}, headers=headers)
        assert response.status_code == 200, response.text

    extra = client.post(f"{MONITORING}/{run_id}/step", json={"step": {"name": "one more"}}, headers=headers)
    again = client.post(
        f"{MONITORING}/{run_id}/step", json={"step": {"name": "s0", "status": "success"}}, headers=headers
    )

    assert extra.status_code == 400
    assert extra.json()["detail"].startswith(f"step: ingestion {run_id!r} has {MAX_STEPS} steps already")
    assert again.status_code == 200
    assert len(_client_scan(client, headers, PENGUINS, run_id)["ingestion"]["steps"]) == MAX_STEPS


def test_long_text_is_cut(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    headers = users["owner"]
    run_id = _start(client, headers, project_id=PENGUINS, command_line="x" * (MAX_TEXT_CHARS * 2))
    step = {"name": "process", "status": "failed", "detail": "d" * 50_000, "error": "e" * 50_000}

    response = client.post(f"{MONITORING}/{run_id}/step", json={"step": step}, headers=headers)
    ingestion = _client_scan(client, headers, PENGUINS, run_id)["ingestion"]

    assert response.status_code == 200
    assert len(ingestion["command_line"]) == MAX_TEXT_CHARS
    assert len(ingestion["steps"][0]["detail"]) == MAX_TEXT_CHARS
    assert ingestion["steps"][0]["error"].endswith("[truncated]")


def test_oversized_body_is_413(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    run_id = _start(client, users["owner"], project_id=PENGUINS)
    step = {"name": "scan", "detail": "d" * 300_000}

    response = client.post(f"{MONITORING}/{run_id}/step", json={"step": step}, headers=users["owner"])

    assert response.status_code == 413
    assert set(response.json()) == {"status_code", "detail"}


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("start", {"command": "ingest", "project_id": "not-an-id"}, "project_id"),
        ("start", {"command": "ingest", "colour": "blue"}, "colour"),
        ("start", {"command": 7}, "command"),
        ("start", {"run_id": "../../etc"}, "run_id"),
        ("step", {"step": {"name": "scan", "bogus": 1}}, "bogus"),
        ("step", {"step": {"name": "scan", "progress": 1.5}}, "step.progress"),
        ("step", {"step": {"status": "running"}}, "name"),
        ("step", {"step": {"name": "scan"}, "counters": {"files": "many"}}, "counters"),
        ("finish", {"status": "success", "project_id": "xyz"}, "project_id"),
        ("finish", {"data_collections": [{"type": "table"}]}, "tag"),
        ("finish", {"steps": [{"name": str(number)} for number in range(MAX_STEPS + 1)]}, "steps"),
    ],
)
def test_bad_payload_is_400_naming_field(
    client: TestClient, users: dict[str, dict[str, str]], route: str, body: dict[str, Any], field: str
) -> None:
    headers = users["owner"]
    url = f"{MONITORING}/start" if route == "start" else f"{MONITORING}/{_start(client, headers)}/{route}"

    response = client.post(url, json=body, headers=headers)

    assert response.status_code == 400, response.text
    assert field in response.json()["detail"]


def test_client_chosen_id_is_kept_once(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    first = client.post(f"{MONITORING}/start", json={"run_id": "cli-run-0001"}, headers=users["owner"])
    second = client.post(f"{MONITORING}/start", json={"run_id": "cli-run-0001"}, headers=users["editor"])

    assert first.json() == {"run_id": "cli-run-0001"}
    assert second.status_code == 409
    assert "run_id" in second.json()["detail"]


def test_client_host_header_is_recorded(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    headers = {**users["owner"], "X-Depictio-CLI-Host": "laptop-7"}
    run_id = _start(client, headers, project_id=PENGUINS)

    scan = _client_scan(client, headers, PENGUINS, run_id)

    assert scan["ingestion"]["cli_host"] == "laptop-7"


def test_running_ingestion_without_update_is_abandoned() -> None:
    started = utc_now()
    report = new_ingestion("r1", "u1", IngestionStartIn(command="ingest"), None, None, started)

    assert ingestion_out(report, started + timedelta(hours=23)).status == "running"
    assert ingestion_out(report, started + timedelta(hours=25)).status == "abandoned"
