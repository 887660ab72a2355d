"""`POST /deltatables/upsert` and `DELETE /deltatables/delete/{id}`: tables that clients wrote elsewhere."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from api import create_app
from catalog import user_id_for
from config import load_projects, load_settings
from tests.api.conftest import API, add_user, login
from tests.examples import BUNDLED_PHYSICAL_FEATURES_ID, copy_bundled_examples, write_settings

PASSWORD = "external-tables-test-password"
OWNER = "owner@example.org"
EDITOR = "editor@example.org"
VIEWER = "viewer@example.org"
STRANGER = "stranger@example.org"
DEMOGRAPHIC_DATA = "6a0001000000000000000004"
IRIS_TABLE = "6a0002000000000000000003"


def _upsert_body(collection_id: str, **fields: Any) -> dict[str, Any]:
    """Return the body that the Depictio CLI 1.19.2 sends after writing a Delta table to S3."""
    return {
        "data_collection_id": collection_id,
        "delta_table_location": f"s3://depictio-bucket/{collection_id}",
        "update": False,
        "deltatable_size_bytes": 20480,
        "delta_version": 0,
        "delta_commit_timestamp": "2026-01-02T10:00:00+00:00",
        "write_mode": "overwrite",
        "rows_total": 344,
        "rows_added": 344,
        "run_tags": ["run_1_adelie", "run_2_chinstrap", "run_3_gentoo"],
        "ingestion_run_id": "3f1c9d2e-0000-4000-8000-000000000001",
        "trigger": "manual",
        **fields,
    }


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("external")
    penguins, iris = copy_bundled_examples(root)
    roles = f"permissions:\n  owners: [{OWNER}]\n  editors: [{EDITOR}]\n  viewers: [{VIEWER}]"
    penguins.write_text(penguins.read_text().replace("is_public: true", f"is_public: false\n{roles}"))
    settings = load_settings(str(write_settings(root, [penguins, iris])), environ={})
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


def test_upsert_is_recorded_and_shown(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    response = client.post(f"{API}/deltatables/upsert", json=_upsert_body(DEMOGRAPHIC_DATA), headers=users["editor"])
    table = client.get(f"{API}/deltatables/get/{DEMOGRAPHIC_DATA}", headers=users["viewer"]).json()

    assert response.status_code == 200
    assert response.json()["result"] == "success"
    assert "job_id" not in response.json()
    assert table["num_rows"] == 344
    assert table["delta_table_location"] == f'data."dc_{DEMOGRAPHIC_DATA}"'
    external = table["external_table"]
    assert external["location"] == f"s3://depictio-bucket/{DEMOGRAPHIC_DATA}"
    assert external["delta_version"] == 0
    assert external["size_bytes"] == 20480
    assert external["rows_total"] == 344
    assert external["run_tags"] == ["run_1_adelie", "run_2_chinstrap", "run_3_gentoo"]
    assert external["recorded_by"] == user_id_for(EDITOR)


def test_second_upsert_needs_update(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    # Iris names no owner, so only administrators write it.
    headers = users["admin"]
    first = client.post(f"{API}/deltatables/upsert", json=_upsert_body(IRIS_TABLE), headers=headers)
    again = client.post(f"{API}/deltatables/upsert", json=_upsert_body(IRIS_TABLE, delta_version=1), headers=headers)
    update = _upsert_body(IRIS_TABLE, delta_version=1, update=True, async_mode=True)
    updated = client.post(f"{API}/deltatables/upsert", json=update, headers=headers)
    table = client.get(f"{API}/deltatables/get/{IRIS_TABLE}", headers=headers).json()

    assert first.status_code == 200
    assert again.status_code == 400
    assert again.json()["detail"].startswith("update: ")
    assert updated.status_code == 200
    assert table["external_table"]["delta_version"] == 1


def test_upsert_needs_write(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    body = _upsert_body(BUNDLED_PHYSICAL_FEATURES_ID, update=True)

    viewer = client.post(f"{API}/deltatables/upsert", json=body, headers=users["viewer"])
    stranger = client.post(f"{API}/deltatables/upsert", json=body, headers=users["stranger"])
    anonymous = client.post(f"{API}/deltatables/upsert", json=body)

    assert viewer.status_code == 403
    assert stranger.status_code == 404
    assert anonymous.status_code == 401


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"data_collection_id": "not-an-object-id"}, "data_collection_id"),
        ({"rows_total": "many"}, "rows_total"),
        ({"rows_total": -1}, "rows_total"),
        ({"rows_total": 2**63}, "rows_total"),
        ({"deltatable_size_bytes": 2**64}, "deltatable_size_bytes"),
        ({"delta_commit_timestamp": "yesterday"}, "delta_commit_timestamp"),
        ({"bucket": "depictio"}, "bucket"),
    ],
)
def test_bad_upsert_is_400_naming_field(
    client: TestClient, users: dict[str, dict[str, str]], change: dict[str, Any], field: str
) -> None:
    body = {**_upsert_body(BUNDLED_PHYSICAL_FEATURES_ID, update=True), **change}

    response = client.post(f"{API}/deltatables/upsert", json=body, headers=users["admin"])

    assert response.status_code == 400, response.text
    assert field in response.json()["detail"]


def test_missing_location_is_400(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    body = {"data_collection_id": BUNDLED_PHYSICAL_FEATURES_ID}

    response = client.post(f"{API}/deltatables/upsert", json=body, headers=users["admin"])

    assert response.status_code == 400
    assert "delta_table_location" in response.json()["detail"]


def test_delete_drops_table_and_rescan_rebuilds(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    headers = users["editor"]
    body = _upsert_body(BUNDLED_PHYSICAL_FEATURES_ID, update=True)
    client.post(f"{API}/deltatables/upsert", json=body, headers=headers)
    catalog = client.app.state.catalog
    built = catalog.tables.get(BUNDLED_PHYSICAL_FEATURES_ID)
    assert built is not None

    response = client.delete(f"{API}/deltatables/delete/{BUNDLED_PHYSICAL_FEATURES_ID}", headers=headers)

    assert response.status_code == 200
    assert response.json()["table_dropped"] is True
    assert response.json()["external_reports_deleted"] >= 1
    assert response.json()["rescan_requested"] is True
    assert "the next scan rebuilds it" in response.json()["message"]
    assert catalog.external_tables.latest(BUNDLED_PHYSICAL_FEATURES_ID) is None
    # The test client returns once the rescan that runs after the response has finished.
    rebuilt = catalog.tables.get(BUNDLED_PHYSICAL_FEATURES_ID)
    assert rebuilt is not None
    assert rebuilt.row_count == 344
    assert rebuilt.aggregation_time > built.aggregation_time


def test_delete_of_nothing_is_404(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    catalog = client.app.state.catalog
    catalog.tables.drop(DEMOGRAPHIC_DATA)
    catalog.external_tables.delete(DEMOGRAPHIC_DATA)

    response = client.delete(f"{API}/deltatables/delete/{DEMOGRAPHIC_DATA}", headers=users["admin"])
    client.app.state.ingestor.rescan_workflow("6a0001000000000000000002", trigger="api")

    assert response.status_code == 404
    assert set(response.json()) == {"status_code", "detail"}


def test_viewer_cannot_delete(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    response = client.delete(f"{API}/deltatables/delete/{BUNDLED_PHYSICAL_FEATURES_ID}", headers=users["viewer"])

    assert response.status_code == 403
    assert client.app.state.catalog.tables.get(BUNDLED_PHYSICAL_FEATURES_ID) is not None
