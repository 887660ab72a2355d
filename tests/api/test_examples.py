"""The real Depictio example outputs, served through the API."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from tests.api.conftest import API
from tests.examples import (
    DEMOGRAPHIC_DATA_ID,
    IRIS_TABLE_ID,
    PENGUINS_PROJECT_ID,
    PENGUINS_WORKFLOW_ID,
    PHYSICAL_FEATURES_ID,
    VIRALRECON_PATH_COLLECTIONS,
    require_examples,
)


@pytest.fixture(autouse=True)
def _shared_examples() -> None:
    require_examples()


PENGUIN_RUNS = ["run_1_adelie", "run_2_chinstrap", "run_3_gentoo"]


def _all_rows(client: TestClient, headers: dict[str, str], collection_id: str) -> list[dict[str, object]]:
    response = client.get(f"{API}/deltatables/preview/{collection_id}", params={"limit": 1000}, headers=headers)
    assert response.status_code == 200, response.text
    rows: list[dict[str, object]] = response.json()["rows"]
    return rows


def test_projects_listed(client: TestClient, admin: dict[str, str]) -> None:
    names = {project["name"] for project in client.get(f"{API}/projects/get/all", headers=admin).json()}
    assert "Palmer Penguins Species Comparison" in names
    assert "Iris Dataset Project Data Analysis" in names
    assert "Viralrecon Viral Genome Analysis" in names
    assert "Palmer penguins (bundled example)" in names


def test_penguins_has_three_runs(client: TestClient, admin: dict[str, str]) -> None:
    runs = client.get(f"{API}/runs/list/{PENGUINS_WORKFLOW_ID}", headers=admin).json()
    assert sorted(run["run_tag"] for run in runs) == PENGUIN_RUNS
    assert all(len(run["_id"]) == 24 for run in runs)


def test_penguins_has_six_files(client: TestClient, admin: dict[str, str]) -> None:
    files = []
    for collection_id in (PHYSICAL_FEATURES_ID, DEMOGRAPHIC_DATA_ID):
        files += client.get(f"{API}/files/list/{collection_id}", headers=admin).json()
    assert len(files) == 6
    assert len({file["_id"] for file in files}) == 6
    assert all(len(file["file_hash"]) == 64 for file in files)


def test_penguin_tables_have_342_rows(client: TestClient, admin: dict[str, str]) -> None:
    for collection_id in (PHYSICAL_FEATURES_ID, DEMOGRAPHIC_DATA_ID):
        shape = client.get(f"{API}/deltatables/shape/{collection_id}", headers=admin).json()
        assert shape["num_rows"] == 342, collection_id
        assert len(_all_rows(client, admin, collection_id)) == 342, collection_id


def test_penguin_rows_carry_run_tags(client: TestClient, admin: dict[str, str]) -> None:
    for collection_id in (PHYSICAL_FEATURES_ID, DEMOGRAPHIC_DATA_ID):
        rows = _all_rows(client, admin, collection_id)
        assert sorted({row["depictio_run_id"] for row in rows}) == PENGUIN_RUNS  # type: ignore[type-var]
        assert all(row["aggregation_time"] for row in rows)


def test_iris_has_150_rows(client: TestClient, admin: dict[str, str]) -> None:
    shape = client.get(f"{API}/deltatables/shape/{IRIS_TABLE_ID}", headers=admin).json()
    assert shape["num_rows"] == 150
    columns = [spec["name"] for spec in client.get(f"{API}/deltatables/specs/{IRIS_TABLE_ID}", headers=admin).json()]
    assert columns[:5] == ["sepal.length", "sepal.width", "petal.length", "petal.width", "variety"]


def _viralrecon(client: TestClient, headers: dict[str, str]) -> dict[str, object]:
    projects = client.get(f"{API}/projects/get/all", headers=headers).json()
    project: dict[str, object] = next(p for p in projects if p["name"] == "Viralrecon Viral Genome Analysis")
    return project


def test_viralrecon_has_two_runs(client: TestClient, admin: dict[str, str]) -> None:
    workflow = _viralrecon(client, admin)["workflows"][0]  # type: ignore[index]
    runs = client.get(f"{API}/runs/list/{workflow['id']}", headers=admin).json()
    assert sorted(run["run_tag"] for run in runs) == ["run_1", "run_2"]


def test_viralrecon_path_patterns_match_one_file_per_run(client: TestClient, admin: dict[str, str]) -> None:
    workflow = _viralrecon(client, admin)["workflows"][0]  # type: ignore[index]
    collections = {dc["data_collection_tag"]: dc["id"] for dc in workflow["data_collections"]}
    for tag in VIRALRECON_PATH_COLLECTIONS:
        files = client.get(f"{API}/files/list/{collections[tag]}", headers=admin).json()
        assert sorted(file["run_tag"] for file in files) == ["run_1", "run_2"], tag


def test_viralrecon_amplicon_table_doubles_rows(client: TestClient, admin: dict[str, str]) -> None:
    workflow = _viralrecon(client, admin)["workflows"][0]  # type: ignore[index]
    collections = {dc["data_collection_tag"]: dc["id"] for dc in workflow["data_collections"]}
    shape = client.get(f"{API}/deltatables/shape/{collections['mosdepth_amplicon_coverage']}", headers=admin).json()
    assert shape["num_rows"] == 2 * 4508


def test_second_scan_changes_nothing(client: TestClient, admin: dict[str, str]) -> None:
    before_runs = client.get(f"{API}/runs/list/{PENGUINS_WORKFLOW_ID}", headers=admin).json()
    before_files = client.get(f"{API}/files/list/{PHYSICAL_FEATURES_ID}", headers=admin).json()
    before_table = client.get(f"{API}/deltatables/get/{PHYSICAL_FEATURES_ID}", headers=admin).json()

    results = client.app.state.ingestor.scan_all()

    for result in results:
        for scan in result.workflows:
            assert scan.counts.runs_added == 0, scan.workflow_name
            assert scan.counts.runs_removed == 0, scan.workflow_name
            assert scan.counts.files_added == 0, scan.workflow_name
            assert scan.counts.files_changed == 0, scan.workflow_name
            assert scan.counts.files_removed == 0, scan.workflow_name
    assert client.get(f"{API}/runs/list/{PENGUINS_WORKFLOW_ID}", headers=admin).json() == before_runs
    assert client.get(f"{API}/files/list/{PHYSICAL_FEATURES_ID}", headers=admin).json() == before_files
    after_table = client.get(f"{API}/deltatables/get/{PHYSICAL_FEATURES_ID}", headers=admin).json()
    assert after_table["aggregation"][0]["aggregation_version"] == before_table["aggregation"][0]["aggregation_version"]
    assert after_table["num_rows"] == 342


def test_project_from_id_uses_underscore_ids(client: TestClient, admin: dict[str, str]) -> None:
    response = client.get(f"{API}/projects/get/from_id", params={"project_id": PENGUINS_PROJECT_ID}, headers=admin)
    document = response.json()
    assert response.status_code == 200
    assert document["_id"] == PENGUINS_PROJECT_ID
    collection = document["workflows"][0]["data_collections"][0]
    assert collection["_id"] == PHYSICAL_FEATURES_ID
    assert collection["last_aggregation"]["aggregation_version"] >= 1


def test_project_from_name(client: TestClient, admin: dict[str, str]) -> None:
    response = client.get(f"{API}/projects/get/from_name/Palmer Penguins Species Comparison", headers=admin)
    assert response.status_code == 200
    assert response.json()["id"] == PENGUINS_PROJECT_ID
    assert response.json()["permissions"]["owners"][0]["email"] == "admin@example.org"


def test_workflow_from_id_names_its_project(client: TestClient, admin: dict[str, str]) -> None:
    response = client.get(f"{API}/workflows/get/from_id", params={"workflow_id": PENGUINS_WORKFLOW_ID}, headers=admin)
    assert response.status_code == 200
    assert response.json()["project_id"] == PENGUINS_PROJECT_ID
    assert response.json()["workflow_tag"] == "penguin_species_analysis"


def test_run_get_uses_model_ids(client: TestClient, admin: dict[str, str]) -> None:
    run = client.get(f"{API}/runs/list/{PENGUINS_WORKFLOW_ID}", headers=admin).json()[0]
    response = client.get(f"{API}/runs/get/{run['_id']}", headers=admin)
    assert response.status_code == 200
    assert response.json()["id"] == run["_id"]
    assert len(response.json()["files_id"]) == 2


def test_run_list_files_match_each_run(client: TestClient, admin: dict[str, str]) -> None:
    runs = client.get(f"{API}/runs/list/{PENGUINS_WORKFLOW_ID}", headers=admin).json()
    assert len(runs) == 3
    for run in runs:
        one = client.get(f"{API}/runs/get/{run['_id']}", headers=admin).json()
        assert run["files_id"] == one["files_id"]
        assert len(run["files_id"]) == 2


def test_specs_describe_columns(client: TestClient, admin: dict[str, str]) -> None:
    specs = client.get(f"{API}/deltatables/specs/{PHYSICAL_FEATURES_ID}", headers=admin).json()
    by_name = {spec["name"]: spec for spec in specs}
    assert by_name["bill_length_mm"]["type"] == "float64"
    assert by_name["bill_length_mm"]["description"] == "Bill length in millimeters"
    assert by_name["bill_length_mm"]["specs"]["count"] == 342
    assert by_name["depictio_run_id"]["specs"]["unique"] == 3


def test_preview_limit_is_clamped(client: TestClient, admin: dict[str, str]) -> None:
    small = client.get(f"{API}/deltatables/preview/{PHYSICAL_FEATURES_ID}", params={"limit": 0}, headers=admin).json()
    large = client.get(f"{API}/deltatables/preview/{IRIS_TABLE_ID}", params={"limit": 5000}, headers=admin).json()
    assert len(small["rows"]) == 1
    assert len(large["rows"]) == 150
    assert large["total_rows"] == 150


def test_datacollection_specs_returns_document(client: TestClient, admin: dict[str, str]) -> None:
    response = client.get(f"{API}/datacollections/specs/{IRIS_TABLE_ID}", headers=admin)
    assert response.status_code == 200
    assert response.json()["_id"] == IRIS_TABLE_ID
    assert response.json()["data_collection_tag"] == "iris_table"


def test_file_details_show_status(client: TestClient, admin: dict[str, str]) -> None:
    files = client.get(f"{API}/files/list/{PHYSICAL_FEATURES_ID}", params={"details": "true"}, headers=admin).json()
    assert {file["status"] for file in files} == {"aggregated"}
    assert sum(file["row_count"] for file in files) == 342
