"""Scan history and scans on request."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from litestar.testing import TestClient

from api import create_app
from config import load_projects, load_settings
from tests.api.conftest import API, add_user, login
from tests.examples import copy_bundled_examples, write_settings

PENGUINS = "6a0001000000000000000001"
PASSWORD = "scan-test-password"


def _client(
    tmp_path: Path, pattern: str = "physical_features", prepare: Callable[[Path], None] | None = None
) -> TestClient:
    projects = copy_bundled_examples(tmp_path)
    if prepare is not None:
        prepare(tmp_path / "bundled" / "penguins" / "data")
    penguins = projects[0]
    penguins.write_text(penguins.read_text().replace('pattern: "physical_features', f'pattern: "{pattern}'))
    settings = load_settings(str(write_settings(tmp_path, projects)), environ={})
    return TestClient(create_app(settings, load_projects(settings.projects), admin_password=PASSWORD))


def test_startup_scans_are_listed(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        headers = login(client, "admin@example.org", PASSWORD)

        page = client.get(f"{API}/scans", headers=headers).json()

    assert page["total"] == 2
    assert {scan["trigger"] for scan in page["scans"]} == {"startup"}
    penguins = next(scan for scan in page["scans"] if scan["project_id"] == PENGUINS)
    assert penguins["runs"] == 3
    assert {collection["tag"] for collection in penguins["collections"]} == {"physical_features", "demographic_data"}
    assert {collection["files_new"] for collection in penguins["collections"]} == {3}


def test_zero_match_warning_is_visible(tmp_path: Path) -> None:
    with _client(tmp_path, pattern="no_such_file") as client:
        headers = login(client, "admin@example.org", PASSWORD)

        page = client.get(f"{API}/scans", params={"project_id": PENGUINS}, headers=headers).json()

    warnings = page["scans"][0]["warnings"]
    physical = next(item for item in page["scans"][0]["collections"] if item["tag"] == "physical_features")
    assert any("matched no file" in warning and "no_such_file" in warning for warning in warnings)
    assert physical["warning"] in warnings


def test_admin_triggers_scan(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        headers = login(client, "admin@example.org", PASSWORD)

        response = client.post(f"{API}/projects/{PENGUINS}/scan", headers=headers)
        page = client.get(f"{API}/scans", params={"project_id": PENGUINS}, headers=headers).json()

    assert response.status_code == 200
    assert response.json()["runs"] == 3
    assert response.json()["rows"] == 688
    assert page["scans"][0]["trigger"] == "api"


def test_viewer_cannot_trigger_scan(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        headers = add_user(client, "viewer@example.org", PASSWORD)

        response = client.post(f"{API}/projects/{PENGUINS}/scan", headers=headers)

    assert response.status_code == 403
    assert set(response.json()) == {"status_code", "detail"}


def test_unknown_project_scans_are_404(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        headers = login(client, "admin@example.org", PASSWORD)

        listed = client.get(f"{API}/scans", params={"project_id": "f" * 24}, headers=headers)
        triggered = client.post(f"{API}/projects/{'f' * 24}/scan", headers=headers)

    assert listed.status_code == 404
    assert triggered.status_code == 404


def test_scans_are_paged(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        headers = login(client, "admin@example.org", PASSWORD)

        page = client.get(f"{API}/scans", params={"limit": 1, "offset": 1}, headers=headers).json()

    assert page["total"] == 2
    assert page["limit"] == 1
    assert len(page["scans"]) == 1


def test_run_parameters_in_flexible_metadata(tmp_path: Path) -> None:
    def add_params(data: Path) -> None:
        folder = data / "run_1_adelie" / "pipeline_info"
        folder.mkdir()
        (folder / "params_2024-01-01_00-00-00.json").write_text('{"input": "samplesheet.csv"}')

    with _client(tmp_path, prepare=add_params) as client:
        headers = login(client, "admin@example.org", PASSWORD)
        runs = client.get(f"{API}/runs/list/6a0001000000000000000002", headers=headers).json()

    adelie = next(run for run in runs if run["run_tag"] == "run_1_adelie")
    chinstrap = next(run for run in runs if run["run_tag"] == "run_2_chinstrap")
    assert adelie["flexible_metadata"]["parameters"]["values"] == {"input": "samplesheet.csv"}
    assert chinstrap["flexible_metadata"] is None


def test_scan_lists_failed_files_per_collection(tmp_path: Path) -> None:
    def break_one_file(data: Path) -> None:
        target = data / "run_2_chinstrap" / "physical_features.csv"
        target.write_text(target.read_text() + "extra,1,2,3,4,5,6,7,8,9\n")

    with _client(tmp_path, prepare=break_one_file) as client:
        headers = login(client, "admin@example.org", PASSWORD)

        page = client.get(f"{API}/scans", params={"project_id": PENGUINS}, headers=headers).json()

    physical = next(item for item in page["scans"][0]["collections"] if item["tag"] == "physical_features")
    demographic = next(item for item in page["scans"][0]["collections"] if item["tag"] == "demographic_data")
    assert physical["files_failed"] == 1
    [failure] = physical["failures"]
    assert failure["run_tag"] == "run_2_chinstrap"
    assert failure["line"] is not None
    assert failure["reason"]
    assert physical["outcome"] == "built"
    assert demographic["files_failed"] == 0
    assert demographic["files_unchanged"] == 0
    assert page["scans"][0]["files_failed"] == 1
