"""Downloads of registered files and run archives, over the real app and real files in a temporary folder."""

from __future__ import annotations

import errno
import io
import os
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from litestar.testing import TestClient

import api.artifacts as artifacts
from api import create_app
from catalog import FileRecord
from config import load_projects, load_settings
from config.ids import derive_id
from tests.api.conftest import API, add_user, login
from tests.api.test_sent_projects import IDS as SENT_IDS
from tests.api.test_sent_projects import file_document, project_document
from tests.examples import copy_bundled_examples, write_settings

PASSWORD = "artifact-test-password"
VIEWER = "viewer@example.org"
STRANGER = "stranger@example.org"
PENGUINS_WORKFLOW = "6a0001000000000000000002"
IRIS_WORKFLOW = "6a0002000000000000000002"


@dataclass
class World:
    client: TestClient
    root: Path
    viewer: dict[str, str]
    stranger: dict[str, str]
    admin: dict[str, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("artifacts")
    penguins, iris = copy_bundled_examples(root)
    # Penguins is private with one viewer; iris is private with no member but its owner.
    roles = f"permissions:\n  owners: [admin@example.org]\n  viewers: [{VIEWER}]"
    penguins.write_text(penguins.read_text().replace("is_public: true", f"is_public: false\n{roles}"))
    iris.write_text(iris.read_text().replace("is_public: true", "is_public: false"))
    settings_path = write_settings(root, [penguins, iris])
    settings = load_settings(str(settings_path), environ={"DEPICTIO_INGEST_WATCH_MODE": "off"})
    app = create_app(settings, load_projects(settings.projects), admin_password=PASSWORD)
    with TestClient(app) as client:
        yield World(
            client=client,
            root=root,
            viewer=add_user(client, VIEWER, PASSWORD),
            stranger=add_user(client, STRANGER, PASSWORD),
            admin=login(client, "admin@example.org", PASSWORD),
        )


def _files(world: World, workflow_id: str) -> list[FileRecord]:
    records: list[FileRecord] = world.client.app.state.catalog.files.list_for_workflow(workflow_id)
    assert records, f"workflow {workflow_id} has no registered file"
    return sorted(records, key=lambda record: record.file_location)


def _penguin_file(world: World) -> FileRecord:
    return _files(world, PENGUINS_WORKFLOW)[0]


def _content_url(file_id: str) -> str:
    return f"{API}/files/{file_id}/content"


@pytest.fixture
def restored(world: World) -> Iterator[FileRecord]:
    """Yield a registered penguins file, then put back its bytes and mtime, so the catalog's record fits again."""
    record = _penguin_file(world)
    path = Path(record.file_location)
    original = path.read_bytes()
    yield record
    if path.is_symlink() or path.exists():
        path.unlink()
    path.write_bytes(original)
    os.utime(path, ns=(record.mtime_ns, record.mtime_ns))


def test_viewer_downloads_identical_bytes(world: World) -> None:
    record = _penguin_file(world)

    response = world.client.get(_content_url(record.id), headers=world.viewer)

    assert response.status_code == 200, response.text
    assert response.content == Path(record.file_location).read_bytes()
    assert response.headers["etag"] == f'"{record.content_hash}"'
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == f'attachment; filename="{record.filename}"'
    assert response.headers["x-content-type-options"] == "nosniff"


def test_stranger_gets_404(world: World) -> None:
    response = world.client.get(_content_url(_penguin_file(world).id), headers=world.stranger)

    assert response.status_code == 404
    assert response.json()["detail"].endswith("not found")


def test_anonymous_gets_401(world: World) -> None:
    response = world.client.get(_content_url(_penguin_file(world).id))

    assert response.status_code == 401


def test_file_of_unreadable_project_is_404(world: World) -> None:
    iris_file = _files(world, IRIS_WORKFLOW)[0]

    response = world.client.get(_content_url(iris_file.id), headers=world.viewer)

    assert response.status_code == 404


def test_missing_file_id_is_404(world: World) -> None:
    response = world.client.get(_content_url("f" * 24), headers=world.admin)

    assert response.status_code == 404


@pytest.mark.parametrize(
    "file_id",
    ["..%2F..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "..", "%2E%2E%2Fcatalog.duckdb"],
)
def test_path_in_file_id_is_rejected(world: World, file_id: str) -> None:
    response = world.client.get(f"{API}/files/{file_id}/content", headers=world.admin)

    assert response.status_code == 404
    assert b"root:" not in response.content


def test_registered_location_as_id_is_rejected(world: World) -> None:
    location = _penguin_file(world).file_location

    response = world.client.get(_content_url(location.replace("/", "%2F")), headers=world.admin)

    assert response.status_code == 404


def test_symlink_out_of_locations_is_rejected(world: World, restored: FileRecord, tmp_path: Path) -> None:
    # The target has the same bytes and mtime, so only its place can be the reason.
    outside = tmp_path / "outside.csv"
    shutil.copy2(restored.file_location, outside)
    os.utime(outside, ns=(restored.mtime_ns, restored.mtime_ns))
    Path(restored.file_location).unlink()
    Path(restored.file_location).symlink_to(outside)

    response = world.client.get(_content_url(restored.id), headers=world.admin)

    assert response.status_code == 409
    assert "outside its workflow's locations" in response.json()["detail"]


def test_symlink_inside_locations_is_served(world: World, restored: FileRecord) -> None:
    path = Path(restored.file_location)
    inside = path.parent / "copy-of-registered-file.bin"
    shutil.copy2(path, inside)
    os.utime(inside, ns=(restored.mtime_ns, restored.mtime_ns))
    try:
        path.unlink()
        path.symlink_to(inside)

        response = world.client.get(_content_url(restored.id), headers=world.admin)
    finally:
        inside.unlink()

    assert response.status_code == 200
    assert response.headers["etag"] == f'"{restored.content_hash}"'


def test_changed_content_gets_409(world: World, restored: FileRecord) -> None:
    path = Path(restored.file_location)
    original = path.read_bytes()
    # Same size, other bytes: only the content hash tells.
    path.write_bytes(original[:-2] + (b"99" if original[-2:] != b"99" else b"88"))

    response = world.client.get(_content_url(restored.id), headers=world.admin)

    assert response.status_code == 409
    assert "other content on disk" in response.json()["detail"]


def test_changed_size_gets_409(world: World, restored: FileRecord) -> None:
    Path(restored.file_location).write_bytes(b"a,b\n1,2\n")

    response = world.client.get(_content_url(restored.id), headers=world.admin)

    assert response.status_code == 409
    assert "bytes on disk" in response.json()["detail"]


def test_range_returns_slice(world: World) -> None:
    record = _penguin_file(world)
    original = Path(record.file_location).read_bytes()

    response = world.client.get(_content_url(record.id), headers={**world.viewer, "Range": "bytes=10-29"})

    assert response.status_code == 206
    assert response.content == original[10:30]
    assert response.headers["content-range"] == f"bytes 10-29/{len(original)}"


def test_suffix_range_returns_tail(world: World) -> None:
    record = _penguin_file(world)
    original = Path(record.file_location).read_bytes()

    response = world.client.get(_content_url(record.id), headers={**world.viewer, "Range": "bytes=-7"})

    assert response.status_code == 206
    assert response.content == original[-7:]


def test_open_range_returns_rest(world: World) -> None:
    record = _penguin_file(world)
    original = Path(record.file_location).read_bytes()

    response = world.client.get(_content_url(record.id), headers={**world.viewer, "Range": "bytes=5-"})

    assert response.status_code == 206
    assert response.content == original[5:]


def test_range_after_end_gets_416(world: World) -> None:
    record = _penguin_file(world)

    response = world.client.get(_content_url(record.id), headers={**world.viewer, "Range": f"bytes={record.filesize}-"})

    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{record.filesize}"
    assert response.json()["status_code"] == 416


def test_range_with_other_if_range_sends_whole_file(world: World) -> None:
    record = _penguin_file(world)

    response = world.client.get(
        _content_url(record.id), headers={**world.viewer, "Range": "bytes=0-3", "If-Range": '"old"'}
    )

    assert response.status_code == 200
    assert len(response.content) == record.filesize


def test_if_none_match_gets_304(world: World) -> None:
    record = _penguin_file(world)
    etag = f'"{record.content_hash}"'

    response = world.client.get(_content_url(record.id), headers={**world.viewer, "If-None-Match": etag})

    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag


def test_archive_holds_every_run_file(world: World) -> None:
    run = world.client.app.state.catalog.runs.list_for_workflow(PENGUINS_WORKFLOW)[0]
    expected = {
        os.path.relpath(record.file_location, run.run_location): Path(record.file_location).read_bytes()
        for record in _files(world, PENGUINS_WORKFLOW)
        if record.run_id == run.id
    }

    response = world.client.get(f"{API}/runs/{run.id}/archive", headers=world.viewer)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == f'attachment; filename="{run.run_tag}.zip"'
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == sorted(expected)
        for name, content in expected.items():
            assert archive.read(name) == content, name


def test_archive_for_stranger_is_404(world: World) -> None:
    run = world.client.app.state.catalog.runs.list_for_workflow(PENGUINS_WORKFLOW)[0]

    response = world.client.get(f"{API}/runs/{run.id}/archive", headers=world.stranger)

    assert response.status_code == 404


def test_archive_with_changed_file_gets_409(world: World, restored: FileRecord) -> None:
    Path(restored.file_location).write_bytes(b"a,b\n1,2\n")

    response = world.client.get(f"{API}/runs/{restored.run_id}/archive", headers=world.admin)

    assert response.status_code == 409
    assert restored.file_location in response.json()["detail"]


def test_link_swapped_in_during_open_is_409(
    world: World, restored: FileRecord, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The path resolves to the registered file, then a link to a file outside the locations,
    # with the same size and mtime, takes its place just before the open.
    path = Path(restored.file_location)
    original = path.read_bytes()
    secret = tmp_path / "secret.csv"
    secret.write_bytes(b"S" * len(original))
    os.utime(secret, ns=(restored.mtime_ns, restored.mtime_ns))
    real_open_beneath = artifacts.open_beneath

    def swap_then_open(real_path: str, root: str) -> object:
        path.unlink()
        path.symlink_to(secret)
        return real_open_beneath(real_path, root)

    monkeypatch.setattr(artifacts, "open_beneath", swap_then_open)
    response = world.client.get(_content_url(restored.id), headers={**world.admin, "Range": "bytes=0-"})

    assert response.status_code == 409
    assert "replaced while it was opened" in response.json()["detail"]
    assert b"SSSS" not in response.content


def test_folder_swapped_for_link_during_open_is_409(
    world: World, restored: FileRecord, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run folder itself becomes a link to a copy outside the locations.
    run_folder = Path(restored.file_location).parent
    moved = tmp_path / "moved-run"
    outside = tmp_path / "outside-run"
    shutil.copytree(run_folder, outside)
    real_open_beneath = artifacts.open_beneath

    def swap_then_open(real_path: str, root: str) -> object:
        run_folder.rename(moved)
        run_folder.symlink_to(outside)
        return real_open_beneath(real_path, root)

    monkeypatch.setattr(artifacts, "open_beneath", swap_then_open)
    try:
        response = world.client.get(_content_url(restored.id), headers=world.admin)
    finally:
        run_folder.unlink()
        moved.rename(run_folder)

    assert response.status_code == 409


def test_link_resolving_during_swap_is_409(world: World, restored: FileRecord, monkeypatch: pytest.MonkeyPatch) -> None:
    # Python's realpath raises EINVAL when a link turns into a file between lstat and readlink.
    real_realpath = os.path.realpath

    def failing_realpath(name: str, strict: bool = False) -> str:
        if name != restored.file_location:
            return real_realpath(name, strict=strict)
        raise OSError(errno.EINVAL, "Invalid argument", name)

    monkeypatch.setattr(artifacts.os.path, "realpath", failing_realpath)
    response = world.client.get(_content_url(restored.id), headers=world.admin)

    assert response.status_code == 409


def test_link_into_parent_folder_is_rejected(world: World, restored: FileRecord) -> None:
    # Scans read links into a location's parent folder, for Nextflow; downloads do not serve them.
    path = Path(restored.file_location)
    original = path.read_bytes()
    parent_file = path.parents[2] / "project.yaml"
    path.unlink()
    path.symlink_to(parent_file)
    ingestor = world.client.app.state.ingestor
    try:
        ingestor.rescan_workflow(restored.workflow_id)

        response = world.client.get(_content_url(restored.id), headers=world.viewer)
    finally:
        path.unlink()
        path.write_bytes(original)
        os.utime(path, ns=(restored.mtime_ns, restored.mtime_ns))
        ingestor.rescan_workflow(restored.workflow_id)

    assert response.status_code == 409
    assert response.content != parent_file.read_bytes()


def test_link_into_nextflow_work_folder_is_served(world: World, restored: FileRecord) -> None:
    # Nextflow publishes results as links into the work/ folder beside the results folder.
    path = Path(restored.file_location)
    expected = path.read_bytes()
    location = path.parents[1]
    target = location.parent / "work" / "ab" / "cdef" / path.name
    target.parent.mkdir(parents=True)
    shutil.copy2(path, target)
    path.unlink()
    path.symlink_to(target)
    try:
        response = world.client.get(_content_url(restored.id), headers=world.viewer)
    finally:
        shutil.rmtree(location.parent / "work")

    assert response.status_code == 200
    assert response.content == expected


def test_archive_names_replace_backslashes(world: World) -> None:
    run = world.client.app.state.catalog.runs.list_for_workflow(PENGUINS_WORKFLOW)[0]
    record = next(record for record in _files(world, PENGUINS_WORKFLOW) if record.run_id == run.id)

    names = artifacts.archive_names(
        [msgspec.structs.replace(record, file_location=f"{run.run_location}/x\\..\\evil.csv")], run.run_location
    )

    assert [name for _, name in names] == ["x_.._evil.csv"]


@pytest.fixture(scope="module")
def client_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Yield the bundled examples, penguins private with a viewer, and a folder where any user may send projects."""
    root = tmp_path_factory.mktemp("artifacts-clients")
    penguins, iris = copy_bundled_examples(root)
    roles = f"permissions:\n  owners: [admin@example.org]\n  viewers: [{VIEWER}]"
    penguins.write_text(penguins.read_text().replace("is_public: true", f"is_public: false\n{roles}"))
    (root / "clients").mkdir()
    settings_path = write_settings(root, [penguins, iris])
    environ = {"DEPICTIO_INGEST_WATCH_MODE": "off", "DEPICTIO_INGEST_CLIENT_ROOTS": str(root / "clients")}
    settings = load_settings(str(settings_path), environ=environ)
    app = create_app(settings, load_projects(settings.projects), admin_password=PASSWORD)
    with TestClient(app) as client:
        yield World(
            client=client,
            root=root,
            viewer=add_user(client, VIEWER, PASSWORD),
            stranger=add_user(client, STRANGER, PASSWORD),
            admin=login(client, "admin@example.org", PASSWORD),
        )


def test_file_of_other_project_never_joins_run(client_world: World) -> None:
    # Ids of scanned runs derive from the workflow id and the folder name, so another user can
    # register a file under the id of a run that another project writes later.
    future_run = derive_id("run", PENGUINS_WORKFLOW, "run_4_emperor")
    lab = client_world.root / "clients" / "lab" / "data"
    (lab / "run_x").mkdir(parents=True)
    (lab / "run_x" / "measures.csv").write_text("individual_id,bill_length_mm\nFAKE,0\n")
    created = client_world.client.post(
        f"{API}/projects/create", json=project_document(lab), headers=client_world.stranger
    )
    assert created.status_code == 200, created.text
    document = file_document(lab, "run_x", "7f0000000000000000000001", future_run, filename="physical_features.csv")
    registered = client_world.client.post(
        f"{API}/files/upsert_batch", json={"files": [document]}, headers=client_world.stranger
    )
    assert registered.status_code == 200, registered.text
    penguins_data = client_world.root / "bundled" / "penguins" / "data"
    (penguins_data / "run_4_emperor").mkdir()
    shutil.copy2(penguins_data / "run_1_adelie" / "physical_features.csv", penguins_data / "run_4_emperor")
    client_world.client.app.state.ingestor.rescan_workflow(PENGUINS_WORKFLOW)

    archive_response = client_world.client.get(f"{API}/runs/{future_run}/archive", headers=client_world.viewer)
    run_response = client_world.client.get(f"{API}/runs/get/{future_run}", headers=client_world.viewer)

    assert archive_response.status_code == 200, archive_response.text
    with zipfile.ZipFile(io.BytesIO(archive_response.content)) as archive:
        assert archive.namelist() == ["physical_features.csv"]
        assert b"FAKE" not in archive.read("physical_features.csv")
    assert "7f0000000000000000000001" not in run_response.text


def test_touched_file_is_hashed_once(world: World, restored: FileRecord, monkeypatch: pytest.MonkeyPatch) -> None:
    # Same bytes, newer mtime: the content hash decides, and a second request reuses it.
    path = Path(restored.file_location)
    os.utime(path, ns=(restored.mtime_ns + 10**9, restored.mtime_ns + 10**9))
    hashed: list[str] = []
    real_content_hash = artifacts._content_hash

    def counting(handle: object, location: str, opened: os.stat_result) -> str:
        if (location, opened.st_size, opened.st_mtime_ns) not in artifacts._verified:
            hashed.append(location)
        return real_content_hash(handle, location, opened)  # type: ignore[arg-type]

    monkeypatch.setattr(artifacts, "_content_hash", counting)
    first = world.client.get(_content_url(restored.id), headers={**world.viewer, "Range": "bytes=0-0"})
    second = world.client.get(_content_url(restored.id), headers={**world.viewer, "Range": "bytes=0-0"})

    assert first.status_code == 206
    assert second.status_code == 206
    assert hashed == [restored.file_location]


def test_range_with_huge_numbers_sends_whole_file(world: World) -> None:
    record = _penguin_file(world)

    response = world.client.get(_content_url(record.id), headers={**world.viewer, "Range": "bytes=" + "9" * 5000 + "-"})

    assert response.status_code == 200
    assert len(response.content) == record.filesize


def test_sent_project_link_into_link_roots_is_rejected(tmp_path: Path) -> None:
    # Link roots are set for project files; a user who sends a project gets no download from them.
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "private.csv").write_text("individual_id,bill_length_mm\nsecret,1\n")
    lab = tmp_path / "clients" / "lab" / "data"
    (lab / "run_x").mkdir(parents=True)
    (lab / "run_x" / "measures.csv").symlink_to(shared / "private.csv")
    penguins, iris = copy_bundled_examples(tmp_path)
    settings_path = write_settings(tmp_path, [penguins, iris])
    environ = {
        "DEPICTIO_INGEST_WATCH_MODE": "off",
        "DEPICTIO_INGEST_CLIENT_ROOTS": str(tmp_path / "clients"),
        "DEPICTIO_INGEST_LINK_ROOTS": str(shared),
    }
    settings = load_settings(str(settings_path), environ=environ)
    app = create_app(settings, load_projects(settings.projects), admin_password=PASSWORD)
    with TestClient(app) as client:
        stranger = add_user(client, STRANGER, PASSWORD)
        created = client.post(f"{API}/projects/create", json=project_document(lab), headers=stranger)
        assert created.status_code == 200, created.text
        run_id = derive_id("run", "x", "run_x")
        document = file_document(lab, "run_x", "7f0000000000000000000002", run_id)
        registered = client.post(f"{API}/files/upsert_batch", json={"files": [document]}, headers=stranger)
        assert registered.status_code == 200, registered.text
        # The scan reads the link's target, since it lies in a link root.
        client.app.state.ingestor.rescan_workflow(SENT_IDS["workflow"])

        response = client.get(_content_url("7f0000000000000000000002"), headers=stranger)

    assert response.status_code == 409, response.text
    assert "outside its workflow's locations" in response.json()["detail"]
