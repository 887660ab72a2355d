"""`depictiod migrate` on a scanned catalog of the bundled examples, between a DuckDB file and DuckLake."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pytest

import catalog.migrate
from api.security import hash_password
from catalog import Catalog, CatalogLockedError, TokenRecord, UserRecord, user_id_for, utc_now
from catalog.extensions import EXTENSION_CONFIG, load_extensions
from catalog.migrate import MigrationError, migrate_catalog
from config import CatalogSettings
from depictiod.cli import main
from tests.examples import copy_bundled_examples
from tests.postgres import PostgresCluster

USER_EMAIL = "analyst@example.org"
TOKEN_ID = "6d0000000000000000000001"
DASHBOARD_ID = "6c0000000000000000000001"
PENGUINS_PROJECT_ID = "6a0001000000000000000001"
COMMAND_DEADLINE_SECONDS = 120


def _write_settings(root: Path, projects: list[Path], catalog_lines: str) -> Path:
    listed = ", ".join(f'"{path}"' for path in projects)
    settings = root / "depictio.toml"
    settings.write_text(
        f"projects = [{listed}]\n[catalog]\n{catalog_lines}"
        f'[auth]\nkey_file = "{root / "auth.key"}"\n'
        "[ingest]\nreconcile_seconds = 0\nsettle_seconds = 0\n",
        encoding="utf-8",
    )
    return settings


def _add_records(path: Path) -> None:
    """Add a user, a long-lived token and a dashboard, so the catalog has one of each."""
    store = Catalog(str(path))
    try:
        user_id = user_id_for(USER_EMAIL)
        now = utc_now()
        store.users.add(
            UserRecord(
                id=user_id,
                email=USER_EMAIL,
                password_hash=hash_password("migration-test-password"),
                is_admin=False,
                is_active=True,
                registration_date=now,
                last_login=None,
            )
        )
        store.tokens.add(
            TokenRecord(
                id=TOKEN_ID,
                user_id=user_id,
                name="nightly script",
                token_lifetime="long-lived",
                jti="jti-1",
                expire_datetime=now + timedelta(days=30),
                created_at=now,
                revoked=False,
            )
        )
    finally:
        store.close()
    connection = duckdb.connect(str(path))
    try:
        connection.execute(
            "INSERT INTO dashboards VALUES (?, ?, 'Migration check', '{\"components\": []}', now()::TIMESTAMP)",
            [DASHBOARD_ID, PENGUINS_PROJECT_ID],
        )
    finally:
        connection.close()


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalog file of the bundled examples, scanned, with a user, a token and a dashboard added."""
    root = tmp_path_factory.mktemp("scanned")
    path = root / "catalog.duckdb"
    settings = _write_settings(root, copy_bundled_examples(root), f'path = "{path}"\n')
    scan = subprocess.run(
        [sys.executable, "-m", "depictiod", "scan", "--config", str(settings)],
        capture_output=True,
        text=True,
        timeout=COMMAND_DEADLINE_SECONDS,
    )
    assert scan.returncode == 0, scan.stderr
    _add_records(path)
    return path


@pytest.fixture
def source(scanned: Path, tmp_path: Path) -> CatalogSettings:
    """A copy of the scanned catalog file in this test's folder, with its [catalog] settings."""
    path = tmp_path / "catalog.duckdb"
    shutil.copy2(scanned, path)
    return CatalogSettings(path=str(path))


def _lake(cluster: PostgresCluster, database: str, root: Path, schema: str) -> CatalogSettings:
    return CatalogSettings(
        backend="ducklake",
        path=str(root / "catalog.duckdb"),
        postgres=cluster.dsn(database),
        data_path=str(root / f"{schema}-data"),
        metadata_schema=schema,
    )


def _uploads(settings: CatalogSettings) -> str:
    return os.path.abspath(settings.path) + ".uploads"


def _migrate(source: CatalogSettings, target: CatalogSettings) -> catalog.migrate.MigrationResult:
    return migrate_catalog(source, target, _uploads(source), _uploads(target))


def _contents(settings: CatalogSettings) -> dict[str, Any]:
    """Return each table's column types and rows in row-id order, by "schema.table"."""
    connection = duckdb.connect(":memory:", config=EXTENSION_CONFIG)
    try:
        if settings.backend == "ducklake":
            load_extensions(connection, ["ducklake", "postgres_scanner"])
            connection.execute(
                f"ATTACH 'ducklake:postgres:{settings.postgres}' AS db "
                f"(METADATA_SCHEMA '{settings.metadata_schema}', READ_ONLY)"
            )
        else:
            connection.execute(f"ATTACH '{settings.path}' AS db (READ_ONLY)")
        tables = connection.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'db' ORDER BY ALL"
        ).fetchall()
        contents = {}
        for schema, table in tables:
            columns = connection.execute(
                "SELECT column_name, data_type FROM duckdb_columns() "
                "WHERE database_name = 'db' AND schema_name = ? AND table_name = ? ORDER BY column_index",
                [schema, table],
            ).fetchall()
            rows = connection.execute(f'SELECT * FROM db."{schema}"."{table}" ORDER BY rowid').fetchall()
            contents[f"{schema}.{table}"] = {"columns": columns, "rows": rows}
        return contents
    finally:
        connection.close()


def test_round_trip_keeps_every_table(
    source: CatalogSettings, postgres_cluster: PostgresCluster, postgres_database: str, tmp_path: Path
) -> None:
    lake = _lake(postgres_cluster, postgres_database, tmp_path, "site")
    back = CatalogSettings(path=str(tmp_path / "returned.duckdb"))

    to_lake = _migrate(source, lake)
    to_file = _migrate(lake, back)

    original = _contents(source)
    assert to_lake.ok, to_lake.checks
    assert to_file.ok, to_file.checks
    assert [check.name for check in to_lake.checks] == sorted(original)
    assert [check.name for check in to_file.checks] == sorted(original)
    assert {"main.catalog_meta", "main.users", "main.tokens", "main.dashboards"} <= set(original)
    assert len([name for name in original if name.startswith("data.dc_")]) == 4
    assert _contents(lake) == original
    assert _contents(back) == original
    rows = {check.name: check.source_rows for check in to_lake.checks}
    assert rows["main.users"] == 1
    assert rows["main.tokens"] == 1
    assert rows["main.dashboards"] == 1
    assert rows["data.dc_6a0001000000000000000003"] == 344


def test_file_to_file_copy(source: CatalogSettings, tmp_path: Path) -> None:
    # A DuckDB file to another DuckDB file takes the same path as between the backends.
    target = CatalogSettings(path=str(tmp_path / "other.duckdb"))

    result = _migrate(source, target)

    assert result.ok
    assert result.schema_version == str(catalog.SCHEMA_VERSION)


def test_non_empty_lake_target_is_rejected(
    source: CatalogSettings, postgres_cluster: PostgresCluster, postgres_database: str, tmp_path: Path
) -> None:
    lake = _lake(postgres_cluster, postgres_database, tmp_path, "taken")
    assert _migrate(source, lake).ok
    moved = msgspec.structs.replace(lake, data_path=str(tmp_path / "fresh-data"))

    with pytest.raises(MigrationError) as same_path:
        _migrate(source, lake)
    with pytest.raises(MigrationError) as other_path:
        _migrate(source, moved)

    assert "the target DuckLake catalog is not empty: it contains" in str(same_path.value)
    assert "data.dc_6a0001000000000000000003" in str(same_path.value)
    assert "--metadata-schema" in str(same_path.value)
    assert "the target DuckLake catalog is not empty: it exists already with another data path" in str(other_path.value)
    assert "taken-data" in str(other_path.value)


def test_non_empty_data_path_is_rejected(
    source: CatalogSettings, postgres_cluster: PostgresCluster, postgres_database: str, tmp_path: Path
) -> None:
    lake = _lake(postgres_cluster, postgres_database, tmp_path, "crowded")
    folder = Path(lake.data_path) / "user"
    folder.mkdir(parents=True)
    (folder / "results.parquet").write_bytes(b"PAR1")

    with pytest.raises(MigrationError) as raised:
        _migrate(source, lake)

    assert f"the target data path {lake.data_path!r} is not empty" in str(raised.value)
    assert str(folder / "results.parquet") in str(raised.value)


def test_non_empty_file_target_is_rejected(source: CatalogSettings, tmp_path: Path) -> None:
    target = CatalogSettings(path=str(tmp_path / "used.duckdb"))
    connection = duckdb.connect(target.path)
    connection.execute("CREATE TABLE notes (text VARCHAR)")
    connection.close()

    with pytest.raises(MigrationError) as raised:
        _migrate(source, target)

    assert f"the file {target.path!r} is not empty: it contains main.notes (1 in all)" in str(raised.value)
    assert "move the file away" in str(raised.value)


def test_same_catalog_is_rejected(source: CatalogSettings) -> None:
    with pytest.raises(MigrationError) as raised:
        _migrate(source, source)

    assert "the target is the source catalog itself" in str(raised.value)


def test_missing_source_is_rejected(tmp_path: Path) -> None:
    source = CatalogSettings(path=str(tmp_path / "absent.duckdb"))
    target = CatalogSettings(path=str(tmp_path / "target.duckdb"))

    with pytest.raises(MigrationError) as raised:
        _migrate(source, target)

    assert "there is no catalog file at" in str(raised.value)
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def _corrupt_after_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Change one user's e-mail address in the target between the copy and the comparison."""
    copy = catalog.migrate.copy_tables

    def copy_then_corrupt(connection: duckdb.DuckDBPyConnection, target: CatalogSettings) -> list[str]:
        tables = copy(connection, target)
        connection.execute(f"UPDATE {catalog.migrate.TARGET}.main.users SET email = 'changed@example.org'")
        return tables

    monkeypatch.setattr(catalog.migrate, "copy_tables", copy_then_corrupt)


def test_changed_row_is_a_mismatch(
    source: CatalogSettings,
    postgres_cluster: PostgresCluster,
    postgres_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lake = _lake(postgres_cluster, postgres_database, tmp_path, "corrupted")
    before = _contents(source)
    _corrupt_after_copy(monkeypatch)

    result = _migrate(source, lake)

    failed = [check for check in result.checks if not check.ok]
    assert not result.ok
    assert [check.name for check in failed] == ["main.users"]
    assert failed[0].problem == "checksums differ"
    assert failed[0].source_rows == failed[0].target_rows == 1
    assert _contents(source) == before


def test_mismatch_exits_with_one(
    source: CatalogSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _write_settings(tmp_path, [], f'path = "{source.path}"\n')
    _corrupt_after_copy(monkeypatch)

    code = main(["migrate", "--config", str(settings), "--to", "duckdb", "--path", str(tmp_path / "new.duckdb")])

    output = capsys.readouterr()
    assert code == 1
    assert "main.users" in output.out
    assert "MISMATCH (checksums differ)" in output.out
    assert "1 tables differ between the source and the target: main.users" in output.err
    assert "The source is unchanged" in output.err


def test_command_prints_table_and_settings(
    source: CatalogSettings,
    postgres_cluster: PostgresCluster,
    postgres_database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = _write_settings(tmp_path, [], f'path = "{source.path}"\n')
    data_path = tmp_path / "lake-data"

    code = main(
        [
            "migrate",
            "--config",
            str(settings),
            "--to",
            "ducklake",
            "--postgres",
            postgres_cluster.dsn(postgres_database),
            "--data-path",
            str(data_path),
            "--metadata-schema",
            "printed",
        ]
    )

    output = capsys.readouterr()
    assert code == 0, output.err
    assert "main.users" in output.out
    assert "MISMATCH" not in output.out
    assert "every table matches" in output.out
    assert f"the uploaded files stay in {source.path}.uploads" in output.out
    assert 'backend = "ducklake"' in output.out
    assert f'data_path = "{data_path}"' in output.out
    assert postgres_cluster.password not in output.out + output.err


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--to", "duckdb", "--postgres", "dbname=x"], "--postgres only apply with --to ducklake"),
        (["--to", "ducklake", "--postgres", "dbname=x"], "--to ducklake needs --data-path"),
        (["--to", "ducklake"], "--to ducklake needs --postgres and --data-path"),
        (
            ["--to", "ducklake", "--postgres", "dbname=x", "--data-path", "d", "--metadata-schema", "a-b"],
            "invalid --metadata-schema 'a-b'",
        ),
    ],
)
def test_command_rejects_wrong_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], expected: str
) -> None:
    settings = _write_settings(tmp_path, [], f'path = "{tmp_path / "catalog.duckdb"}"\n')

    code = main(["migrate", "--config", str(settings), *options])

    assert code == 2
    assert expected in capsys.readouterr().err


@pytest.fixture
def held(source: CatalogSettings) -> Iterator[subprocess.Popen[str]]:
    """Another process that keeps the source catalog file open for writing, as a running service does."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); time.sleep(120)",
            source.path,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        yield holder
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_locked_source_is_rejected(
    source: CatalogSettings, held: subprocess.Popen[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = CatalogSettings(path=str(tmp_path / "target.duckdb"))

    with pytest.raises(CatalogLockedError) as raised:
        _migrate(source, target)
    settings = _write_settings(tmp_path, [], f'path = "{source.path}"\n')
    code = main(["migrate", "--config", str(settings), "--to", "duckdb", "--path", target.path])

    assert raised.value.pid == held.pid
    assert f"it is in use by PID {held.pid}" in str(raised.value)
    assert "Stop the depictiod service that runs on it first" in str(raised.value)
    assert code == 1
    assert f"in use by PID {held.pid}" in capsys.readouterr().err
    assert not Path(target.path).exists()


def test_source_lake_changed_during_copy(
    source: CatalogSettings,
    postgres_cluster: PostgresCluster,
    postgres_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lake = _lake(postgres_cluster, postgres_database, tmp_path, "busy")
    assert _migrate(source, lake).ok
    copy = catalog.migrate.copy_tables

    def copy_while_writing(connection: duckdb.DuckDBPyConnection, target: CatalogSettings) -> list[str]:
        tables = copy(connection, target)
        # Another process (here another DuckDB instance) commits to the source lake meanwhile.
        writer = Catalog(lake.path, lake)
        try:
            writer.store.write(lambda c: c.execute("INSERT INTO catalog_meta VALUES ('note', ?)", [str(time.time())]))
        finally:
            writer.close()
        return tables

    monkeypatch.setattr(catalog.migrate, "copy_tables", copy_while_writing)

    with pytest.raises(MigrationError) as raised:
        _migrate(lake, CatalogSettings(path=str(tmp_path / "late.duckdb")))

    assert "another process changed the source catalog during the migration" in str(raised.value)


def test_failed_copy_leaves_lake_empty(
    postgres_cluster: PostgresCluster, postgres_database: str, tmp_path: Path
) -> None:
    # DuckLake has no ENUM type, so the second table fails after the first one was written.
    path = tmp_path / "enum.duckdb"
    connection = duckdb.connect(str(path))
    connection.execute("CREATE TABLE catalog_meta (key VARCHAR, value VARCHAR)")
    connection.execute("INSERT INTO catalog_meta VALUES ('schema_version', ?)", [str(catalog.SCHEMA_VERSION)])
    connection.execute("CREATE TABLE many AS SELECT range AS number FROM range(100000)")
    connection.execute("CREATE TYPE mood AS ENUM ('calm', 'busy')")
    connection.execute("CREATE TABLE moods (mood mood)")
    connection.close()
    source = CatalogSettings(path=str(path))
    lake = _lake(postgres_cluster, postgres_database, tmp_path, "enums")

    with pytest.raises(MigrationError) as first:
        _migrate(source, lake)
    with pytest.raises(MigrationError) as second:
        _migrate(source, lake)

    assert "copying the table main.moods failed" in str(first.value)
    assert "unsupported type ENUM" in str(first.value)
    assert "nothing was copied" in str(first.value)
    assert "copying the table main.moods failed" in str(second.value)
    assert [name for _, _, names in os.walk(lake.data_path) for name in names] == []
