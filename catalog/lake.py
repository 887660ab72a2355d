"""Open a DuckLake catalog: metadata in PostgreSQL, table data as Parquet files in a shared data path.

The connection is an in-memory DuckDB database with the DuckLake catalog attached as LAKE and
made the default, so the catalog's SQL runs on it unchanged. DuckDB's cursors do not inherit
that default, so every cursor gets `USE lake` (`lake_cursor`).
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from typing import Any

import duckdb

from catalog.errors import CatalogError
from catalog.extensions import EXTENSION_CONFIG, load_extensions
from config import CatalogSettings

logger = logging.getLogger(__name__)

LAKE = "lake"
# Schemas whose folders DuckLake creates under the data path. With external access off it
# cannot create two levels at once, so they are made before (see open_lake).
_SCHEMAS = ("main", "data")
# Snapshots and files older than this are removed by `maintain`; processes that read an
# older snapshot than that would lose their files.
RETENTION = "1 hour"
# Attempts to attach while other processes create a new catalog's tables (see open_lake).
ATTACH_ATTEMPTS = 8


def is_remote(data_path: str) -> bool:
    return "://" in data_path


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def open_lake(settings: CatalogSettings, config: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    """Return a connection whose default database is the DuckLake catalog of `settings`.

    `config` contains the DuckDB limits (memory, threads, spill folder). External access is
    turned off after the attach, with the data path and the spill folder as the only
    folders allowed, so SQL on this connection reads no other file. Raise CatalogError
    naming the setting at fault when the catalog cannot be attached.

    Processes that start together on an empty catalog all try to create DuckLake's tables
    in PostgreSQL, and all but one fail on PostgreSQL's unique names; once one succeeded,
    the others attach to what it created, on a new connection.
    """
    data_path = settings.data_path if is_remote(settings.data_path) else os.path.abspath(settings.data_path)
    if not is_remote(data_path):
        _make_folders(data_path)
    for attempt in range(ATTACH_ATTEMPTS):
        try:
            connection = _attach(settings, config, data_path)
        except duckdb.Error as error:
            if "Failed to initialize DuckLake" in str(error) and attempt < ATTACH_ATTEMPTS - 1:
                logger.info("creating the new DuckLake catalog raced with another process; attaching again")
                time.sleep(0.3 * (attempt + 1) * (0.5 + random.random()))
                continue
            raise CatalogError(
                f"cannot attach the DuckLake catalog (catalog.postgres, catalog.data_path {data_path!r}): "
                f"{redacted_error(error, settings.postgres)}. Check that PostgreSQL is reachable with that connection string "
                "(the password comes from PGPASSWORD or ~/.pgpass)"
            ) from None
        logger.info("attached DuckLake catalog with data path %s", data_path)
        return connection
    raise AssertionError("unreachable")


def _attach(settings: CatalogSettings, config: dict[str, Any], data_path: str) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(":memory:", config={**EXTENSION_CONFIG, **config})
    try:
        extensions = ["ducklake", "postgres_scanner"] + (["httpfs"] if is_remote(data_path) else [])
        load_extensions(connection, extensions)
        # Rows are never kept inside PostgreSQL: a wide file's rows exceed its 8 KB row and
        # 1,600-column limits there, so even one-row inserts go to Parquet files.
        options = [f"DATA_PATH {_quote(data_path)}", "DATA_INLINING_ROW_LIMIT 0"]
        if settings.metadata_schema:
            options.append(f"METADATA_SCHEMA {_quote(settings.metadata_schema)}")
        connection.execute(
            f"ATTACH {_quote('ducklake:postgres:' + settings.postgres)} AS {LAKE} ({', '.join(options)})"
        )
        connection.execute(f"USE {LAKE}")
        if not is_remote(data_path):
            allowed = [data_path.rstrip(os.sep) + os.sep, str(config["temp_directory"]).rstrip(os.sep) + os.sep]
            connection.execute("SET allowed_directories = ?", [allowed])
            connection.execute("SET enable_external_access = false")
        # NOTE: with an s3:// data path external access stays on, because the object store must
        # be reached; /sql still reads only the catalog's tables (catalog.sql_check).
    except BaseException:
        connection.close()
        raise
    return connection


def _make_folders(data_path: str) -> None:
    try:
        for schema in _SCHEMAS:
            os.makedirs(os.path.join(data_path, schema), exist_ok=True)
    except OSError as error:
        raise CatalogError(
            f"cannot create the DuckLake data path {data_path!r}: {error.strerror}; set catalog.data_path to a "
            "writable folder that every depictiod process of this catalog can reach"
        ) from None


def lake_cursor(connection: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Return a cursor of `connection` whose default database is the lake."""
    cursor = connection.cursor()
    cursor.execute(f"USE {LAKE}")
    return cursor


def is_lake(connection: duckdb.DuckDBPyConnection) -> bool:
    """Return True when `connection` works on a DuckLake catalog."""
    row = connection.execute("SELECT current_database()").fetchone()
    return row is not None and row[0] == LAKE


class StalePlanError(Exception):
    """Raised inside a table change when another process changed the table after this one planned its change."""


def is_conflict(error: BaseException) -> bool:
    """Return True for a conflict with another writer, which a retry of the whole work resolves."""
    if isinstance(error, StalePlanError):
        return True
    return isinstance(error, duckdb.TransactionException) and "Transaction conflict" in str(error)


def claim_table_writes(connection: duckdb.DuckDBPyConnection) -> None:
    """Make the open transaction conflict with any other write transaction on the catalog.

    DuckLake commits two transactions that only insert into one table side by side, which
    would duplicate a file, a run or a table's rows that two processes add at once, since
    the catalog has no unique constraints. Both update the one row of table_writes instead,
    so the second to commit fails and runs again, and writes behave as if they ran one
    after another.
    """
    connection.execute("UPDATE table_writes SET n = n + 1")


def maintain(connection: duckdb.DuckDBPyConnection) -> None:
    """Compact the lake's files and remove snapshots and files older than RETENTION.

    The files removed are DuckLake's own Parquet files in the data path: depictiod copies
    every row there and never registers a workflow's file in place, so no user file is touched.
    """
    # Shared change events (catalog.relay) are read within a second; an hour is plenty.
    connection.execute(f"DELETE FROM change_events WHERE published_at < now()::TIMESTAMP - INTERVAL '{RETENTION}'")
    connection.execute(f"CALL ducklake_flush_inlined_data('{LAKE}')")
    connection.execute(f"CALL ducklake_merge_adjacent_files('{LAKE}')")
    connection.execute(f"CALL ducklake_expire_snapshots('{LAKE}', older_than => now() - INTERVAL '{RETENTION}')")
    connection.execute(f"CALL ducklake_cleanup_old_files('{LAKE}', older_than => now() - INTERVAL '{RETENTION}')")


# libpq's password field, which DuckDB's errors repeat from the connection string.
_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redacted_error(error: duckdb.Error, dsn: str) -> str:
    """Return the first line of DuckDB's error without the password of the connection string `dsn`."""
    message = str(error).splitlines()[0]
    for match in _PASSWORD.finditer(dsn):
        message = message.replace(match.group(2), "***")
    return _PASSWORD.sub(r"\1***", message)
