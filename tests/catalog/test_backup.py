"""Backups of a real catalog file: what they contain, the damage their checks find, and restores."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pytest

from api.security import hash_password
from catalog import (
    SCHEMA_VERSION,
    BackupTargetError,
    BackupWriteError,
    Catalog,
    InvalidBackupError,
    RestoreError,
    TokenRecord,
    UserRecord,
    restore_backup,
    user_id_for,
    utc_now,
    verify_backup,
)
from catalog.backup import FORMAT, FORMAT_VERSION, BackupManifest, table_rows
from catalog.backup_files import CopyTimeoutError, copy_in_child, describe_file, make_folders
from catalog.store import Connection
from config import CatalogSettings
from tests import backends

# These tests open, lock, copy or break the DuckDB file itself, which a DuckLake catalog does not have.
pytestmark = pytest.mark.skipif(backends.backend() == "ducklake", reason="tests the DuckDB file backend")

ROWS = 5000


def _add_user(catalog: Catalog, email: str) -> None:
    catalog.users.add(
        UserRecord(
            id=user_id_for(email),
            email=email,
            password_hash=hash_password("backup-test-password"),
            is_admin=False,
            is_active=True,
            registration_date=utc_now(),
            last_login=None,
        )
    )


def _emails(path: Path) -> list[str]:
    catalog = Catalog(str(path))
    try:
        return sorted(user.email for user in catalog.users.list())
    finally:
        catalog.close()


@pytest.fixture
def catalog_path(tmp_path: Path) -> Iterator[Path]:
    """A closed catalog with one user and a data table of ROWS rows."""
    path = tmp_path / "service" / "catalog.duckdb"
    catalog = Catalog(str(path))

    def add_table(connection: Connection) -> None:
        connection.execute(f"CREATE TABLE data.dc_numbers AS SELECT range AS n FROM range({ROWS})")

    try:
        _add_user(catalog, "first@example.org")
        catalog.store.write(add_table)
    finally:
        catalog.close()
    yield path


def _back_up(catalog_path: Path, folder: Path) -> None:
    catalog = Catalog(str(catalog_path))
    try:
        catalog.backups.write(str(folder), str(catalog_path) + ".uploads", [])
    finally:
        catalog.close()


@pytest.fixture
def backup(catalog_path: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "backup"
    _back_up(catalog_path, folder)
    return folder


def _edit_manifest(folder: Path, change: Any) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_backup_lists_every_table(backup: Path) -> None:
    manifest = verify_backup(str(backup))

    rows = {f"{table.schema}.{table.table}": table.rows for table in manifest.tables}
    assert rows["data.dc_numbers"] == ROWS
    assert rows["main.users"] == 1
    assert manifest.schema_version == SCHEMA_VERSION
    assert manifest.checkpointed is True
    assert [entry.path for entry in manifest.files] == ["catalog.duckdb"]
    assert not (backup / ".manifest.json.partial").exists()


def test_backup_records_last_backup(catalog_path: Path, backup: Path) -> None:
    catalog = Catalog(str(catalog_path))
    try:
        last = catalog.backups.last()
    finally:
        catalog.close()

    assert last is not None
    assert last.path == str(backup)


def test_concurrent_backups_to_one_folder(catalog_path: Path, tmp_path: Path) -> None:
    folder = tmp_path / "shared-backup"
    outcomes: list[str] = []
    catalog = Catalog(str(catalog_path))

    def back_up() -> None:
        try:
            catalog.backups.write(str(folder), str(catalog_path) + ".uploads", [])
            outcomes.append("written")
        except BackupTargetError as error:
            outcomes.append(str(error))

    try:
        threads = [threading.Thread(target=back_up) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        catalog.close()

    assert sorted(outcomes)[1] == "written"
    assert "is not empty" in sorted(outcomes)[0]
    verify_backup(str(folder))


def test_verify_rejects_changed_byte(backup: Path) -> None:
    _flip_byte(backup / "catalog.duckdb")

    with pytest.raises(InvalidBackupError, match=r"xxh3-128 digest .* the file is damaged or was changed"):
        verify_backup(str(backup))


def test_verify_rejects_truncated_file(backup: Path) -> None:
    database = backup / "catalog.duckdb"
    os.truncate(database, database.stat().st_size // 2)

    with pytest.raises(InvalidBackupError, match="the file is truncated or was changed"):
        verify_backup(str(backup))


def test_verify_rejects_missing_file(backup: Path) -> None:
    (backup / "catalog.duckdb").unlink()

    with pytest.raises(InvalidBackupError, match=r"lacks the file 'catalog\.duckdb'"):
        verify_backup(str(backup))


def test_verify_rejects_missing_manifest(backup: Path) -> None:
    (backup / "manifest.json").unlink()

    with pytest.raises(InvalidBackupError, match=r"contains no manifest\.json"):
        verify_backup(str(backup))


def test_verify_rejects_garbled_manifest(backup: Path) -> None:
    (backup / "manifest.json").write_text('{"format": "depictiod-backup"')

    with pytest.raises(InvalidBackupError, match=r"manifest .* is invalid"):
        verify_backup(str(backup))


def test_verify_rejects_newer_schema(backup: Path) -> None:
    _edit_manifest(backup, lambda manifest: manifest.update(schema_version=SCHEMA_VERSION + 1))

    with pytest.raises(InvalidBackupError, match=f"schema version {SCHEMA_VERSION + 1}"):
        verify_backup(str(backup))


def test_verify_rejects_path_outside_backup(backup: Path) -> None:
    _edit_manifest(backup, lambda manifest: manifest["files"][0].update(path="../catalog.duckdb"))

    with pytest.raises(InvalidBackupError, match="outside the backup folder"):
        verify_backup(str(backup))


def test_verify_rejects_row_count_mismatch(backup: Path) -> None:
    def change(manifest: dict[str, Any]) -> None:
        for table in manifest["tables"]:
            if table["table"] == "dc_numbers":
                table["rows"] = ROWS + 1

    _edit_manifest(backup, change)

    with pytest.raises(InvalidBackupError, match=f"has {ROWS} rows, but the manifest records {ROWS + 1}"):
        verify_backup(str(backup))


def test_restore_keeps_replaced_catalog(catalog_path: Path, backup: Path) -> None:
    catalog = Catalog(str(catalog_path))
    try:
        _add_user(catalog, "later@example.org")
    finally:
        catalog.close()

    result = restore_backup(str(backup), str(catalog_path), str(catalog_path) + ".uploads")

    before = Path(str(catalog_path) + ".before-restore")
    assert result.replaced == [str(before)]
    assert _emails(catalog_path) == ["first@example.org"]
    assert _emails(before) == ["first@example.org", "later@example.org"]
    assert not Path(str(catalog_path) + ".wal").exists()
    assert [path.name for path in catalog_path.parent.iterdir() if ".restore-" in path.name] == []


def test_restore_into_new_path(catalog_path: Path, backup: Path, tmp_path: Path) -> None:
    target = tmp_path / "new" / "catalog.duckdb"

    result = restore_backup(str(backup), str(target), str(target) + ".uploads")

    assert result.replaced == []
    assert _emails(target) == ["first@example.org"]


def test_restore_rejects_damage_and_changes_nothing(catalog_path: Path, backup: Path) -> None:
    original = catalog_path.read_bytes()
    _flip_byte(backup / "catalog.duckdb")

    with pytest.raises(InvalidBackupError, match="damaged"):
        restore_backup(str(backup), str(catalog_path), str(catalog_path) + ".uploads")

    assert catalog_path.read_bytes() == original
    assert sorted(path.name for path in catalog_path.parent.iterdir()) == ["catalog.duckdb", "catalog.duckdb.tmp"]


def test_restore_rejects_earlier_leftover(catalog_path: Path, backup: Path) -> None:
    leftover = Path(str(catalog_path) + ".before-restore")
    leftover.write_text("an earlier catalog\n")

    with pytest.raises(RestoreError, match="already exists, left by an earlier restore"):
        restore_backup(str(backup), str(catalog_path), str(catalog_path) + ".uploads")

    assert leftover.read_text() == "an earlier catalog\n"


def test_restore_rejects_catalog_in_use(catalog_path: Path, backup: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; connection = duckdb.connect(sys.argv[1]); print('open', flush=True); sys.stdin.read()",
            str(catalog_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "open"

        with pytest.raises(RestoreError, match=f"in use by PID {holder.pid}"):
            restore_backup(str(backup), str(catalog_path), str(catalog_path) + ".uploads")
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)

    assert not Path(str(catalog_path) + ".before-restore").exists()


def test_restore_replays_wal_of_backup(catalog_path: Path, tmp_path: Path) -> None:
    # A backup whose CHECKPOINT failed has the catalog's write-ahead log beside the file. The
    # same pair is left by a process killed before it checkpointed, which makes the fixture.
    writer = subprocess.run(
        [
            sys.executable,
            "-c",
            "import duckdb, os, sys\n"
            "connection = duckdb.connect(sys.argv[1], config={'checkpoint_threshold': '1TB'})\n"
            "connection.execute('INSERT INTO data.dc_numbers VALUES (-1)')\n"
            "os._exit(0)\n",
            str(catalog_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert writer.returncode == 0, writer.stderr
    wal = Path(str(catalog_path) + ".wal")
    assert wal.stat().st_size > 0
    folder = tmp_path / "backup-with-wal"
    folder.mkdir()
    shutil.copyfile(catalog_path, folder / "catalog.duckdb")
    shutil.copyfile(wal, folder / "catalog.duckdb.wal")
    connection = duckdb.connect(str(folder / "catalog.duckdb"), read_only=True)
    try:
        tables = table_rows(connection)
    finally:
        connection.close()
    manifest = BackupManifest(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        created_at=datetime.now(UTC).replace(microsecond=0),
        depictiod_version="test",
        duckdb_version=duckdb.__version__,
        schema_version=SCHEMA_VERSION,
        catalog_path=str(catalog_path),
        uploads_folder=str(catalog_path) + ".uploads",
        checkpointed=False,
        files=[
            describe_file(str(folder / "catalog.duckdb"), "catalog.duckdb"),
            describe_file(str(folder / "catalog.duckdb.wal"), "catalog.duckdb.wal"),
        ],
        tables=tables,
        missing_uploads=[],
        writes_paused_seconds=0.0,
        seconds=0.0,
    )
    (folder / "manifest.json").write_bytes(msgspec.json.encode(manifest))
    target = tmp_path / "restored" / "catalog.duckdb"

    verify_backup(str(folder))
    restore_backup(str(folder), str(target), str(target) + ".uploads")

    assert not Path(str(target) + ".wal").exists()
    restored = duckdb.connect(str(target), read_only=True)
    try:
        rows = restored.execute("SELECT count(*), min(n) FROM data.dc_numbers").fetchall()
    finally:
        restored.close()
    assert rows == [(ROWS + 1, -1)]


def _stopped_python(tmp_path: Path) -> str:
    """Write a stand-in for the Python interpreter that stops itself (SIGSTOP) before it runs, like a copy that hangs."""
    script = tmp_path / "stopped-python"
    script.write_text(f'#!/bin/sh\nkill -STOP $$\nexec {sys.executable} "$@"\n')
    script.chmod(0o700)
    return str(script)


def test_copy_refuses_symbolic_link_target(catalog_path: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious content")
    victim.chmod(0o644)
    link = tmp_path / "planted.duckdb"
    link.symlink_to(victim)

    with pytest.raises(OSError, match="File exists") as raised:
        copy_in_child([(str(catalog_path), str(link))], timeout_seconds=60)

    assert raised.value.filename == str(link)
    assert victim.read_text() == "precious content"
    assert victim.stat().st_mode & 0o777 == 0o644


def test_copy_creates_private_file(catalog_path: Path, tmp_path: Path) -> None:
    target = tmp_path / "copy.duckdb"

    copy_in_child([(str(catalog_path), str(target))], timeout_seconds=60)

    assert target.read_bytes() == catalog_path.read_bytes()
    assert target.stat().st_mode & 0o777 == 0o600


def test_make_folders_refuses_symbolic_link(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "uploads").symlink_to(elsewhere)

    with pytest.raises(OSError, match="is not a folder"):
        make_folders(str(backup), os.path.join("uploads", "collection"))
    assert list(elsewhere.iterdir()) == []


def test_copy_stops_at_timeout(tmp_path: Path) -> None:
    # Opening a named pipe that no process writes to blocks, like a read from storage that hangs.
    source = tmp_path / "pipe"
    os.mkfifo(source)

    with pytest.raises(CopyTimeoutError, match="did not finish in time"):
        copy_in_child([(str(source), str(tmp_path / "copy"))], timeout_seconds=1)


def test_backup_timeout_releases_writes(catalog_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = Catalog(str(catalog_path), CatalogSettings(path=str(catalog_path), backup_timeout_seconds=1))
    folder = tmp_path / "hung-backup"
    try:
        monkeypatch.setattr(sys, "executable", _stopped_python(tmp_path))
        with pytest.raises(BackupWriteError, match=r"catalog.backup_timeout_seconds.*partial backup was removed"):
            catalog.backups.write(str(folder), str(catalog_path) + ".uploads", [])
        monkeypatch.undo()
        _add_user(catalog, "after-timeout@example.org")
    finally:
        catalog.close()

    assert not folder.exists()
    assert "after-timeout@example.org" in _emails(catalog_path)


def test_copy_error_names_target(catalog_path: Path, tmp_path: Path) -> None:
    # A file size limit makes writes to the copy fail, as a full backup disk does.
    target = tmp_path / "copy.duckdb"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        with pytest.raises(OSError, match="File too large") as raised:
            copy_in_child([(str(catalog_path), str(target))], timeout_seconds=60)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))

    assert raised.value.filename == str(target)


def test_backup_rejects_too_long_path(catalog_path: Path, tmp_path: Path) -> None:
    # The folder itself can be created, but the path of catalog.duckdb inside it exceeds PATH_MAX.
    parent = tmp_path
    while len(str(parent)) < 3800:
        parent = parent / ("p" * 200)
    parent.mkdir(parents=True)
    folder = parent / ("b" * (4090 - len(str(parent)) - 1))
    assert len(str(folder)) == 4090

    catalog = Catalog(str(catalog_path))
    try:
        with pytest.raises(BackupTargetError, match=r"cannot take a backup: .*File name too long"):
            catalog.backups.write(str(folder), str(catalog_path) + ".uploads", [])
    finally:
        catalog.close()
    assert not folder.exists()


def _add_token(catalog: Catalog, token_id: str, revoked: bool) -> None:
    now = utc_now()
    catalog.tokens.add(
        TokenRecord(
            id=token_id,
            user_id=user_id_for("first@example.org"),
            name=token_id,
            token_lifetime="long-lived",
            jti=f"jti-{token_id}",
            expire_datetime=now + timedelta(days=30),
            created_at=now,
            revoked=revoked,
            refresh_jti=None,
            refresh_expire_datetime=None,
            access_seconds=None,
        )
    )


def test_restore_revokes_every_token(catalog_path: Path, tmp_path: Path) -> None:
    catalog = Catalog(str(catalog_path))
    try:
        _add_token(catalog, "live", revoked=False)
        _add_token(catalog, "already-revoked", revoked=True)
    finally:
        catalog.close()
    folder = tmp_path / "backup-with-tokens"
    _back_up(catalog_path, folder)
    kept_target = tmp_path / "kept" / "catalog.duckdb"
    revoked_target = tmp_path / "revoked" / "catalog.duckdb"

    kept = restore_backup(str(folder), str(kept_target), str(kept_target) + ".uploads")
    revoked = restore_backup(str(folder), str(revoked_target), str(revoked_target) + ".uploads", revoke_tokens=True)

    assert kept.revoked_tokens is None
    assert revoked.revoked_tokens == 1
    for target, expected in [(kept_target, False), (revoked_target, True)]:
        restored = Catalog(str(target))
        try:
            token = restored.tokens.get("live")
        finally:
            restored.close()
        assert token is not None
        assert token.revoked is expected


@pytest.mark.parametrize("linked", ["catalog.duckdb", "manifest.json"])
def test_restore_refuses_symbolic_link(backup: Path, tmp_path: Path, linked: str) -> None:
    # The link points at a copy with the same content, so only the link itself is wrong.
    elsewhere = tmp_path / f"elsewhere-{linked}"
    shutil.copyfile(backup / linked, elsewhere)
    (backup / linked).unlink()
    (backup / linked).symlink_to(elsewhere)
    target = tmp_path / "new" / "catalog.duckdb"

    with pytest.raises(InvalidBackupError, match="is a symbolic link"):
        verify_backup(str(backup))
    with pytest.raises(InvalidBackupError, match="is a symbolic link"):
        restore_backup(str(backup), str(target), str(target) + ".uploads")
    assert not target.exists()
