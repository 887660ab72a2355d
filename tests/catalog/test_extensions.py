"""Loading DuckDB's ducklake, postgres_scanner and httpfs extensions from their Python wheels."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from catalog.extensions import (
    EXTENSION_CONFIG,
    EXTENSIONS,
    ExtensionError,
    duckdb_version,
    extension_path,
    load_extensions,
)
from tests.postgres import PostgresCluster

ALL_EXTENSIONS = sorted(EXTENSIONS)


def _connect() -> duckdb.DuckDBPyConnection:
    return duckdb.connect(config=EXTENSION_CONFIG)


def _loaded(connection: duckdb.DuckDBPyConnection) -> set[str]:
    rows = connection.execute("SELECT extension_name FROM duckdb_extensions() WHERE loaded").fetchall()
    return {str(name) for (name,) in rows}


def test_extension_paths_are_in_wheels() -> None:
    connection = _connect()
    version = duckdb_version(connection)
    assert version == f"v{duckdb.__version__}"
    for name in ALL_EXTENSIONS:
        path = extension_path(name, version)
        assert path.is_file(), path
        assert path.name == f"{name}.duckdb_extension"
        assert "site-packages" in path.parts or "dist-packages" in path.parts, path


def test_load_all_extensions() -> None:
    connection = _connect()
    loaded = load_extensions(connection, ALL_EXTENSIONS)
    assert sorted(loaded) == ALL_EXTENSIONS
    assert set(ALL_EXTENSIONS) <= _loaded(connection)


def test_load_needs_no_unsigned_extensions() -> None:
    connection = _connect()
    load_extensions(connection, ALL_EXTENSIONS)
    row = connection.execute("SELECT current_setting('allow_unsigned_extensions')").fetchone()
    assert row == (False,)


def test_load_twice_is_harmless() -> None:
    connection = _connect()
    load_extensions(connection, ["ducklake"])
    load_extensions(connection, ["ducklake"])
    assert "ducklake" in _loaded(connection)


def test_postgres_alias_loads_postgres_scanner() -> None:
    connection = _connect()
    loaded = load_extensions(connection, ["postgres"])
    assert list(loaded) == ["postgres_scanner"]
    assert "postgres_scanner" in _loaded(connection)


def test_unknown_extension_is_rejected() -> None:
    with pytest.raises(ExtensionError, match="unknown DuckDB extension 'spatial'"):
        load_extensions(_connect(), ["spatial"])


def test_missing_package_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "duckdb_extension_ducklake":
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ExtensionError) as raised:
        load_extensions(_connect(), ["ducklake"])
    message = str(raised.value)
    assert "the Python package duckdb-extension-ducklake is not installed" in message
    assert f"pip install 'duckdb-extension-ducklake=={duckdb.__version__}'" in message


def test_other_duckdb_version_names_the_shipped_one() -> None:
    with pytest.raises(ExtensionError) as raised:
        extension_path("httpfs", "v0.0.1")
    message = str(raised.value)
    assert "for DuckDB v0.0.1 is missing" in message
    assert f"has httpfs.duckdb_extension for v{duckdb.__version__}" in message
    assert "pip install 'duckdb-extension-httpfs==0.0.1'" in message


def test_autoload_setting_is_rejected() -> None:
    connection = duckdb.connect(config={"autoinstall_known_extensions": False})
    with pytest.raises(ExtensionError, match="autoload_known_extensions is True, expected False"):
        load_extensions(connection, ["ducklake"])


def test_corrupt_binary_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "httpfs.duckdb_extension"
    broken.write_bytes(b"not an extension")
    monkeypatch.setattr("catalog.extensions.extension_path", lambda name, version: broken)
    with pytest.raises(ExtensionError) as raised:
        load_extensions(_connect(), ["httpfs"])
    assert f"loading the DuckDB extension 'httpfs' from {broken} failed" in str(raised.value)
    assert "reinstall the package duckdb-extension-httpfs" in str(raised.value)


# Loads ducklake in a fresh process whose home has no DuckDB extension folder, then uses a
# DuckLake with a DuckDB catalog file. Prints the rows read back.
LAKE_WITHOUT_HOME = """
import sys, duckdb
from catalog.extensions import EXTENSION_CONFIG, load_extensions
connection = duckdb.connect(config=EXTENSION_CONFIG)
load_extensions(connection, ["ducklake"])
folder = sys.argv[1]
connection.execute(f"ATTACH 'ducklake:{folder}/meta.ducklake' AS lake (DATA_PATH '{folder}/data')")
connection.execute("CREATE TABLE lake.numbers AS SELECT range AS n FROM range(3)")
print(connection.execute("SELECT list(n ORDER BY n) FROM lake.numbers").fetchone()[0])
"""


def test_ducklake_works_without_extension_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    completed = subprocess.run(
        [sys.executable, "-c", LAKE_WITHOUT_HOME, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[2])},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[0, 1, 2]"
    assert not (home / ".duckdb").exists()


def test_ducklake_on_postgres(postgres_cluster: PostgresCluster, postgres_database: str, tmp_path: Path) -> None:
    connection = _connect()
    load_extensions(connection, ["ducklake", "postgres_scanner"])
    dsn = postgres_cluster.dsn(postgres_database)
    connection.execute(f"ATTACH 'ducklake:postgres:{dsn}' AS lake (DATA_PATH '{tmp_path}/data')")
    connection.execute("CREATE TABLE lake.numbers AS SELECT range AS n FROM range(3)")
    row = connection.execute("SELECT list(n ORDER BY n) FROM lake.numbers").fetchone()
    assert row == ([0, 1, 2],)
    connection.close()
    # DuckLake keeps its metadata in PostgreSQL: the table is listed there.
    listed = postgres_cluster.psql("SELECT table_name FROM ducklake_table", dbname=postgres_database)
    assert listed.split() == ["numbers"]
