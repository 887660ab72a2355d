"""Copy a whole catalog between the two backends: a DuckDB file and DuckLake on PostgreSQL.

One in-memory DuckDB connection attaches the source catalog read-only as `source` and the
target as `target`, with the DuckLake extensions loaded from their wheels. Every table of
every schema (the catalog tables, users, tokens and dashboards in `main`, the aggregated
tables in `data`) is copied in one transaction with `CREATE TABLE ... AS SELECT`, in the
order of the source's row ids, so positions that row cursors count from row ids stay valid.
The transaction reads one snapshot of the source, and a failure leaves the target empty.

Afterwards each table is compared on both sides: column names and types, row count, and the
sum of a hash of (position in row-id order, every column) over all rows.

The uploaded files belong to the catalog's `path` on both backends (`<path>.uploads`). When
the target keeps the source's `path`, they stay where they are. Otherwise they are copied
to the target's uploads folder once the tables match, and the target's `files` rows point there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from collections.abc import Iterator
from typing import Any

import duckdb
import msgspec

from catalog.build import quote
from catalog.errors import CatalogError, CatalogLockedError
from catalog.extensions import EXTENSION_CONFIG, load_extensions
from catalog.lake import is_remote, redacted_error
from catalog.limits import resolve_limits
from catalog.schema import SCHEMA_VERSION
from catalog.store import lock_holder
from config import CatalogSettings

logger = logging.getLogger(__name__)

Connection = duckdb.DuckDBPyConnection

# The names under which the migration's connection attaches the two catalogs.
SOURCE = "source"
TARGET = "target"
# The same rule as config.settings applies to catalog.metadata_schema.
METADATA_SCHEMA_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# Names listed in a message about a target that is not empty; the rest are counted.
_LISTED_NAMES = 10
# Count and checksum of one table. Each row's hash covers its position in row-id order and
# every column, and the sum of those hashes does not depend on the order the rows are read in.
_CHECKSUM_SQL = (
    "SELECT count(*), coalesce(sum(hash(position, row_hash)), 0) FROM ("
    "SELECT row_number() OVER (ORDER BY rowid) AS position, hash(*COLUMNS(*)) AS row_hash FROM {table})"
)


class MigrationError(CatalogError):
    """Raised when a migration cannot start or cannot finish: no source, a target that is not empty, a failed copy."""


class TableCheck(msgspec.Struct, frozen=True, kw_only=True):
    """The comparison of one table after the copy."""

    # "schema.table", such as "main.files" or "data.dc_<collection id>".
    name: str
    source_rows: int
    target_rows: int
    # Why the two sides differ, or "" when they are equal.
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem


class MigrationResult(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of a migration: the comparison of each table, and the uploaded files copied."""

    checks: list[TableCheck]
    # The value of `schema_version` in the source's catalog_meta, copied unchanged.
    schema_version: str
    # Uploaded files copied to the target's uploads folder; 0 when that folder is the source's.
    uploads_copied: int = 0
    # Uploaded files that the catalog lists but that were missing from the source's uploads folder.
    uploads_missing: list[str] = []

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)


def migrate_catalog(
    source: CatalogSettings, target: CatalogSettings, source_uploads: str, target_uploads: str
) -> MigrationResult:
    """Copy every table of the catalog `source` into the empty catalog `target` and compare them.

    `source_uploads` and `target_uploads` are the uploads folders of the two catalogs.
    Return the result, whose `ok` is False when a table differs: the target is then left as
    it is for inspection, and the uploaded files are not copied. The source is only read.
    Raise MigrationError when the source is missing, the target is the source or is not
    empty, the copy fails, or another process changed the source during the copy. Raise
    CatalogLockedError when another process has either DuckDB file open.
    """
    check_distinct(source, target)
    same_uploads = os.path.abspath(source_uploads) == os.path.abspath(target_uploads)
    if not same_uploads:
        _check_folder_empty(target_uploads, "the uploads folder of the target")
    with attach_catalogs(source, target) as connection:
        version = source_schema_version(connection, source)
        check_target_empty(connection, target)
        snapshot = _source_snapshot(connection, source)
        tables = copy_tables(connection, target)
        checks = verify_tables(connection, tables)
        if _source_snapshot(connection, source) != snapshot:
            raise MigrationError(
                "another process changed the source catalog during the migration, so the target may lack its "
                "latest changes. Stop every depictiod process that uses the catalog, empty the target and run "
                "migrate again"
            )
        result = MigrationResult(checks=checks, schema_version=version)
        if not result.ok or same_uploads or "main.files" not in tables:
            return result
        copied, missing = _copy_uploads(connection, target, source_uploads, target_uploads)
    return msgspec.structs.replace(result, uploads_copied=copied, uploads_missing=missing)


def check_distinct(source: CatalogSettings, target: CatalogSettings) -> None:
    """Raise MigrationError when `target` names the same catalog as `source`."""
    if source.backend != target.backend:
        return
    if source.backend == "duckdb":
        same = os.path.realpath(source.path) == os.path.realpath(target.path)
        where = f"the file {source.path!r}"
    else:
        same = source.postgres == target.postgres and source.metadata_schema == target.metadata_schema
        where = f"the DuckLake catalog in metadata schema {source.metadata_schema or 'public'!r}"
    if same:
        raise MigrationError(f"the target is the source catalog itself ({where}); give another target")


@contextlib.contextmanager
def attach_catalogs(source: CatalogSettings, target: CatalogSettings) -> Iterator[Connection]:
    """Yield a connection with `source` attached read-only as SOURCE and `target` as TARGET.

    When the block raises, a target DuckDB file that this call created is removed again,
    unless it has a table by then.
    """
    if source.backend == "duckdb" and not os.path.isfile(source.path):
        raise MigrationError(f"there is no catalog file at {source.path!r} to migrate; check catalog.path")
    limits = resolve_limits(source.path, source)
    config = limits.catalog_config()
    # DuckDB creates only the last level of the spill folder.
    os.makedirs(limits.temp_directory, exist_ok=True)
    connection = duckdb.connect(":memory:", config={**EXTENSION_CONFIG, **config})
    created: str | None = None
    try:
        lakes = [settings for settings in (source, target) if settings.backend == "ducklake"]
        if lakes:
            remote = any(is_remote(settings.data_path) for settings in lakes)
            load_extensions(connection, ["ducklake", "postgres_scanner"] + (["httpfs"] if remote else []))
        _attach_source(connection, source)
        if target.backend == "duckdb" and not os.path.exists(target.path):
            created = os.path.abspath(target.path)
        _attach_target(connection, target)
        yield connection
    except BaseException:
        connection.close()
        if created is not None and not _has_tables(created):
            for leftover in (created, created + ".wal"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(leftover)
        raise
    connection.close()


def _attach_source(connection: Connection, source: CatalogSettings) -> None:
    if source.backend == "duckdb":
        _attach_file(connection, source.path, SOURCE, read_only=True)
        return
    try:
        connection.execute(_lake_attach_sql(source, SOURCE, read_only=True))
    except duckdb.Error as error:
        message = redacted_error(error, source.postgres)
        if "does not exist" in message:
            raise MigrationError(
                f"there is no DuckLake catalog in metadata schema {source.metadata_schema or 'public'!r} of the "
                "PostgreSQL database of catalog.postgres to migrate; check catalog.postgres and "
                "catalog.metadata_schema"
            ) from None
        raise MigrationError(f"cannot attach the source DuckLake catalog (catalog.postgres): {message}") from None


def _attach_target(connection: Connection, target: CatalogSettings) -> None:
    if target.backend == "duckdb":
        folder = os.path.dirname(os.path.abspath(target.path))
        if not os.path.isdir(folder):
            raise MigrationError(f"the folder {folder!r} of the target catalog file does not exist; create it first")
        _attach_file(connection, target.path, TARGET, read_only=False)
        return
    data_path = _data_path(target)
    if not is_remote(data_path):
        try:
            os.makedirs(data_path, exist_ok=True)
        except OSError as error:
            raise MigrationError(f"cannot create the target data path {data_path!r}: {error.strerror}") from None
    try:
        connection.execute(_lake_attach_sql(target, TARGET, read_only=False))
    except duckdb.Error as error:
        message = redacted_error(error, target.postgres)
        if "does not match existing data path" in message:
            raise MigrationError(
                f"the target DuckLake catalog is not empty: it exists already with another data path ({message}); "
                "give another --metadata-schema or an empty database"
            ) from None
        raise MigrationError(
            f"cannot attach the target DuckLake catalog (--postgres, --data-path {data_path!r}): {message}. Check "
            "that PostgreSQL is reachable with that connection string (the password comes from PGPASSWORD or ~/.pgpass)"
        ) from None


def _attach_file(connection: Connection, path: str, name: str, read_only: bool) -> None:
    mode = " (READ_ONLY)" if read_only else ""
    try:
        connection.execute(f"ATTACH {_literal(os.path.abspath(path))} AS {name}{mode}")
    except duckdb.Error as error:
        holder = lock_holder(error)
        if holder is not None:
            program, pid = holder
            raise CatalogLockedError(
                f"cannot open the catalog {path!r}: it is in use by PID {pid} ({program}). Stop the depictiod "
                "service that runs on it first, then run migrate again",
                pid,
            ) from None
        raise MigrationError(f"cannot open the catalog file {path!r}: {str(error).splitlines()[0]}") from None


def _lake_attach_sql(settings: CatalogSettings, name: str, read_only: bool) -> str:
    options = [f"DATA_PATH {_literal(_data_path(settings))}"]
    if settings.metadata_schema:
        options.append(f"METADATA_SCHEMA {_literal(settings.metadata_schema)}")
    if read_only:
        options.append("READ_ONLY")
    return f"ATTACH {_literal('ducklake:postgres:' + settings.postgres)} AS {name} ({', '.join(options)})"


def _data_path(settings: CatalogSettings) -> str:
    return settings.data_path if is_remote(settings.data_path) else os.path.abspath(settings.data_path)


def _files_under(connection: Connection, folder: str) -> list[str]:
    """Return the files under `folder`, a local folder or an object store prefix, sorted."""
    if is_remote(folder):
        # NOTE: never run against an object store; the glob relies on httpfs's listing.
        rows = connection.execute("SELECT file FROM glob(?)", [folder.rstrip("/") + "/**"]).fetchall()
        return sorted(str(row[0]) for row in rows)
    return _local_files(folder)


def _local_files(folder: str) -> list[str]:
    found: list[str] = []
    for root, _, names in os.walk(folder):
        found.extend(os.path.join(root, name) for name in names)
    return sorted(found)


def _check_folder_empty(folder: str, what: str) -> None:
    files = _local_files(folder)
    if files:
        raise MigrationError(f"{what} {folder!r} is not empty: it contains {_listing(files)}; move them away first")


def source_schema_version(connection: Connection, source: CatalogSettings) -> str:
    """Return the source's schema version; raise MigrationError when it is no catalog or a newer one."""
    tables = _tables(connection, SOURCE)
    where = source.path if source.backend == "duckdb" else "the DuckLake catalog of catalog.postgres"
    if "main.catalog_meta" not in tables:
        raise MigrationError(f"{where} contains no depictiod catalog (it has no table catalog_meta); check [catalog]")
    rows = connection.execute(f"SELECT value FROM {SOURCE}.main.catalog_meta WHERE key = 'schema_version'").fetchall()
    version = str(rows[0][0]) if rows else "missing"
    if not version.isdigit() or int(version) > SCHEMA_VERSION:
        raise MigrationError(
            f"{where} has schema version {version}, but this depictiod uses version {SCHEMA_VERSION}; migrate it "
            "with the depictiod release that wrote it"
        )
    return version


def check_target_empty(connection: Connection, target: CatalogSettings) -> None:
    """Raise MigrationError, naming what is there, when the target has tables or views, or a lake's data path has files."""
    found = _tables(connection, TARGET) + _views(connection, TARGET)
    where = f"the file {target.path!r}" if target.backend == "duckdb" else "the target DuckLake catalog"
    remedy = (
        "move the file away" if target.backend == "duckdb" else "give another --metadata-schema or an empty database"
    )
    if found:
        raise MigrationError(f"{where} is not empty: it contains {_listing(found)} ({len(found)} in all); {remedy}")
    if target.backend == "ducklake":
        data_path = _data_path(target)
        files = _files_under(connection, data_path)
        if files:
            raise MigrationError(
                f"the target data path {data_path!r} is not empty: it contains {_listing(files)}. DuckLake deletes "
                "files there that its catalog does not list, so give a new or empty folder"
            )


def copy_tables(connection: Connection, target: CatalogSettings) -> list[str]:
    """Copy every table of SOURCE into TARGET in one transaction; return their names as "schema.table".

    Raise MigrationError when the source has views, which the copy does not recreate, or
    when a table cannot be created in the target.
    """
    views = _views(connection, SOURCE)
    if views:
        raise MigrationError(
            f"the source catalog contains views ({_listing(views)}), which depictiod does not create and the "
            "migration does not copy; drop them first"
        )
    tables = _tables(connection, SOURCE)
    schemas = sorted({name.split(".", 1)[0] for name in tables} - {"main"})
    connection.execute("BEGIN TRANSACTION")
    try:
        for schema in schemas:
            connection.execute(f"CREATE SCHEMA IF NOT EXISTS {TARGET}.{quote(schema)}")
        for name in tables:
            logger.info("copying table %s", name)
            qualified = _qualified(name)
            try:
                connection.execute(
                    f"CREATE TABLE {TARGET}.{qualified} AS SELECT * FROM {SOURCE}.{qualified} ORDER BY rowid"
                )
            except duckdb.Error as error:
                raise MigrationError(
                    f"copying the table {name} failed: {redacted_error(error, target.postgres)}; nothing was copied"
                ) from None
        connection.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            connection.execute("ROLLBACK")
        raise
    if target.backend == "duckdb":
        connection.execute(f"CHECKPOINT {TARGET}")
    return tables


def verify_tables(connection: Connection, tables: list[str]) -> list[TableCheck]:
    """Compare the columns, row count and checksum of each table on both sides."""
    checks = []
    for name in tables:
        source_columns = _columns(connection, SOURCE, name)
        target_columns = _columns(connection, TARGET, name)
        source_rows, source_sum = _checksum(connection, SOURCE, name)
        if not target_columns:
            checks.append(TableCheck(name=name, source_rows=source_rows, target_rows=0, problem="missing"))
            continue
        target_rows, target_sum = _checksum(connection, TARGET, name)
        problem = ""
        if source_columns != target_columns:
            problem = "columns differ"
        elif source_rows != target_rows:
            problem = "row counts differ"
        elif source_sum != target_sum:
            problem = "checksums differ"
        checks.append(TableCheck(name=name, source_rows=source_rows, target_rows=target_rows, problem=problem))
    return checks


def _checksum(connection: Connection, database: str, name: str) -> tuple[int, int]:
    rows = connection.execute(_CHECKSUM_SQL.format(table=f"{database}.{_qualified(name)}")).fetchall()
    return int(rows[0][0]), int(rows[0][1])


def _columns(connection: Connection, database: str, name: str) -> list[tuple[str, str]]:
    schema, table = name.split(".", 1)
    rows = connection.execute(
        "SELECT column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = ? AND schema_name = ? AND table_name = ? ORDER BY column_index",
        [database, schema, table],
    ).fetchall()
    return [(str(column), str(data_type)) for column, data_type in rows]


def _source_snapshot(connection: Connection, source: CatalogSettings) -> Any:
    """Return the source lake's current snapshot id; None for a DuckDB file, which the attach locks."""
    if source.backend != "ducklake":
        return None
    rows = connection.execute(f"SELECT id FROM ducklake_current_snapshot('{SOURCE}')").fetchall()
    return rows[0][0] if rows else None


def _copy_uploads(
    connection: Connection, target: CatalogSettings, source_uploads: str, target_uploads: str
) -> tuple[int, list[str]]:
    """Copy the uploaded files that the target's `files` table lists into `target_uploads`, and point the rows there.

    Return how many files were copied, and the listed files that were missing.
    """
    old_root = os.path.abspath(source_uploads).rstrip(os.sep) + os.sep
    new_root = os.path.abspath(target_uploads).rstrip(os.sep) + os.sep
    rows = connection.execute(
        f"SELECT file_location FROM {TARGET}.main.files WHERE origin = 'upload' AND starts_with(file_location, ?)",
        [old_root],
    ).fetchall()
    copied = 0
    missing = []
    for (location,) in rows:
        destination = new_root + location[len(old_root) :]
        try:
            os.makedirs(os.path.dirname(destination), mode=0o700, exist_ok=True)
            shutil.copy2(location, destination)
        except FileNotFoundError:
            logger.warning("uploaded file %s is missing; the target's catalog lists it but lacks it", location)
            missing.append(location)
            continue
        except OSError as error:
            raise MigrationError(
                f"copying the uploaded file {location!r} to {destination!r} failed: {error.strerror}; the tables "
                "are copied, but their uploaded files are not all in the target's uploads folder"
            ) from None
        copied += 1
    connection.execute("BEGIN TRANSACTION")
    connection.execute(
        f"UPDATE {TARGET}.main.files SET file_location = ? || substr(file_location, ?) "
        "WHERE origin = 'upload' AND starts_with(file_location, ?)",
        [new_root, len(old_root) + 1, old_root],
    )
    connection.execute("COMMIT")
    if target.backend == "duckdb":
        connection.execute(f"CHECKPOINT {TARGET}")
    return copied, missing


def _tables(connection: Connection, database: str) -> list[str]:
    rows = connection.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? AND NOT temporary "
        "ORDER BY schema_name, table_name",
        [database],
    ).fetchall()
    return [f"{schema}.{table}" for schema, table in rows]


def _views(connection: Connection, database: str) -> list[str]:
    rows = connection.execute(
        "SELECT schema_name, view_name FROM duckdb_views() WHERE database_name = ? AND NOT internal "
        "ORDER BY schema_name, view_name",
        [database],
    ).fetchall()
    return [f"{schema}.{view}" for schema, view in rows]


def _has_tables(path: str) -> bool:
    """Return True when the DuckDB file `path` has a table, or cannot be opened to tell."""
    try:
        connection = duckdb.connect(path, read_only=True)
    except duckdb.Error:
        return True
    try:
        rows = connection.execute("SELECT count(*) FROM duckdb_tables() WHERE NOT temporary").fetchall()
        return bool(rows[0][0])
    finally:
        connection.close()


def _qualified(name: str) -> str:
    schema, table = name.split(".", 1)
    return f"{quote(schema)}.{quote(table)}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_LISTED_NAMES])
    rest = len(names) - _LISTED_NAMES
    return f"{shown} and {rest} more" if rest > 0 else shown
