"""The collection of a persisted join, served through the API like any other collection."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from tests.api.conftest import API, add_user
from tests.examples import BUNDLED_PENGUINS_WORKFLOW_ID, shared_examples_available

JOINED_ID = "6a0001000000000000000005"
SHARED_JOINED_ID = "646b0f3c1e4a2d7f8e5b8ca1"
BUNDLED_PROJECT_ID = "6a0001000000000000000001"
JOINED_COLUMNS = [
    "individual_id",
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
    "depictio_run_id",
    "depictio_file_id",
    "aggregation_time",
    "island",
    "sex",
    "year",
    "species",
]


def _get(client: TestClient, headers: dict[str, str], path: str, **params: Any) -> Any:
    response = client.get(f"{API}{path}", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_joined_shape(client: TestClient, admin: dict[str, str]) -> None:
    shape = _get(client, admin, f"/deltatables/shape/{JOINED_ID}")

    assert shape == {"num_rows": 344, "num_columns": len(JOINED_COLUMNS)}


def test_joined_preview_has_both_sides(client: TestClient, admin: dict[str, str]) -> None:
    preview = _get(client, admin, f"/deltatables/preview/{JOINED_ID}", limit=1000, species__eq="Gentoo")

    assert preview["columns"] == JOINED_COLUMNS
    assert len(preview["rows"]) == 124
    assert all(row["depictio_run_id"] == "run_3_gentoo" for row in preview["rows"])


def test_joined_rows_page(client: TestClient, admin: dict[str, str]) -> None:
    page = _get(
        client,
        admin,
        f"/datacollections/{JOINED_ID}/rows",
        columns="individual_id,island,body_mass_g",
        sort="individual_id",
        limit=2,
    )

    assert page["rows"] == [
        {"individual_id": "adelie_001", "island": "Torgersen", "body_mass_g": 3750},
        {"individual_id": "adelie_002", "island": "Torgersen", "body_mass_g": 3800},
    ]
    assert page["next"] is not None


def test_joined_specs_keep_descriptions(client: TestClient, admin: dict[str, str]) -> None:
    specs = {spec["name"]: spec for spec in _get(client, admin, f"/deltatables/specs/{JOINED_ID}")}

    assert specs["island"]["description"] == "Island in the Palmer Archipelago where the penguin was sampled"
    assert specs["body_mass_g"]["type"] == "int64"


def test_joined_tag_lookup(client: TestClient, admin: dict[str, str]) -> None:
    tag = _get(client, admin, f"/datacollections/get_tag_from_id/{JOINED_ID}")

    assert tag == "joined_penguins_complete"


def test_project_lists_joined_collection(client: TestClient, admin: dict[str, str]) -> None:
    project = _get(client, admin, "/projects/get/from_id", project_id=BUNDLED_PROJECT_ID)

    collections = {item["_id"]: item for item in project["workflows"][0]["data_collections"]}
    joined = collections[JOINED_ID]
    assert joined["data_collection_tag"] == "joined_penguins_complete"
    assert joined["config"]["source"] == "joined"
    assert joined["last_aggregation"]["aggregation_version"] == 1


def test_workflow_lists_joined_collection(client: TestClient, admin: dict[str, str]) -> None:
    workflow = _get(client, admin, "/workflows/get/from_id", workflow_id=BUNDLED_PENGUINS_WORKFLOW_ID)

    tags = [item["data_collection_tag"] for item in workflow["data_collections"]]
    assert tags == ["physical_features", "demographic_data", "joined_penguins_complete"]


def test_ingestion_report_shows_join(client: TestClient, admin: dict[str, str]) -> None:
    report = _get(client, admin, f"/projects/ingestion-report/{BUNDLED_PROJECT_ID}")

    joined = {item["data_collection_id"]: item for item in report["data_collections"]}[JOINED_ID]
    assert joined["status"] == "joined"
    assert joined["rows"] == 344
    assert joined["warning"] is None


def test_upload_into_joined_collection_rejected(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post(
        f"{API}/datacollections/{JOINED_ID}/append",
        files={"files": ("extra.csv", b"individual_id,island\nx,Dream\n", "text/csv")},
        headers=admin,
    )

    assert response.status_code == 400
    assert "only native table collections take uploaded files" in response.json()["detail"]


def test_private_joined_rows_hidden(client: TestClient, admin: dict[str, str]) -> None:
    stranger = add_user(client, "stranger-joins@example.org", "stranger-password")
    response = client.post(
        f"{API}/projects/toggle_public_private/{BUNDLED_PROJECT_ID}", params={"is_public": "false"}, headers=admin
    )
    assert response.status_code == 200, response.text
    try:
        denied = client.get(f"{API}/datacollections/{JOINED_ID}/rows", headers=stranger)
        assert denied.status_code == 404
    finally:
        client.post(
            f"{API}/projects/toggle_public_private/{BUNDLED_PROJECT_ID}", params={"is_public": "true"}, headers=admin
        )


def test_depictio_penguins_joined_has_342_rows(client: TestClient, admin: dict[str, str]) -> None:
    if not shared_examples_available():
        pytest.skip("the Depictio example outputs are absent; this test needs ../shared/data/depictio-examples")

    shape = _get(client, admin, f"/deltatables/shape/{SHARED_JOINED_ID}")

    assert shape["num_rows"] == 342
