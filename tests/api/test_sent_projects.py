"""Projects, runs and files that a client sends over the API, as the Depictio CLI does.

The app runs with its ingestor, so each test can also check that depictiod reads the registered files
into the collection's table.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api import create_app
from config import load_projects, load_settings
from tests.api.conftest import ADMIN_PASSWORD, API, add_user, app_without_projects, login
from tests.examples import copy_bundled_examples, write_settings

ADMIN = "admin@example.org"
PASSWORD = "sent-projects-password"
# The keys of Depictio's strict WorkflowRun model: the CLI rejects a run with any other key.
RUN_KEYS = {
    "_id", "description", "flexible_metadata", "hash", "workflow_id", "run_tag", "files_id", "workflow_config_id",
    "run_location", "creation_time", "last_modification_time", "registration_time", "run_hash", "scan_results",
    "permissions",
}  # fmt: skip
IDS = {
    "project": "7a0000000000000000000001",
    "workflow": "7a0000000000000000000002",
    "collection": "7a0000000000000000000003",
}


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    """A workflow output folder with two runs of one small CSV each."""
    data = tmp_path / "lab" / "data"
    for run, rows in (("run_1", ["1,a", "2,b"]), ("run_2", ["3,c"])):
        (data / run).mkdir(parents=True)
        (data / run / "measures.csv").write_text("id,label\n" + "\n".join(rows) + "\n")
    return data


@pytest.fixture
def client(tmp_path: Path, lab: Path) -> Iterator[TestClient]:
    environ = {"DEPICTIO_INGEST_CLIENT_ROOTS": str(lab.parent), "DEPICTIO_INGEST_SETTLE_SECONDS": "0"}
    (tmp_path / "service").mkdir()
    with app_without_projects(tmp_path / "service", environ) as test_client:
        yield test_client


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    return login(client, ADMIN, ADMIN_PASSWORD)


def project_document(lab: Path, **changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": IDS["project"],
        "name": "Sent lab project",
        "hash": None,
        "is_public": False,
        "permissions": {"owners": [], "editors": [], "viewers": []},
        "workflows": [
            {
                "id": IDS["workflow"],
                "name": "lab_workflow",
                "engine": {"name": "snakemake"},
                "data_location": {"structure": "sequencing-runs", "runs_regex": "run_.*", "locations": [str(lab)]},
                "data_collections": [
                    {
                        "id": IDS["collection"],
                        "data_collection_tag": "measures",
                        "config": {
                            "type": "table",
                            "dc_specific_properties": {"format": "csv"},
                            "scan": {
                                "mode": "recursive",
                                "scan_parameters": {"regex_config": {"pattern": "measures.csv", "wildcards": None}},
                            },
                        },
                    }
                ],
            }
        ],
    }
    document.update(changes)
    return document


def run_document(lab: Path, run: str, run_id: str, **changes: Any) -> dict[str, Any]:
    document = {
        "id": run_id,
        "workflow_id": IDS["workflow"],
        "run_tag": run,
        "files_id": [],
        "workflow_config_id": "7b0000000000000000000001",
        "run_location": str(lab / run),
        "creation_time": "2026-01-31 14:05:00",
        "last_modification_time": "2026-01-31 14:05:00",
        "registration_time": "2026-01-31 14:06:00",
        "run_hash": "",
        "scan_results": [{"stats": {"new_files": 1}, "files_id": {}, "scan_time": "2026-01-31 14:06:00"}],
        "permissions": {"owners": [], "editors": [], "viewers": []},
        "description": None,
        "flexible_metadata": None,
        "hash": None,
    }
    document.update(changes)
    return document


def file_document(lab: Path, run: str, file_id: str, run_id: str, **changes: Any) -> dict[str, Any]:
    location = lab / run / "measures.csv"
    document = {
        "id": file_id,
        "file_location": str(location),
        "filename": "measures.csv",
        "creation_time": "2026-01-31 14:05:00",
        "modification_time": "2026-01-31 14:05:00",
        "run_id": run_id,
        "run_tag": run,
        "data_collection_id": IDS["collection"],
        "registration_time": "2026-01-31 14:06:00",
        "file_hash": "a" * 64,
        "filesize": location.stat().st_size if location.exists() else 10,
        "permissions": {"owners": [], "editors": [], "viewers": []},
        "manifest_id": None,
        "sample": None,
        "s3_key": None,
        "index_s3_key": None,
        "index_filesize": None,
    }
    document.update(changes)
    return document


def create(client: TestClient, headers: dict[str, str], document: dict[str, Any]) -> Any:
    return client.post(f"{API}/projects/create", json=document, headers=headers)


def register_runs(client: TestClient, headers: dict[str, str], lab: Path) -> None:
    """Register run_1 and run_2 with their files, files first as the Depictio CLI does."""
    for index, run in enumerate(("run_1", "run_2"), start=1):
        run_id, file_id = f"7c000000000000000000000{index}", f"7d000000000000000000000{index}"
        response = client.post(
            f"{API}/files/upsert_batch", json={"files": [file_document(lab, run, file_id, run_id)]}, headers=headers
        )
        assert response.status_code == 200, response.text
    runs = [
        run_document(lab, run, f"7c000000000000000000000{index}") for index, run in enumerate(("run_1", "run_2"), 1)
    ]
    response = client.post(f"{API}/runs/upsert_batch", json={"runs": runs, "update": False}, headers=headers)
    assert response.status_code == 200, response.text


def table_rows(client: TestClient, headers: dict[str, str]) -> int | None:
    response = client.get(f"{API}/deltatables/shape/{IDS['collection']}", headers=headers)
    return int(response.json()["num_rows"]) if response.status_code == 200 else None


def wait_for_rows(client: TestClient, headers: dict[str, str], expected: int | None) -> None:
    """Wait until the collection's table has `expected` rows (None: no table); the ingestor works in the background."""
    deadline = time.monotonic() + 20
    while (found := table_rows(client, headers)) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    assert found == expected


def wait_for_error(client: TestClient, headers: dict[str, str], run_tag: str) -> str:
    """Wait until the file of `run_tag` is recorded as failed and return its reason."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        details = client.get(f"{API}/files/list/{IDS['collection']}", params={"details": "true"}, headers=headers)
        found = [file for file in details.json() if file["run_tag"] == run_tag and file["status"] == "failed"]
        if found:
            return str(found[0]["error"])
        time.sleep(0.1)
    raise AssertionError(f"the file of {run_tag} was not recorded as failed within 20 s")


def test_create_keeps_ids_and_owner(client: TestClient, admin: dict[str, str], lab: Path) -> None:
    response = create(client, admin, project_document(lab, hash="client-hash-1"))

    assert response.status_code == 200, response.text
    assert response.json()["success"] is True
    by_name = client.get(f"{API}/projects/get/from_name/Sent lab project", headers=admin).json()
    assert by_name["id"] == IDS["project"]
    assert by_name["hash"] == "client-hash-1"
    assert by_name["workflows"][0]["id"] == IDS["workflow"]
    assert by_name["workflows"][0]["data_collections"][0]["id"] == IDS["collection"]
    owner_ids = [owner["id"] for owner in by_name["permissions"]["owners"]]
    admin_id = client.get(f"{API}/auth/me", headers=admin).json()["id"]
    assert owner_ids == [admin_id]


def test_missing_project_is_404(client: TestClient, admin: dict[str, str]) -> None:
    assert client.get(f"{API}/projects/get/from_name/nothing here", headers=admin).status_code == 404
    response = client.get(f"{API}/projects/get/from_id", params={"project_id": "f" * 24}, headers=admin)
    assert response.status_code == 404


def test_taken_id_or_name_is_409(client: TestClient, admin: dict[str, str], lab: Path) -> None:
    assert create(client, admin, project_document(lab)).status_code == 200

    again = create(client, admin, project_document(lab))
    same_name = create(client, admin, project_document(lab, id="7a00000000000000000000ff", workflows=[]))

    assert again.status_code == 409
    assert "already exists" in again.json()["detail"]
    assert same_name.status_code == 409
    assert "name" in same_name.json()["detail"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"colour": "blue"}, "colour"),
        ({"id": "not-an-object-id"}, "id"),
        ({"is_public": "maybe"}, "is_public"),
        ({"workflows": "none"}, "workflows"),
    ],
)
def test_bad_project_fields_are_400_naming_the_field(
    client: TestClient, admin: dict[str, str], lab: Path, change: dict[str, Any], named: str
) -> None:
    response = create(client, admin, project_document(lab, **change))

    assert response.status_code == 400, response.text
    assert named in response.json()["detail"]


def test_relative_location_is_400(client: TestClient, admin: dict[str, str], lab: Path) -> None:
    document = project_document(lab)
    document["workflows"][0]["data_location"]["locations"] = ["data/runs"]

    response = create(client, admin, document)

    assert response.status_code == 400
    assert "workflows[0].data_location.locations[0]" in response.json()["detail"]


def test_user_may_place_locations_only_under_client_roots(client: TestClient, lab: Path, tmp_path: Path) -> None:
    user = add_user(client, "researcher@example.org", PASSWORD)
    outside = project_document(lab)
    outside["workflows"][0]["data_location"]["locations"] = [str(tmp_path / "elsewhere")]

    refused = create(client, user, outside)
    accepted = create(client, user, project_document(lab))

    assert refused.status_code == 403
    assert "ingest.client_roots" in refused.json()["detail"]
    assert accepted.status_code == 200, accepted.text
    owners = client.get(f"{API}/projects/get/from_id", params={"project_id": IDS["project"]}, headers=user).json()
    assert [owner["email"] for owner in owners["permissions"]["owners"]] == ["researcher@example.org"]


def test_registered_files_are_aggregated_once(client: TestClient, admin: dict[str, str], lab: Path) -> None:
    assert create(client, admin, project_document(lab)).status_code == 200
    register_runs(client, admin, lab)
    wait_for_rows(client, admin, 3)

    # The same location sent again under another id replaces the first record.
    again = file_document(lab, "run_1", "7d00000000000000000000aa", "7c0000000000000000000001")
    response = client.post(f"{API}/files/upsert_batch", json={"files": [again]}, headers=admin)
    assert response.status_code == 200
    files = client.get(f"{API}/files/list/{IDS['collection']}", headers=admin).json()
    assert sorted(file["_id"] for file in files) == ["7d0000000000000000000002", "7d00000000000000000000aa"]
    wait_for_rows(client, admin, 3)


def test_lists_give_back_what_was_registered(client: TestClient, admin: dict[str, str], lab: Path) -> None:
    assert create(client, admin, project_document(lab)).status_code == 200
    register_runs(client, admin, lab)

    runs = client.get(f"{API}/runs/list/{IDS['workflow']}", headers=admin).json()
    files = client.get(f"{API}/files/list/{IDS['collection']}", headers=admin).json()

    assert [run["_id"] for run in runs] == ["7c0000000000000000000001", "7c0000000000000000000002"]
    assert all(set(run) == RUN_KEYS for run in runs)
    assert runs[0]["run_location"] == str(lab / "run_1")
    assert runs[0]["files_id"] == ["7d0000000000000000000001"]
    assert runs[0]["scan_results"][0]["stats"] == {"new_files": 1}
    assert [(file["_id"], file["run_id"], file["file_hash"]) for file in files] == [
        ("7d0000000000000000000001", "7c0000000000000000000001", "a" * 64),
        ("7d0000000000000000000002", "7c0000000000000000000002", "a" * 64),
    ]


def test_changed_and_vanished_files_update_the_table(client: TestClient, admin: dict[str, str], lab: Path) -> None:
    assert create(client, admin, project_document(lab)).status_code == 200
    register_runs(client, admin, lab)
    wait_for_rows(client, admin, 3)

    (lab / "run_2" / "measures.csv").write_text("id,label\n3,c\n4,d\n5,e\n")
    wait_for_rows(client, admin, 5)
    shutil.move(lab / "run_2", lab.parent / "run_2_away")
    wait_for_rows(client, admin, 2)
    details = client.get(f"{API}/files/list/{IDS['collection']}", params={"details": "true"}, headers=admin).json()
    failed = [file for file in details if file["status"] == "failed"]
    assert [file["run_tag"] for file in failed] == ["run_2"]
    assert "cannot be read at its registered location" in failed[0]["error"]

    shutil.move(lab.parent / "run_2_away", lab / "run_2")
    wait_for_rows(client, admin, 5)


def test_outward_symlink_never_read(client: TestClient, admin: dict[str, str], lab: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("id,label\n99,secret\n")
    os.remove(lab / "run_2" / "measures.csv")
    os.symlink(secret, lab / "run_2" / "measures.csv")
    assert create(client, admin, project_document(lab)).status_code == 200
    register_runs(client, admin, lab)

    error = wait_for_error(client, admin, "run_2")
    assert "outside the workflow's locations" in error
    wait_for_rows(client, admin, 2)


def test_file_outside_locations_is_400(client: TestClient, admin: dict[str, str], lab: Path) -> None:
    assert create(client, admin, project_document(lab)).status_code == 200
    outside = file_document(lab, "run_1", "7d00000000000000000000bb", "7c0000000000000000000001")

    for location in ("/etc/passwd", f"{lab}/../../secret.csv", "relative/measures.csv"):
        outside["file_location"] = location
        response = client.post(f"{API}/files/upsert_batch", json={"files": [outside]}, headers=admin)
        assert response.status_code == 400, location
        assert "files[0].file_location" in response.json()["detail"]


def test_deletes_empty_lists_and_table(client: TestClient, admin: dict[str, str], lab: Path) -> None:
    assert create(client, admin, project_document(lab)).status_code == 200
    register_runs(client, admin, lab)
    wait_for_rows(client, admin, 3)

    runs = client.post(
        f"{API}/runs/delete_batch", json={"run_ids": ["7c0000000000000000000002", "f" * 24]}, headers=admin
    )
    files = client.post(f"{API}/files/delete_batch", json={"file_ids": ["7d0000000000000000000002"]}, headers=admin)

    assert runs.json() == {"requested": 2, "deleted": 1, "not_found": 1}
    assert files.json() == {"requested": 1, "deleted": 1, "not_found": 0}
    wait_for_rows(client, admin, 2)
    assert client.delete(f"{API}/files/delete/7d0000000000000000000001", headers=admin).status_code == 200
    assert client.delete(f"{API}/runs/delete/7c0000000000000000000001", headers=admin).status_code == 200
    wait_for_rows(client, admin, None)
    assert client.get(f"{API}/runs/list/{IDS['workflow']}", headers=admin).json() == []


@pytest.mark.parametrize(
    ("runs", "status", "named"),
    [
        ([{"run_tag": 5}], 400, "run_tag"),
        ([{"id": "xyz"}], 400, "id"),
        ([{"colour": "blue"}], 400, "colour"),
        ([{}, {"id": "7c00000000000000000000a2"}], 400, "runs[1].run_tag"),
        (
            [{}, {"id": "7c00000000000000000000a2", "run_tag": "run_2", "workflow_id": "7a00000000000000000000f2"}],
            400,
            "runs[1].workflow_id",
        ),
    ],
)
def test_bad_runs_are_4xx_naming_the_field(
    client: TestClient, admin: dict[str, str], lab: Path, runs: list[dict[str, Any]], status: int, named: str
) -> None:
    assert create(client, admin, project_document(lab)).status_code == 200
    body = {"runs": [run_document(lab, "run_1", "7c00000000000000000000a1", **change) for change in runs]}

    response = client.post(f"{API}/runs/upsert_batch", json=body, headers=admin)

    assert response.status_code == status, response.text
    assert named in response.json()["detail"]


def test_run_tag_of_another_run_is_409(client: TestClient, admin: dict[str, str], lab: Path) -> None:
    assert create(client, admin, project_document(lab)).status_code == 200
    register_runs(client, admin, lab)

    twin = run_document(lab, "run_1", "7c00000000000000000000a9")
    response = client.post(f"{API}/runs/upsert_batch", json={"runs": [twin]}, headers=admin)
    again = client.post(
        f"{API}/runs/upsert_batch",
        json={"runs": [run_document(lab, "run_1", "7c0000000000000000000001")]},
        headers=admin,
    )

    assert response.status_code == 409
    assert "runs[0].run_tag" in response.json()["detail"]
    assert again.json()["existing_count"] == 1


def test_foreign_run_id_is_409(client: TestClient, admin: dict[str, str], lab: Path) -> None:
    assert create(client, admin, project_document(lab)).status_code == 200
    register_runs(client, admin, lab)
    other = project_document(lab, id="7a00000000000000000000e1", name="Other lab project")
    workflow = other["workflows"][0]
    workflow["id"] = "7a00000000000000000000e2"
    workflow["data_collections"][0]["id"] = "7a00000000000000000000e3"
    assert create(client, admin, other).status_code == 200
    stray = file_document(
        lab,
        "run_1",
        "7d00000000000000000000e4",
        "7c0000000000000000000001",
        data_collection_id="7a00000000000000000000e3",
    )

    response = client.post(f"{API}/files/upsert_batch", json={"files": [stray]}, headers=admin)

    assert response.status_code == 409
    assert "files[0].run_id" in response.json()["detail"]


def test_stranger_run_upsert_is_404(client: TestClient, admin: dict[str, str], lab: Path) -> None:
    assert create(client, admin, project_document(lab)).status_code == 200
    stranger = add_user(client, "stranger@example.org", PASSWORD)

    response = client.post(
        f"{API}/runs/upsert_batch",
        json={"runs": [run_document(lab, "run_1", "7c00000000000000000000a1")]},
        headers=stranger,
    )

    assert response.status_code == 404


def test_update_replaces_the_project_and_delete_removes_it(
    client: TestClient, admin: dict[str, str], lab: Path
) -> None:
    assert create(client, admin, project_document(lab)).status_code == 200
    register_runs(client, admin, lab)
    wait_for_rows(client, admin, 3)

    updated = client.put(
        f"{API}/projects/update", json=project_document(lab, description="now described", hash="h2"), headers=admin
    )
    assert updated.status_code == 200
    assert updated.json()["success"] is True
    project = client.get(f"{API}/projects/get/from_id", params={"project_id": IDS["project"]}, headers=admin).json()
    assert (project["description"], project["hash"]) == ("now described", "h2")
    assert table_rows(client, admin) == 3

    deleted = client.delete(f"{API}/projects/delete", params={"project_id": IDS["project"]}, headers=admin)
    assert deleted.status_code == 200
    assert deleted.json()["success"] is True
    assert (
        client.get(f"{API}/projects/get/from_id", params={"project_id": IDS["project"]}, headers=admin).status_code
        == 404
    )
    assert client.app.state.catalog.store.query("SELECT count(*) FROM files") == [(0,)]


def test_config_project_is_read_only(tmp_path: Path) -> None:
    root = tmp_path / "configured"
    root.mkdir()
    write_settings(root, list(copy_bundled_examples(root)))
    settings = load_settings(str(root / "depictio.toml"), environ={})
    with TestClient(create_app(settings, load_projects(settings.projects), admin_password=ADMIN_PASSWORD)) as client:
        headers = login(client, ADMIN, ADMIN_PASSWORD)
        project = client.get(f"{API}/projects/get/all", headers=headers).json()[0]
        collection = project["workflows"][0]["data_collections"][0]["id"]
        files_before = client.get(f"{API}/files/list/{collection}", headers=headers).json()

        update = client.put(f"{API}/projects/update", json=project, headers=headers)
        delete = client.delete(f"{API}/projects/delete", params={"project_id": project["id"]}, headers=headers)
        pushed = dict(files_before[0], id="7d00000000000000000000cc")
        pushed.pop("_id")
        upsert = client.post(f"{API}/files/upsert_batch", json={"files": [pushed]}, headers=headers)

        assert update.status_code == 409
        assert "project file" in update.json()["detail"]
        assert delete.status_code == 409
        assert upsert.status_code == 200
        assert upsert.json()["existing_count"] == 1
        assert client.get(f"{API}/files/list/{collection}", headers=headers).json() == files_before


def test_sent_project_is_ingested_again_after_a_restart(tmp_path: Path, lab: Path) -> None:
    environ = {"DEPICTIO_INGEST_CLIENT_ROOTS": str(lab.parent), "DEPICTIO_INGEST_SETTLE_SECONDS": "0"}
    service = tmp_path / "restarted"
    service.mkdir()
    with app_without_projects(service, environ) as first:
        headers = login(first, ADMIN, ADMIN_PASSWORD)
        assert create(first, headers, project_document(lab)).status_code == 200
        register_runs(first, headers, lab)
        wait_for_rows(first, headers, 3)
    (lab / "run_1" / "measures.csv").write_text("id,label\n1,a\n")

    with app_without_projects(service, environ) as second:
        headers = login(second, ADMIN, ADMIN_PASSWORD)
        wait_for_rows(second, headers, 2)
        runs = second.get(f"{API}/runs/list/{IDS['workflow']}", headers=headers).json()
        assert [run["run_tag"] for run in runs] == ["run_1", "run_2"]


def test_location_relinked_outside_roots_unread(client: TestClient, lab: Path, tmp_path: Path) -> None:
    user = add_user(client, "linker@example.org", PASSWORD)
    later = lab.parent / "later"
    document = project_document(later)
    assert create(client, user, document).status_code == 200
    outside = tmp_path / "outside"
    (outside / "run_1").mkdir(parents=True)
    (outside / "run_1" / "measures.csv").write_text("id,label\n99,secret\n")
    later.symlink_to(outside)
    body = {"files": [file_document(later, "run_1", "7d00000000000000000000f1", "7c00000000000000000000f1")]}

    assert client.post(f"{API}/files/upsert_batch", json=body, headers=user).status_code == 200

    assert "outside the workflow's locations" in wait_for_error(client, user, "run_1")
    assert table_rows(client, user) is None


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ([{}, {}], "files[1].id"),
        ([{}, {"id": "7d00000000000000000000b2"}], "files[1].file_location"),
        ([{"file_location": "/data/run_1/measures\x00.csv"}], "files[0].file_location"),
        ([{"modification_time": "9999-12-31T23:59:59-05:00"}], "files[0].modification_time"),
        ([{"filesize": 2**63}], "filesize"),
        ([{"run_tag": "run_1\n2026-01-01 INFO forged line"}], "files[0].run_tag"),
    ],
)
def test_bad_files_are_400_naming_the_field(
    client: TestClient, admin: dict[str, str], lab: Path, changes: list[dict[str, Any]], named: str
) -> None:
    assert create(client, admin, project_document(lab)).status_code == 200
    body = {
        "files": [
            file_document(lab, "run_1", "7d00000000000000000000b1", "7c0000000000000000000001", **change)
            for change in changes
        ]
    }

    response = client.post(f"{API}/files/upsert_batch", json=body, headers=admin)

    assert response.status_code == 400, response.text
    assert named in response.json()["detail"]
    assert client.get(f"{API}/files/list/{IDS['collection']}", headers=admin).json() == []


@pytest.mark.parametrize(
    "change", [{"name": "Lab\n2026-01-01 INFO forged"}, {"name": "Lab\u202eevil"}, {"name": "Lab\x00"}]
)
def test_hidden_characters_in_a_project_name_are_400(
    client: TestClient, admin: dict[str, str], lab: Path, change: dict[str, Any]
) -> None:
    response = create(client, admin, project_document(lab, **change))

    assert response.status_code == 400
    assert "name" in response.json()["detail"]


def test_update_keeps_sharing_and_reports_stay_readable(client: TestClient, admin: dict[str, str], lab: Path) -> None:
    viewer = add_user(client, "viewer@example.org", PASSWORD)
    assert create(client, admin, project_document(lab)).status_code == 200
    permissions = {"project_id": IDS["project"], "permissions": {"owners": [ADMIN], "viewers": ["viewer@example.org"]}}
    assert client.post(f"{API}/projects/update_project_permissions", json=permissions, headers=admin).status_code == 200
    register_runs(client, admin, lab)
    wait_for_rows(client, admin, 3)

    resent = project_document(lab, is_public=True)
    assert client.put(f"{API}/projects/update", json=resent, headers=admin).status_code == 200

    project = client.get(f"{API}/projects/get/from_id", params={"project_id": IDS["project"]}, headers=viewer)
    assert project.status_code == 200
    assert project.json()["is_public"] is False
    assert client.get(f"{API}/scans", params={"project_id": IDS["project"]}, headers=admin).status_code == 200
    assert client.get(f"{API}/projects/ingestion-report/{IDS['project']}", headers=admin).status_code == 200
