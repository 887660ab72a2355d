"""Opening, versioning, locking and closing the catalog's DuckDB file."""

from __future__ import annotations

import importlib
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from catalog import SCHEMA_VERSION, Catalog, CatalogError, SchemaVersionError, UserRecord, store, user_id_for, utc_now
from config import CatalogSettings
from tests import backends

# These tests open, lock, copy or break the DuckDB file itself, which a DuckLake catalog does not have.
pytestmark = pytest.mark.skipif(backends.backend() == "ducklake", reason="tests the DuckDB file backend")

# Seconds a helper process may take to open or lock a DuckDB file.
PROCESS_DEADLINE = 30

# Opens the file given as argv[1], prints "locked", then keeps it open until stdin closes
# or the deadline passes, so a failed test never leaves the process behind.
HOLD_LOCK = """
import select, sys, duckdb
connection = duckdb.connect(sys.argv[1])
print("locked", flush=True)
select.select([sys.stdin], [], [], float(sys.argv[2]))
connection.close()
"""

# Opens the file given as argv[1], closes it again and prints "opened".
OPEN_AND_CLOSE = "import sys, duckdb; duckdb.connect(sys.argv[1]).close(); print('opened')"


def _schema_version(path: Path) -> str:
    connection = duckdb.connect(str(path), read_only=True)
    try:
        row = connection.execute("SELECT value FROM catalog_meta WHERE key = 'schema_version'").fetchone()
    finally:
        connection.close()
    assert row is not None, "catalog_meta has no schema_version row"
    return str(row[0])


def _set_schema_version(path: Path, value: str) -> None:
    connection = duckdb.connect(str(path))
    try:
        connection.execute("UPDATE catalog_meta SET value = ? WHERE key = 'schema_version'", [value])
    finally:
        connection.close()


def _user(email: str) -> UserRecord:
    return UserRecord(
        id=user_id_for(email),
        email=email,
        password_hash="not-a-real-hash",
        is_admin=False,
        is_active=True,
        registration_date=utc_now(),
        last_login=None,
    )


@pytest.fixture
def catalog_path(tmp_path: Path) -> Path:
    return tmp_path / "catalog.duckdb"


@pytest.fixture
def lock_holder(catalog_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Start a second process that keeps the catalog file open until the test ends."""
    Catalog(str(catalog_path)).close()
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(catalog_path), str(PROCESS_DEADLINE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdin is not None
    ready, _, _ = select.select([process.stdout], [], [], PROCESS_DEADLINE)
    line = process.stdout.readline() if ready else ""
    try:
        assert line.strip() == "locked", f"the helper process did not lock the file within {PROCESS_DEADLINE} s"
        yield process
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=PROCESS_DEADLINE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_schema_version_is_six() -> None:
    assert SCHEMA_VERSION == 6


def test_new_catalog_stores_schema_version(catalog_path: Path) -> None:
    Catalog(str(catalog_path)).close()

    assert _schema_version(catalog_path) == str(SCHEMA_VERSION)


def test_new_catalog_creates_missing_folder(tmp_path: Path) -> None:
    path = tmp_path / "var" / "state" / "catalog.duckdb"

    Catalog(str(path)).close()

    assert path.is_file()


def test_catalog_spills_large_sorts(tmp_path: Path) -> None:
    # DuckDB creates only the last level of <catalog>.tmp/catalog when it first spills.
    path = tmp_path / "catalog.duckdb"
    store_ = store.Store(str(path), CatalogSettings(path=str(path), memory_limit="64MiB", threads=1))
    try:
        sql = "SELECT count(*) FROM (SELECT md5(CAST(i AS VARCHAR)) AS h FROM range(3000000) AS t(i) ORDER BY h)"
        assert store_.query(sql) == [(3_000_000,)]
    finally:
        store_.close()
    assert (tmp_path / "catalog.duckdb.tmp").is_dir()


def test_reopen_keeps_records(catalog_path: Path) -> None:
    first = Catalog(str(catalog_path))
    first.users.add(_user("ada@example.org"))
    first.close()

    second = Catalog(str(catalog_path))
    try:
        user = second.users.get_by_email("ada@example.org")
    finally:
        second.close()

    assert user is not None
    assert user.email == "ada@example.org"


def test_reopen_keeps_schema_version(catalog_path: Path) -> None:
    Catalog(str(catalog_path)).close()
    Catalog(str(catalog_path)).close()

    assert _schema_version(catalog_path) == str(SCHEMA_VERSION)


def test_other_schema_version_raises(catalog_path: Path) -> None:
    Catalog(str(catalog_path)).close()
    _set_schema_version(catalog_path, str(SCHEMA_VERSION + 1))

    with pytest.raises(SchemaVersionError) as caught:
        Catalog(str(catalog_path))

    message = str(caught.value)
    assert str(catalog_path) in message
    assert f"schema version {SCHEMA_VERSION + 1}" in message
    assert f"uses version {SCHEMA_VERSION}" in message
    assert "use the depictiod release that wrote it" in message
    assert "move the file away" in message


def test_schema_version_error_is_catalog_error(catalog_path: Path) -> None:
    Catalog(str(catalog_path)).close()
    _set_schema_version(catalog_path, "0")

    with pytest.raises(CatalogError):
        Catalog(str(catalog_path))


def test_missing_schema_version_raises(catalog_path: Path) -> None:
    Catalog(str(catalog_path)).close()
    connection = duckdb.connect(str(catalog_path))
    connection.execute("DELETE FROM catalog_meta")
    connection.close()

    with pytest.raises(SchemaVersionError, match="schema version missing"):
        Catalog(str(catalog_path))


def test_schema_version_error_releases_file(catalog_path: Path) -> None:
    Catalog(str(catalog_path)).close()
    _set_schema_version(catalog_path, str(SCHEMA_VERSION + 1))

    with pytest.raises(SchemaVersionError) as caught:
        Catalog(str(catalog_path))

    # `caught` still references the error and its traceback, as a caller that logs the
    # error does. The failed open must not keep the file locked meanwhile.
    opened = subprocess.run(
        [sys.executable, "-c", OPEN_AND_CLOSE, str(catalog_path)],
        capture_output=True,
        text=True,
        timeout=PROCESS_DEADLINE,
    )
    assert opened.stdout.strip() == "opened", opened.stderr
    assert f"schema version {SCHEMA_VERSION + 1}" in str(caught.value)


def test_file_locked_by_other_process_raises(catalog_path: Path, lock_holder: subprocess.Popen[str]) -> None:
    with pytest.raises(CatalogError) as caught:
        Catalog(str(catalog_path))

    message = str(caught.value)
    assert "cannot open the catalog" in message
    assert str(catalog_path) in message
    assert "stop it first or send the request to its API" in message


def test_close_is_idempotent(catalog_path: Path) -> None:
    catalog = Catalog(str(catalog_path))

    catalog.close()
    catalog.close()

    assert catalog_path.is_file()


def test_closed_catalog_rejects_reads(catalog_path: Path) -> None:
    catalog = Catalog(str(catalog_path))
    catalog.close()

    with pytest.raises(CatalogError, match="closed"):
        catalog.store.query("SELECT 1")


def test_closed_catalog_rejects_writes(catalog_path: Path) -> None:
    catalog = Catalog(str(catalog_path))
    catalog.close()

    with pytest.raises(CatalogError, match="closed"):
        catalog.users.add(_user("ada@example.org"))


def test_close_releases_file(catalog_path: Path) -> None:
    catalog = Catalog(str(catalog_path))
    catalog.close()

    opened = subprocess.run(
        [sys.executable, "-c", OPEN_AND_CLOSE, str(catalog_path)],
        capture_output=True,
        text=True,
        timeout=PROCESS_DEADLINE,
    )

    assert opened.stdout.strip() == "opened", opened.stderr


def test_open_drops_half_built_tables(tmp_path: Path) -> None:
    import catalog

    path = str(tmp_path / "scratch.duckdb")
    first = catalog.Catalog(path)
    first.store.write(lambda connection: connection.execute('CREATE TABLE data."dc_abc__next" (x INTEGER)'))
    first.close()

    reopened = catalog.Catalog(path)
    try:
        names = reopened.store.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'data'")
    finally:
        reopened.close()

    assert names == []


def test_version_one_catalog_is_migrated(catalog_path: Path) -> None:
    Catalog(str(catalog_path)).close()
    connection = duckdb.connect(str(catalog_path))
    connection.execute("ALTER TABLE runs DROP COLUMN parameters")
    connection.execute("ALTER TABLE files DROP COLUMN link_target")
    connection.execute("ALTER TABLE files DROP COLUMN read_details")
    connection.close()
    _set_schema_version(catalog_path, "1")

    Catalog(str(catalog_path)).close()

    assert _schema_version(catalog_path) == str(SCHEMA_VERSION)
    connection = duckdb.connect(str(catalog_path), read_only=True)
    columns = [row[0] for row in connection.execute("DESCRIBE runs").fetchall()]
    file_columns = [row[0] for row in connection.execute("DESCRIBE files").fetchall()]
    connection.close()
    assert "parameters" in columns
    assert file_columns[-2:] == ["link_target", "read_details"]


def test_version_two_catalog_is_migrated(catalog_path: Path) -> None:
    Catalog(str(catalog_path)).close()
    connection = duckdb.connect(str(catalog_path))
    connection.execute("ALTER TABLE aggregated_tables DROP COLUMN settings_fingerprint")
    connection.execute("DROP TABLE table_files")
    connection.execute("ALTER TABLE files DROP COLUMN link_target")
    connection.execute("ALTER TABLE files DROP COLUMN read_details")
    connection.close()
    _set_schema_version(catalog_path, "2")

    Catalog(str(catalog_path)).close()

    assert _schema_version(catalog_path) == str(SCHEMA_VERSION)
    connection = duckdb.connect(str(catalog_path), read_only=True)
    columns = [row[0] for row in connection.execute("DESCRIBE aggregated_tables").fetchall()]
    tables = [row[0] for row in connection.execute("SHOW TABLES").fetchall()]
    file_columns = [row[0] for row in connection.execute("DESCRIBE files").fetchall()]
    connection.close()
    assert "settings_fingerprint" in columns
    assert "table_files" in tables
    assert file_columns[-2:] == ["link_target", "read_details"]


def test_version_three_catalog_is_migrated(catalog_path: Path) -> None:
    Catalog(str(catalog_path)).close()
    connection = duckdb.connect(str(catalog_path))
    for column in ("refresh_jti", "refresh_expire_datetime", "access_seconds"):
        connection.execute(f"ALTER TABLE tokens DROP COLUMN {column}")
    connection.execute("DROP TABLE project_access")
    connection.close()
    _set_schema_version(catalog_path, "3")

    Catalog(str(catalog_path)).close()

    assert _schema_version(catalog_path) == str(SCHEMA_VERSION)
    connection = duckdb.connect(str(catalog_path), read_only=True)
    columns = [row[0] for row in connection.execute("DESCRIBE tokens").fetchall()]
    tables = [row[0] for row in connection.execute("SHOW TABLES").fetchall()]
    connection.close()
    assert "refresh_jti" in columns
    assert "refresh_expire_datetime" in columns
    assert "access_seconds" in columns
    assert "project_access" in tables


def test_version_four_catalog_is_migrated(catalog_path: Path) -> None:
    catalog = Catalog(str(catalog_path))
    catalog.store.write(
        lambda connection: connection.execute(
            "INSERT INTO runs (id, workflow_id, run_tag) VALUES ('r1', 'w1', 'run_1')"
        )
    )
    catalog.close()
    connection = duckdb.connect(str(catalog_path))
    for table in ("runs", "files"):
        for column in ("origin", "document"):
            connection.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    connection.execute("DROP TABLE external_tables")
    connection.close()
    _set_schema_version(catalog_path, "4")

    Catalog(str(catalog_path)).close()

    assert _schema_version(catalog_path) == str(SCHEMA_VERSION)
    connection = duckdb.connect(str(catalog_path), read_only=True)
    origins = connection.execute("SELECT origin FROM runs").fetchall()
    file_columns = [row[0] for row in connection.execute("DESCRIBE files").fetchall()]
    tables = [row[0] for row in connection.execute("SHOW TABLES").fetchall()]
    connection.close()
    # Runs stored before version 5 were all found by scans.
    assert origins == [("scan",)]
    assert file_columns[-2:] == ["origin", "document"]
    assert "external_tables" in tables


def test_absent_pandas_fails_before_path_search() -> None:
    finders = [finder for finder in sys.meta_path if isinstance(finder, store._MissingModule)]
    if not finders:
        # pandas was installed when the catalog was imported, so nothing is stopped.
        importlib.import_module("pandas")
        return
    # The finder for the absent pandas comes first, so no folder of sys.path is searched.
    assert sys.meta_path[0] is finders[0]
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("pandas")
