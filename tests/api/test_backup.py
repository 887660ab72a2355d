"""`POST /utils/backup` on the real app over the bundled examples, and restores of what it writes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pytest
from litestar.testing import TestClient

from api import create_app
from catalog import BackupManifest, Catalog, restore_backup, verify_backup
from config import load_projects, load_settings
from tests.api.conftest import ADMIN_PASSWORD, API, login
from tests.api.test_table_uploads import PENGUIN_HEADER, upload
from tests.examples import BUNDLED_PHYSICAL_FEATURES_ID, copy_bundled_examples, write_settings

STATUS = f"{API}/utils/status"
BACKUP = f"{API}/utils/backup"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[TestClient]:
    """The app over a copy of the bundled examples, with its catalog in tmp_path/service."""
    root = tmp_path / "service"
    root.mkdir()
    write_settings(root, copy_bundled_examples(root))
    settings = load_settings(str(root / "depictio.toml"), environ={})
    with TestClient(create_app(settings, load_projects(settings.projects), admin_password=ADMIN_PASSWORD)) as client:
        yield client


@pytest.fixture
def quick_timeout_service(tmp_path: Path) -> Iterator[TestClient]:
    """The app of `service`, but a backup may hold catalog writes for 1 s at most."""
    root = tmp_path / "service"
    root.mkdir()
    write_settings(root, copy_bundled_examples(root))
    environ = {"DEPICTIO_CATALOG_BACKUP_TIMEOUT_SECONDS": "1"}
    settings = load_settings(str(root / "depictio.toml"), environ=environ)
    with TestClient(create_app(settings, load_projects(settings.projects), admin_password=ADMIN_PASSWORD)) as client:
        yield client


@pytest.fixture
def admin(service: TestClient) -> dict[str, str]:
    return login(service, "admin@example.org", ADMIN_PASSWORD)


def _manifest(folder: Path) -> BackupManifest:
    return msgspec.json.decode((folder / "manifest.json").read_bytes(), type=BackupManifest)


def _table_rows(path: str) -> dict[str, int]:
    """Count the rows of every table of a closed catalog file, by schema.table."""
    connection = duckdb.connect(path, read_only=True)
    try:
        tables = connection.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
        return {
            f"{schema}.{table}": connection.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchall()[0][0]
            for schema, table in tables
        }
    finally:
        connection.close()


def test_status_has_no_backup_at_first(service: TestClient) -> None:
    response = service.get(STATUS)

    assert response.status_code == 200
    assert response.json()["last_backup"] is None


def test_backup_copies_every_table(service: TestClient, admin: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "backups" / "first"
    folder.parent.mkdir()

    response = service.post(BACKUP, json={"to": str(folder)}, headers=admin)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["path"] == str(folder)
    assert body["checkpointed"] is True
    manifest = verify_backup(str(folder))
    assert body["files"] == len(manifest.files) == 1
    assert body["tables"] == len(manifest.tables)
    expected = {f"{table.schema}.{table.table}": table.rows for table in manifest.tables}
    assert _table_rows(str(folder / "catalog.duckdb")) == expected
    assert expected[f"data.dc_{BUNDLED_PHYSICAL_FEATURES_ID}"] == 344
    catalog = service.app.state.catalog
    assert manifest.catalog_path == catalog.path
    assert body["catalog_path"] == catalog.path
    assert oct(os.stat(folder).st_mode & 0o777) == oct(0o700)
    assert oct(os.stat(folder / "catalog.duckdb").st_mode & 0o777) == oct(0o600)


def test_status_shows_last_backup_time(service: TestClient, admin: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "backup"
    service.post(BACKUP, json={"to": str(folder)}, headers=admin)
    created_at = _manifest(folder).created_at.strftime("%Y-%m-%d %H:%M:%S")

    anonymous = service.get(STATUS).json()["last_backup"]
    administrator = service.get(STATUS, headers=admin).json()["last_backup"]

    assert anonymous == {"time": created_at, "path": None}
    assert administrator == {"time": created_at, "path": str(folder)}


def test_backup_keeps_catalog_locked(service: TestClient, admin: dict[str, str], tmp_path: Path) -> None:
    # Closing any descriptor of the catalog file in the service would release DuckDB's lock.
    response = service.post(BACKUP, json={"to": str(tmp_path / "backup")}, headers=admin)
    assert response.status_code == 200, response.text

    probe = subprocess.run(
        [sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1], read_only=True)"]
        + [service.app.state.catalog.path],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert probe.returncode != 0, "another process opened the catalog of the running service"
    assert "lock" in probe.stderr


@pytest.mark.parametrize(
    ("place", "message"),
    [
        ("relative", "is not an absolute path"),
        ("NUL character", "contains a NUL character"),
        ("catalog folder", "the catalog's folder"),
        ("uploads folder", "the uploads folder"),
        ("workflow location", "a location of workflow 'penguin_species_analysis'"),
        ("not empty", "is not empty"),
        ("a file", "exists and is not a folder"),
        ("no parent", "does not exist; create it first"),
    ],
)
def test_backup_rejects_folder(
    service: TestClient, admin: dict[str, str], tmp_path: Path, place: str, message: str
) -> None:
    catalog_path = Path(service.app.state.catalog.path)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("kept\n")
    (tmp_path / "plain-file").write_text("kept\n")
    targets = {
        "relative": "backups/today",
        "NUL character": str(tmp_path / "back\0up"),
        "catalog folder": str(catalog_path.parent / "backups"),
        "uploads folder": str(catalog_path) + ".uploads/backup",
        "workflow location": str(catalog_path.parent / "bundled" / "penguins" / "data" / "backup"),
        "not empty": str(occupied),
        "a file": str(tmp_path / "plain-file"),
        "no parent": str(tmp_path / "missing" / "backup"),
    }

    response = service.post(BACKUP, json={"to": targets[place]}, headers=admin)

    assert response.status_code == 400, response.text
    assert message in response.json()["detail"]
    assert sorted(path.name for path in occupied.iterdir()) == ["notes.txt"]
    assert not (catalog_path.parent / "backups").exists()
    assert service.get(STATUS).json()["last_backup"] is None


def test_backup_rejects_unknown_field(service: TestClient, admin: dict[str, str], tmp_path: Path) -> None:
    response = service.post(BACKUP, json={"to": str(tmp_path / "backup"), "overwrite": True}, headers=admin)

    assert response.status_code == 400
    assert not (tmp_path / "backup").exists()


def test_failed_backup_removes_partial_files(service: TestClient, admin: dict[str, str], tmp_path: Path) -> None:
    # An uploaded file that became a named pipe cannot be copied; the open must not block either.
    added = upload(service, admin, BUNDLED_PHYSICAL_FEATURES_ID, [("extra.csv", _penguin_rows(2))])
    assert added.status_code == 200, added.text
    location = _upload_locations(service.app.state.catalog)[0]
    os.remove(location)
    os.mkfifo(location)
    created = tmp_path / "created"
    existing = tmp_path / "existing"
    existing.mkdir()

    first = service.post(BACKUP, json={"to": str(created)}, headers=admin)
    second = service.post(BACKUP, json={"to": str(existing)}, headers=admin)

    assert first.status_code == 503, first.text
    assert "not a regular file" in first.json()["detail"]
    assert "the partial backup was removed" in first.json()["detail"]
    assert not created.exists()
    assert second.status_code == 503, second.text
    assert list(existing.iterdir()) == []
    assert service.get(STATUS).json()["last_backup"] is None


def test_restore_moves_uploads_to_new_catalog(service: TestClient, admin: dict[str, str], tmp_path: Path) -> None:
    added = upload(service, admin, BUNDLED_PHYSICAL_FEATURES_ID, [("extra.csv", _penguin_rows(3))])
    assert added.status_code == 200, added.text
    old_location = _upload_locations(service.app.state.catalog)[0]
    folder = tmp_path / "backup"
    assert service.post(BACKUP, json={"to": str(folder)}, headers=admin).status_code == 200
    new_catalog = tmp_path / "elsewhere" / "restored.duckdb"
    new_uploads = str(new_catalog) + ".uploads"

    result = restore_backup(str(folder), str(new_catalog), new_uploads)

    assert result.manifest.uploads == 1
    assert result.replaced == []
    restored = Catalog(str(new_catalog))
    try:
        locations = _upload_locations(restored)
        last = restored.backups.last()
    finally:
        restored.close()
    assert locations == [new_uploads + old_location.removeprefix(service.app.state.catalog.path + ".uploads")]
    assert Path(locations[0]).read_bytes() == Path(old_location).read_bytes()
    assert os.stat(locations[0]).st_mtime_ns == os.stat(old_location).st_mtime_ns
    assert last is not None
    assert last.path == str(folder)


def _penguin_rows(count: int) -> bytes:
    rows = "".join(f"uploaded_{index:03d},40.1,18.2,190,3800\n" for index in range(count))
    return (PENGUIN_HEADER + "\n" + rows).encode()


def _upload_locations(catalog: Any) -> list[str]:
    return sorted(str(row[0]) for row in catalog.store.query("SELECT file_location FROM files WHERE origin = 'upload'"))


def test_hung_backup_gets_503_and_frees_writes(
    quick_timeout_service: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = quick_timeout_service
    admin = login(service, "admin@example.org", ADMIN_PASSWORD)
    # The copy runs in a child Python; this stand-in stops itself (SIGSTOP), like a copy to storage that hangs.
    stopped_python = tmp_path / "stopped-python"
    stopped_python.write_text(f'#!/bin/sh\nkill -STOP $$\nexec {sys.executable} "$@"\n')
    stopped_python.chmod(0o700)
    folder = tmp_path / "hung"

    monkeypatch.setattr(sys, "executable", str(stopped_python))
    response = service.post(BACKUP, json={"to": str(folder)}, headers=admin)
    monkeypatch.undo()

    assert response.status_code == 503, response.text
    detail = response.json()["detail"]
    assert "did not finish in time, within 1 s (catalog.backup_timeout_seconds)" in detail
    assert "the partial backup was removed" in detail
    assert not folder.exists()
    # A sign-in writes to the catalog, so it shows that the writer thread is free again.
    assert login(service, "admin@example.org", ADMIN_PASSWORD)
