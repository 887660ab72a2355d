"""`/projects/ingestion-report/{project_id}`: what the latest scan found, per data collection."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from api import create_app
from config import load_projects, load_settings
from tests.api.conftest import API, add_user, login
from tests.examples import copy_bundled_examples, write_settings

PENGUINS = "6a0001000000000000000001"
PASSWORD = "report-test-password"
OWNER = "owner@example.org"
BROKEN_CSV = "individual_id,bill_length_mm\nx,1\ny,2,3,4\nz,5\n"


def _client(
    tmp_path: Path, pattern: str = "physical_features", prepare: Callable[[Path], None] | None = None
) -> TestClient:
    """Return a client of the bundled examples; penguins is private and owned by OWNER."""
    projects = copy_bundled_examples(tmp_path)
    if prepare is not None:
        prepare(tmp_path / "bundled" / "penguins" / "data")
    penguins = projects[0]
    text = penguins.read_text().replace('pattern: "physical_features', f'pattern: "{pattern}')
    text = text.replace("is_public: true", f"is_public: false\npermissions:\n  owners: [{OWNER}]")
    penguins.write_text(text)
    settings = load_settings(str(write_settings(tmp_path, projects)), environ={})
    return TestClient(create_app(settings, load_projects(settings.projects), admin_password=PASSWORD))


def _report(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    response = client.get(f"{API}/projects/ingestion-report/{PENGUINS}", headers=headers)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def _collection(report: dict[str, Any], tag: str) -> dict[str, Any]:
    found = [item for item in report["data_collections"] if item["data_collection_tag"] == tag]
    assert len(found) == 1, [item["data_collection_tag"] for item in report["data_collections"]]
    return found[0]


def _break_file(run: str) -> Callable[[Path], None]:
    def prepare(data: Path) -> None:
        (data / run / "physical_features.csv").write_text(BROKEN_CSV)

    return prepare


def test_admin_sees_startup_ingestion(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        report = _report(client, login(client, "admin@example.org", PASSWORD))

    physical = _collection(report, "physical_features")
    assert report["project"] == {
        "id": PENGUINS,
        "name": "Palmer penguins (bundled example)",
        "project_type": "advanced",
    }
    assert report["triggered_by"] == "startup"
    assert report["scanned_at"] is not None
    assert physical["status"] == "updated"
    assert physical["files_found"] == 3
    assert physical["files_new"] == 3
    assert physical["files_failed"] == 0
    assert physical["ingested"] is True
    assert physical["rows"] == 344
    assert physical["table_version"] == 1
    assert physical["warning"] is None
    assert sorted(run["run_tag"] for run in report["runs"]) == ["run_1_adelie", "run_2_chinstrap", "run_3_gentoo"]
    assert {run["status"] for run in report["runs"]} == {"ok"}
    assert report["summary"]["health"] == "ok"
    assert report["summary"]["runs"] == 3
    assert report["summary"]["rows"] == 688


def test_owner_sees_report(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        response = client.get(f"{API}/projects/ingestion-report/{PENGUINS}", headers=add_user(client, OWNER, PASSWORD))

    assert response.status_code == 200
    assert response.json()["project"]["id"] == PENGUINS


def test_other_user_gets_project_404(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        headers = add_user(client, "stranger@example.org", PASSWORD)

        report = client.get(f"{API}/projects/ingestion-report/{PENGUINS}", headers=headers)
        project = client.get(f"{API}/projects/get/from_id", params={"project_id": PENGUINS}, headers=headers)

    assert report.status_code == 404
    assert project.status_code == 404
    assert report.json() == project.json()


def test_report_needs_sign_in(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        response = client.get(f"{API}/projects/ingestion-report/{PENGUINS}")

    assert response.status_code == 401
    assert set(response.json()) == {"status_code", "detail"}


def test_unknown_project_report_is_404(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        headers = login(client, "admin@example.org", PASSWORD)

        response = client.get(f"{API}/projects/ingestion-report/{'f' * 24}", headers=headers)

    assert response.status_code == 404
    assert set(response.json()) == {"status_code", "detail"}


def test_rescan_reports_nothing_new(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        headers = login(client, "admin@example.org", PASSWORD)
        client.post(f"{API}/projects/{PENGUINS}/scan", headers=headers)

        report = _report(client, headers)

    physical = _collection(report, "physical_features")
    assert report["triggered_by"] == "api"
    assert physical["status"] == "unchanged"
    assert physical["files_found"] == 3
    assert physical["files_new"] == 0
    assert physical["files_changed"] == 0
    assert physical["files_removed"] == 0
    assert physical["ingested"] is True


def test_collection_matching_nothing_is_found_zero(tmp_path: Path) -> None:
    with _client(tmp_path, pattern="no_such_file") as client:
        report = _report(client, login(client, "admin@example.org", PASSWORD))

    physical = _collection(report, "physical_features")
    location = str(tmp_path / "bundled" / "penguins" / "data")
    assert physical["status"] == "found_zero"
    assert physical["files_found"] == 0
    assert physical["ingested"] is False
    assert "no_such_file" in physical["warning"]
    assert location in physical["warning"]
    assert "3 run folders searched (run_1_adelie, run_2_chinstrap, run_3_gentoo)" in physical["warning"]
    assert _collection(report, "demographic_data")["status"] == "updated"
    assert report["summary"]["required_missing"] == 1
    assert report["summary"]["health"] == "warning"


def test_failed_file_has_reason_and_line(tmp_path: Path) -> None:
    with _client(tmp_path, prepare=_break_file("run_2_chinstrap")) as client:
        report = _report(client, login(client, "admin@example.org", PASSWORD))

    physical = _collection(report, "physical_features")
    failure = physical["failures"][0]
    chinstrap = next(run for run in report["runs"] if run["run_tag"] == "run_2_chinstrap")
    assert physical["status"] == "partial"
    assert physical["files_failed"] == 1
    assert len(physical["failures"]) == 1
    assert failure["file"].endswith("run_2_chinstrap/physical_features.csv")
    assert failure["run_tag"] == "run_2_chinstrap"
    assert "line 3 has 4 fields but the header has 2" in failure["reason"]
    assert failure["line"] == 3
    assert physical["ingested"] is True
    assert chinstrap["status"] == "failed"
    assert chinstrap["files_failed"] == 1


def test_unreadable_collection_is_failed(tmp_path: Path) -> None:
    def break_every_run(data: Path) -> None:
        for run in ("run_1_adelie", "run_2_chinstrap", "run_3_gentoo"):
            _break_file(run)(data)

    with _client(tmp_path, prepare=break_every_run) as client:
        report = _report(client, login(client, "admin@example.org", PASSWORD))

    physical = _collection(report, "physical_features")
    assert physical["status"] == "failed"
    assert physical["files_failed"] == 3
    assert physical["ingested"] is False
    assert physical["rows"] is None
    assert report["summary"]["health"] == "error"


def test_report_is_documented(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        document = client.get("/docs/openapi.json").json()

    operation = document["paths"][f"{API}/projects/ingestion-report/{{project_id}}"]["get"]
    schema_name = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    schemas = document["components"]["schemas"]
    collection = schemas[schemas[schema_name]["properties"]["data_collections"]["items"]["$ref"].rsplit("/", 1)[-1]]
    assert "found_zero" in operation["description"]
    assert set(collection["properties"]["status"]["enum"]) >= {"found_zero", "unchanged", "failed"}
