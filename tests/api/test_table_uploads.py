"""Files uploaded into a data collection's table, and the routes that clear, rename and delete a collection.

Each test runs the real app with its ingestor on a fresh catalog. Uploads go to a project sent
over the API (whose other files a client registered) or to the bundled penguins project,
which depictiod scans from its folders.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow
import pyarrow.parquet
import pytest
from litestar.testing import TestClient

from api import create_app
from config import load_projects, load_settings
from tests.api.conftest import ADMIN_PASSWORD, API, add_user, app_without_projects, login
from tests.api.test_sent_projects import IDS, create, project_document, register_runs, wait_for_rows
from tests.examples import BUNDLED_PHYSICAL_FEATURES_ID, copy_bundled_examples, write_settings

ADMIN = "admin@example.org"
PENGUINS_PROJECT_ID = "6a0001000000000000000001"
PENGUIN_HEADER = "individual_id,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g"


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    """A workflow output folder with two runs of one small CSV each (3 rows in all)."""
    data = tmp_path / "lab" / "data"
    for run, rows in (("run_1", ["1,a", "2,b"]), ("run_2", ["3,c"])):
        (data / run).mkdir(parents=True)
        (data / run / "measures.csv").write_text("id,label\n" + "\n".join(rows) + "\n")
    return data


def service_environ(lab: Path, **extra: str) -> dict[str, str]:
    return {"DEPICTIO_INGEST_CLIENT_ROOTS": str(lab.parent), "DEPICTIO_INGEST_SETTLE_SECONDS": "0", **extra}


@pytest.fixture
def client(tmp_path: Path, lab: Path) -> Iterator[TestClient]:
    (tmp_path / "service").mkdir()
    with app_without_projects(tmp_path / "service", service_environ(lab)) as test_client:
        yield test_client


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    return login(client, ADMIN, ADMIN_PASSWORD)


@pytest.fixture
def sent(client: TestClient, admin: dict[str, str], lab: Path) -> str:
    """Send the lab project and register its two runs; return its collection id once the table has 3 rows."""
    assert create(client, admin, project_document(lab)).status_code == 200
    register_runs(client, admin, lab)
    wait_for_rows(client, admin, 3)
    return IDS["collection"]


@pytest.fixture
def penguins(tmp_path: Path) -> Iterator[TestClient]:
    """The app over a copy of the bundled penguins and iris projects, which depictiod scans."""
    root = tmp_path / "configured"
    root.mkdir()
    write_settings(root, copy_bundled_examples(root))
    settings = load_settings(str(root / "depictio.toml"), environ={})
    with TestClient(create_app(settings, load_projects(settings.projects), admin_password=ADMIN_PASSWORD)) as client:
        yield client


def parquet_bytes(columns: dict[str, list[Any]]) -> bytes:
    buffer = io.BytesIO()
    pyarrow.parquet.write_table(pyarrow.table(columns), buffer)
    return buffer.getvalue()


def upload(
    client: TestClient,
    headers: dict[str, str],
    collection_id: str,
    files: list[tuple[str, bytes]],
    mode: str = "append",
) -> Any:
    parts = [("files", (name, content)) for name, content in files]
    return client.post(f"{API}/datacollections/{collection_id}/{mode}", files=parts, headers=headers)


def shape(client: TestClient, headers: dict[str, str], collection_id: str) -> int | None:
    response = client.get(f"{API}/deltatables/shape/{collection_id}", headers=headers)
    return int(response.json()["num_rows"]) if response.status_code == 200 else None


def file_details(client: TestClient, headers: dict[str, str], collection_id: str) -> list[dict[str, Any]]:
    response = client.get(f"{API}/files/list/{collection_id}", params={"details": "true"}, headers=headers)
    assert response.status_code == 200, response.text
    files: list[dict[str, Any]] = response.json()
    return files


def uploads_folder(client: TestClient, collection_id: str) -> Path:
    return Path(client.app.state.catalog.path + ".uploads") / collection_id


def test_append_formats_to_sent_collection(client: TestClient, admin: dict[str, str], sent: str) -> None:
    csv = upload(client, admin, sent, [("more.csv", b"id,label\n4,d\n5,e\n")])
    tsv = upload(client, admin, sent, [("more.tsv", b"id\tlabel\n6\tf\n7\tg\n")])
    parquet = upload(client, admin, sent, [("more.parquet", parquet_bytes({"id": [8], "label": ["h"]}))])

    assert csv.status_code == 200, csv.text
    assert (csv.json()["rows_total"], csv.json()["rows_added"]) == (5, 2)
    assert (tsv.json()["rows_total"], tsv.json()["rows_added"]) == (7, 2)
    assert parquet.status_code == 200, parquet.text
    assert (parquet.json()["rows_total"], parquet.json()["rows_added"]) == (8, 1)
    assert [body.json()["files"][0]["format"] for body in (csv, tsv, parquet)] == ["csv", "tsv", "parquet"]
    assert all(body.json()["success"] is True for body in (csv, tsv, parquet))
    assert shape(client, admin, sent) == 8

    preview = client.get(f"{API}/deltatables/preview/{sent}", params={"limit": 100}, headers=admin).json()
    uploaded = sorted(row["label"] for row in preview["rows"] if row["depictio_run_id"] == "upload")
    assert uploaded == ["d", "e", "f", "g", "h"]
    details = file_details(client, admin, sent)
    assert sorted(file["filename"] for file in details if file["run_tag"] == "upload") == [
        "more.csv",
        "more.parquet",
        "more.tsv",
    ]
    assert sorted(os.listdir(uploads_folder(client, sent))) == sorted(
        f"{file['_id']}.{file['filename'].rsplit('.', 1)[1]}" for file in details if file["run_tag"] == "upload"
    )


def test_uploaded_file_mode_is_private(client: TestClient, admin: dict[str, str], sent: str) -> None:
    response = upload(client, admin, sent, [("more.csv", b"id,label\n4,d\n")])

    stored = uploads_folder(client, sent) / f"{response.json()['files'][0]['id']}.csv"
    assert stored.read_bytes() == b"id,label\n4,d\n"
    assert stored.stat().st_mode & 0o777 == 0o600


def test_uploads_survive_registered_file_check(client: TestClient, admin: dict[str, str], sent: str, lab: Path) -> None:
    assert upload(client, admin, sent, [("more.csv", b"id,label\n4,d\n")]).json()["rows_total"] == 4

    # A changed client file makes the ingestor check every registered file of the workflow.
    (lab / "run_2" / "measures.csv").write_text("id,label\n3,c\n9,z\n")
    wait_for_rows(client, admin, 5)

    uploaded = [file for file in file_details(client, admin, sent) if file["run_tag"] == "upload"]
    assert [file["status"] for file in uploaded] == ["aggregated"]


def test_scan_keeps_appended_files(penguins: TestClient) -> None:
    headers = login(penguins, ADMIN, ADMIN_PASSWORD)
    before = shape(penguins, headers, BUNDLED_PHYSICAL_FEATURES_ID)
    assert before is not None
    rows = "\n".join(f"zoo_{index:03},40.1,18.2,190,3900" for index in range(3))

    csv = upload(penguins, headers, BUNDLED_PHYSICAL_FEATURES_ID, [("zoo.csv", f"{PENGUIN_HEADER}\n{rows}\n".encode())])
    tsv_text = PENGUIN_HEADER.replace(",", "\t") + "\nzoo_100\t41.0\t18.0\t191\t4000\n"
    tsv = upload(penguins, headers, BUNDLED_PHYSICAL_FEATURES_ID, [("zoo.tsv", tsv_text.encode())])
    parquet = upload(
        penguins,
        headers,
        BUNDLED_PHYSICAL_FEATURES_ID,
        [("zoo.parquet", parquet_bytes({"individual_id": ["zoo_200"], "bill_length_mm": [42.5]}))],
    )
    assert csv.status_code == 200, csv.text
    assert csv.json()["rows_total"] == before + 3
    assert tsv.json()["rows_total"] == before + 4
    assert parquet.status_code == 200, parquet.text
    assert parquet.json()["rows_total"] == before + 5

    scan = penguins.post(f"{API}/projects/{PENGUINS_PROJECT_ID}/scan", headers=headers)

    assert scan.status_code == 200, scan.text
    assert shape(penguins, headers, BUNDLED_PHYSICAL_FEATURES_ID) == before + 5
    uploaded = [
        file for file in file_details(penguins, headers, BUNDLED_PHYSICAL_FEATURES_ID) if file["run_tag"] == "upload"
    ]
    assert len(uploaded) == 3
    assert all(Path(file["file_location"]).is_file() for file in uploaded)
    reports = penguins.get(f"{API}/scans", params={"project_id": PENGUINS_PROJECT_ID}, headers=headers).json()
    assert all(report["files_removed"] == 0 for report in reports["scans"])


def test_drifting_column_type_is_widened(client: TestClient, admin: dict[str, str], sent: str) -> None:
    response = upload(client, admin, sent, [("letters.csv", b"id,label\nx9,d\n")])

    assert response.status_code == 200, response.text
    assert response.json()["rows_total"] == 4
    table = client.get(f"{API}/deltatables/get/{sent}", headers=admin).json()
    # The text of the upload widens the column, so the client's files of integers now drift from it.
    drift = [note for note in table["drift"] if note["column"] == "id"]
    assert sorted(note["file_id"] for note in drift) == ["7d0000000000000000000001", "7d0000000000000000000002"]
    assert {note["table_type"] for note in drift} == {"VARCHAR"}
    specs = {spec["name"]: spec["type"] for spec in client.get(f"{API}/deltatables/specs/{sent}", headers=admin).json()}
    assert specs["id"] == "object"


def test_malformed_upload_is_recorded_failed(client: TestClient, admin: dict[str, str], sent: str) -> None:
    version = client.get(f"{API}/deltatables/get/{sent}", headers=admin).json()["aggregation"][0]

    response = upload(client, admin, sent, [("broken.parquet", b"this is not a parquet file at all")])

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is False
    assert body["files"][0]["status"] == "failed"
    assert body["files"][0]["error"]
    assert "broken.parquet" in body["message"]
    assert body["rows_total"] == 3
    assert shape(client, admin, sent) == 3
    failed = [file for file in file_details(client, admin, sent) if file["status"] == "failed"]
    assert [file["filename"] for file in failed] == ["broken.parquet"]
    assert body["aggregation_version"] >= version["aggregation_version"]


def test_oversize_upload_is_413(tmp_path: Path, lab: Path) -> None:
    (tmp_path / "small").mkdir()
    with app_without_projects(tmp_path / "small", service_environ(lab, DEPICTIO_SERVER_MAX_UPLOAD_MB="1")) as client:
        headers = login(client, ADMIN, ADMIN_PASSWORD)
        assert create(client, headers, project_document(lab)).status_code == 200
        big = b"id,label\n" + b"1,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n" * 70_000

        response = upload(client, headers, IDS["collection"], [("big.csv", big)])

        assert len(big) > 2 * 1024 * 1024
        assert response.status_code == 413
        assert "server.max_upload_mb" in response.json()["detail"]
        assert not uploads_folder(client, IDS["collection"]).exists()


def test_unstorable_upload_is_503_with_retry(client: TestClient, admin: dict[str, str], sent: str) -> None:
    # A file where the collection's upload folder belongs makes creating that folder fail
    # with an OSError, the same path as a full disk (ENOSPC) or a file size limit (EFBIG).
    blocker = uploads_folder(client, sent)
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_bytes(b"")

    response = upload(client, admin, sent, [("more.csv", b"id,label\n4,d\n")])

    assert response.status_code == 503
    assert set(response.json()) == {"status_code", "detail"}
    assert "the uploaded file could not be stored" in response.json()["detail"]
    assert response.headers["retry-after"] == "30"
    assert shape(client, admin, sent) == 3


@pytest.mark.parametrize("name", ["table.xlsx", "notes.txt", "no_suffix"])
def test_other_formats_are_400(client: TestClient, admin: dict[str, str], sent: str, name: str) -> None:
    response = upload(client, admin, sent, [("fine.csv", b"id,label\n4,d\n"), (name, b"id,label\n5,e\n")])

    assert response.status_code == 400
    assert f"files[1]: {name!r}" in response.json()["detail"]
    assert shape(client, admin, sent) == 3
    assert not uploads_folder(client, sent).exists()


def test_upload_without_files_is_400(client: TestClient, admin: dict[str, str], sent: str) -> None:
    response = client.post(
        f"{API}/datacollections/{sent}/append", files=[("other", ("a.csv", b"id\n1\n"))], headers=admin
    )

    assert response.status_code == 400
    assert "files" in response.json()["detail"]


def test_replace_removes_earlier_files(client: TestClient, admin: dict[str, str], sent: str) -> None:
    first = upload(client, admin, sent, [("first.csv", b"id,label\n4,d\n")]).json()["files"][0]

    response = upload(client, admin, sent, [("only.csv", b"id,label\n10,x\n11,y\n")], mode="replace")

    assert response.status_code == 200, response.text
    assert (response.json()["rows_total"], response.json()["files_removed"]) == (2, 3)
    assert shape(client, admin, sent) == 2
    assert [file["filename"] for file in file_details(client, admin, sent)] == ["only.csv"]
    assert not (uploads_folder(client, sent) / f"{first['id']}.csv").exists()


def test_clear_removes_files_and_table(client: TestClient, admin: dict[str, str], sent: str) -> None:
    upload(client, admin, sent, [("more.csv", b"id,label\n4,d\n")])

    response = client.delete(f"{API}/datacollections/{sent}/data", headers=admin)

    assert response.status_code == 200, response.text
    assert (response.json()["rows_total"], response.json()["files_removed"]) == (0, 3)
    assert response.json()["aggregation_version"] is None
    assert shape(client, admin, sent) is None
    assert file_details(client, admin, sent) == []
    assert os.listdir(uploads_folder(client, sent)) == []
    assert client.get(f"{API}/datacollections/specs/{sent}", headers=admin).status_code == 200


def test_scanned_collection_changes_are_409(penguins: TestClient) -> None:
    headers = login(penguins, ADMIN, ADMIN_PASSWORD)
    before = shape(penguins, headers, BUNDLED_PHYSICAL_FEATURES_ID)
    content = f"{PENGUIN_HEADER}\nzoo_001,40.1,18.2,190,3900\n".encode()

    replace = upload(penguins, headers, BUNDLED_PHYSICAL_FEATURES_ID, [("zoo.csv", content)], mode="replace")
    clear = penguins.delete(f"{API}/datacollections/{BUNDLED_PHYSICAL_FEATURES_ID}/data", headers=headers)
    rename = penguins.put(
        f"{API}/datacollections/{BUNDLED_PHYSICAL_FEATURES_ID}/name", json={"new_name": "body"}, headers=headers
    )
    removal = penguins.delete(f"{API}/datacollections/{BUNDLED_PHYSICAL_FEATURES_ID}", headers=headers)

    for response in (replace, clear, rename, removal):
        assert response.status_code == 409, response.text
        assert "project file" in response.json()["detail"]
    assert "next scan" in replace.json()["detail"]
    assert shape(penguins, headers, BUNDLED_PHYSICAL_FEATURES_ID) == before


def test_delete_upload_from_scanned_collection(penguins: TestClient) -> None:
    headers = login(penguins, ADMIN, ADMIN_PASSWORD)
    before = shape(penguins, headers, BUNDLED_PHYSICAL_FEATURES_ID)
    assert before is not None
    content = f"{PENGUIN_HEADER}\nzoo_001,40.1,18.2,190,3900\n".encode()
    uploaded = upload(penguins, headers, BUNDLED_PHYSICAL_FEATURES_ID, [("zoo.csv", content)]).json()["files"][0]
    stored = uploads_folder(penguins, BUNDLED_PHYSICAL_FEATURES_ID) / f"{uploaded['id']}.csv"
    assert stored.is_file()

    response = penguins.delete(f"{API}/files/delete/{uploaded['id']}", headers=headers)

    assert response.status_code == 200, response.text
    assert not stored.exists()
    deadline = time.monotonic() + 20
    while shape(penguins, headers, BUNDLED_PHYSICAL_FEATURES_ID) != before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert shape(penguins, headers, BUNDLED_PHYSICAL_FEATURES_ID) == before


def test_rename_checks_the_new_tag(client: TestClient, admin: dict[str, str], lab: Path) -> None:
    document = project_document(lab)
    second = dict(document["workflows"][0]["data_collections"][0], id="7a0000000000000000000004")
    second["data_collection_tag"] = "notes"
    document["workflows"][0]["data_collections"].append(second)
    document["joins"] = [{"name": "measures_notes", "left_dc": "measures", "right_dc": "notes", "on_columns": ["id"]}]
    assert create(client, admin, document).status_code == 200
    path = f"{API}/datacollections/{IDS['collection']}/name"

    renamed = client.put(path, json={"new_name": "readings"}, headers=admin)
    bad = client.put(path, json={"new_name": "two words"}, headers=admin)
    duplicate = client.put(path, json={"new_name": "notes"}, headers=admin)
    unknown_field = client.put(path, json={"new_name": "x", "colour": "blue"}, headers=admin)

    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["data_collection_tag"] == "readings"
    project = client.get(f"{API}/projects/get/from_id", params={"project_id": IDS["project"]}, headers=admin).json()
    tags = [dc["data_collection_tag"] for dc in project["workflows"][0]["data_collections"]]
    assert tags == ["readings", "notes"]
    assert project["joins"][0]["left_dc"] == "readings"
    assert bad.status_code == 400
    assert "new_name" in bad.json()["detail"]
    assert duplicate.status_code == 409
    assert "notes" in duplicate.json()["detail"]
    assert unknown_field.status_code == 400
    assert "colour" in unknown_field.json()["detail"]


def test_viewer_cannot_rename_and_editor_cannot_delete(client: TestClient, admin: dict[str, str], lab: Path) -> None:
    editor = add_user(client, "editor@example.org", "editor-password-1")
    viewer = add_user(client, "viewer@example.org", "viewer-password-1")
    document = project_document(lab, permissions={"owners": [], "editors": ["editor@example.org"], "viewers": []})
    document["permissions"]["viewers"] = ["viewer@example.org"]
    assert create(client, admin, document).status_code == 200

    rename = client.put(
        f"{API}/datacollections/{IDS['collection']}/name", json={"new_name": "readings"}, headers=viewer
    )
    removal = client.delete(f"{API}/datacollections/{IDS['collection']}", headers=editor)

    assert rename.status_code == 403
    assert removal.status_code == 403


def test_delete_removes_collection_and_uploads(client: TestClient, admin: dict[str, str], sent: str) -> None:
    upload(client, admin, sent, [("more.csv", b"id,label\n4,d\n")])
    assert uploads_folder(client, sent).is_dir()

    response = client.delete(f"{API}/datacollections/{sent}", headers=admin)

    assert response.status_code == 200, response.text
    assert client.get(f"{API}/datacollections/specs/{sent}", headers=admin).status_code == 404
    assert client.app.state.catalog.store.query("SELECT count(*) FROM files") == [(0,)]
    assert client.app.state.catalog.tables.get(sent) is None
    assert not uploads_folder(client, sent).exists()
    project = client.get(f"{API}/projects/get/from_id", params={"project_id": IDS["project"]}, headers=admin).json()
    assert project["workflows"][0]["data_collections"] == []


def test_collection_in_a_join_is_not_deleted(client: TestClient, admin: dict[str, str], lab: Path) -> None:
    document = project_document(lab)
    second = dict(document["workflows"][0]["data_collections"][0], id="7a0000000000000000000004")
    second["data_collection_tag"] = "notes"
    document["workflows"][0]["data_collections"].append(second)
    document["joins"] = [{"name": "both", "left_dc": "measures", "right_dc": "notes", "on_columns": ["id"]}]
    assert create(client, admin, document).status_code == 200

    response = client.delete(f"{API}/datacollections/{IDS['collection']}", headers=admin)

    assert response.status_code == 409
    assert "joins[0]" in response.json()["detail"]


def test_project_delete_removes_its_uploads(client: TestClient, admin: dict[str, str], sent: str) -> None:
    upload(client, admin, sent, [("more.csv", b"id,label\n4,d\n")])

    response = client.delete(f"{API}/projects/delete", params={"project_id": IDS["project"]}, headers=admin)

    assert response.status_code == 200
    assert not uploads_folder(client, sent).exists()


def test_upload_wait_for_scan_is_bounded(client: TestClient, admin: dict[str, str], sent: str) -> None:
    ingestor = client.app.state.ingestor
    ingestor.upload_wait_seconds = 0.05

    # The scan lock stands for a long scan that is still running.
    with ingestor._scan_lock:
        response = upload(client, admin, sent, [("more.csv", b"id,label\n4,d\n")])

    assert response.status_code == 202, response.text
    assert response.json()["aggregated"] is False
    assert response.json()["rows_total"] == 3
    wait_for_rows(client, admin, 4)


def test_start_removes_stray_uploads(tmp_path: Path, lab: Path) -> None:
    service = tmp_path / "restarted"
    service.mkdir()
    with app_without_projects(service, service_environ(lab)) as client:
        headers = login(client, ADMIN, ADMIN_PASSWORD)
        assert create(client, headers, project_document(lab)).status_code == 200
        registered = upload(client, headers, IDS["collection"], [("kept.csv", b"id,label\n4,d\n")]).json()["files"][0]
        folder = uploads_folder(client, IDS["collection"])
    (folder / ".partial-0123.csv").write_bytes(b"id,label\n")
    (folder / "stray.csv").write_bytes(b"id,label\n5,e\n")
    (folder.parent / ("f" * 24)).mkdir()

    settings = load_settings(str(service / "depictio.toml"), environ=service_environ(lab))
    with TestClient(create_app(settings, [], admin_password=ADMIN_PASSWORD)):
        assert os.listdir(folder) == [f"{registered['id']}.csv"]
        assert sorted(os.listdir(folder.parent)) == [IDS["collection"]]
