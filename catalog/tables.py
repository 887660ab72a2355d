"""Aggregated tables: build one table per data collection and swap it in atomically."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import msgspec
import pyarrow.feather

from catalog import specs
from catalog.readers import SourceFile, UnreadableFileError, find_ragged_line, read_expression
from catalog.records import ColumnSpec, DriftNote, TableRecord
from catalog.runs_files import utc_now
from catalog.schema import DATA_SCHEMA
from catalog.store import Connection, Store
from catalog.widen import NULL, TEXT, common_type, unify

logger = logging.getLogger(__name__)

# Columns that depictiod adds to every aggregated row; a file's own copies are replaced.
RESERVED_COLUMNS = ("depictio_run_id", "depictio_file_id", "aggregation_time")
_LINE_NUMBER = re.compile(r"[Ll]ine:? (\d+)")
_TABLE_COLUMNS = (
    "data_collection_id, table_name, row_count, column_count, size_bytes, aggregation_version, "
    "aggregation_time, aggregation_hash, inputs_fingerprint, drift"
)


class BuildRequest(msgspec.Struct, kw_only=True, frozen=True):
    collection_id: str
    files: list[SourceFile]
    # Fingerprint of the files and reader settings; equal fingerprints mean equal tables.
    inputs_fingerprint: str
    keep_columns: list[str] | None = None
    descriptions: dict[str, str] = msgspec.field(default_factory=dict)
    input_bytes: int = 0


class FileResult(msgspec.Struct, kw_only=True, frozen=True):
    file_id: str
    status: str
    error: str | None = None
    error_line: int | None = None
    row_count: int | None = None


class BuildResult(msgspec.Struct, kw_only=True, frozen=True):
    table: TableRecord | None
    files: list[FileResult]


def table_name(collection_id: str) -> str:
    """Return the quoted, schema-qualified name of a collection's aggregated table."""
    return f'{DATA_SCHEMA}."dc_{collection_id}"'


class TableRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, collection_id: str) -> TableRecord | None:
        row = self._store.query_one(
            f"SELECT {_TABLE_COLUMNS} FROM aggregated_tables WHERE data_collection_id = ?", [collection_id]
        )
        if row is None:
            return None
        values = dict(zip(TableRecord.__struct_fields__, row, strict=True))
        values["drift"] = msgspec.json.decode(str(values["drift"] or "[]"), type=list[DriftNote])
        return TableRecord(**values)

    def column_specs(self, collection_id: str) -> list[ColumnSpec]:
        rows = self._store.query(
            "SELECT name, duckdb_type, type, description, specs FROM column_specs "
            "WHERE data_collection_id = ? ORDER BY position",
            [collection_id],
        )
        return [
            ColumnSpec(
                name=name,
                duckdb_type=duckdb_type,
                type=kind,
                description=description,
                specs=msgspec.json.decode(spec_json),
            )
            for name, duckdb_type, kind, description, spec_json in rows
        ]

    def preview(self, collection_id: str, limit: int) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Return (column names, first `limit` rows) of the collection's table."""
        with self._store.read() as cursor:
            result = cursor.execute(f"SELECT * FROM {table_name(collection_id)} LIMIT ?", [limit])
            columns = [description[0] for description in result.description or []]
            return columns, result.fetchall()

    def build(self, request: BuildRequest) -> BuildResult:
        """Read every file of the request into a new table and swap it in for the old one."""
        return self._store.write_steps(lambda connection: _Builder(connection, request).run())

    def drop(self, collection_id: str) -> None:
        """Remove a collection's table, for a collection that has no file left."""

        def work(connection: Connection) -> None:
            connection.execute(f"DROP TABLE IF EXISTS {table_name(collection_id)}")
            connection.execute("DELETE FROM aggregated_tables WHERE data_collection_id = ?", [collection_id])
            connection.execute("DELETE FROM column_specs WHERE data_collection_id = ?", [collection_id])

        self._store.write(work)


class _Builder:
    """One table build on the writer connection: describe, unify, insert, swap."""

    def __init__(self, connection: Connection, request: BuildRequest) -> None:
        self.connection = connection
        self.request = request
        self.results: dict[str, FileResult] = {}
        self.scratch = table_name(f"{request.collection_id}__next")
        self.aggregation_time = utc_now()

    def run(self) -> BuildResult:
        schemas = self._describe_files()
        if not schemas:
            return BuildResult(table=None, files=list(self.results.values()))

        unified = unify(schemas)
        columns = self._select_columns(unified.columns)
        self.connection.execute(f"DROP TABLE IF EXISTS {self.scratch}")
        self.connection.execute(f"CREATE TABLE {self.scratch} ({_column_definitions(columns)})")
        drift = [DriftNote(file_id=f, column=c, file_type=ft, table_type=tt) for f, c, ft, tt in unified.drift]

        file_columns = dict(schemas)
        for source in self.request.files:
            if source.file_id in self.results:
                continue
            self._insert_file(source, dict(file_columns[source.file_id]), columns, drift)

        if not any(result.status == "aggregated" for result in self.results.values()):
            self.connection.execute(f"DROP TABLE IF EXISTS {self.scratch}")
            return BuildResult(table=None, files=list(self.results.values()))

        table = self._swap(columns, drift)
        return BuildResult(table=table, files=list(self.results.values()))

    # Describe each file once; a file that cannot be read is recorded and skipped.
    def _describe_files(self) -> list[tuple[str, list[tuple[str, str]]]]:
        schemas: list[tuple[str, list[tuple[str, str]]]] = []
        for source in self.request.files:
            try:
                with _reading(self.connection, source) as (expression, parameters):
                    rows = self.connection.execute(f"DESCRIBE SELECT * FROM {expression}", parameters).fetchall()
                    columns = [(str(row[0]), str(row[1])) for row in rows if row[0] not in RESERVED_COLUMNS]
                    columns = self._mark_empty_text_columns(expression, parameters, columns)
            except (duckdb.Error, UnreadableFileError, OSError, ValueError) as error:
                self._fail(source, error)
                continue
            if not columns:
                self._fail(source, UnreadableFileError("the file has no columns"))
                continue
            schemas.append((source.file_id, columns))
        return schemas

    def _mark_empty_text_columns(
        self, expression: str, parameters: list[Any], columns: list[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        # DuckDB types an all-empty CSV column as VARCHAR; treating it as text would turn a
        # numeric column of the other files into text, so it counts as "no type" instead.
        text_columns = [name for name, kind in columns if kind == TEXT]
        if not text_columns or len(self.request.files) == 1:
            return columns
        counts_sql = ", ".join(f"count({_quote(name)})" for name in text_columns)
        counts = self.connection.execute(f"SELECT {counts_sql} FROM {expression}", parameters).fetchone() or ()
        empty = {name for name, count in zip(text_columns, counts, strict=True) if count == 0}
        return [(name, NULL if name in empty else kind) for name, kind in columns]

    def _select_columns(self, columns: list[tuple[str, str]]) -> list[tuple[str, str]]:
        keep = self.request.keep_columns
        if keep:
            present = {name for name, _ in columns}
            missing = [name for name in keep if name not in present]
            if missing:
                logger.warning(
                    "collection %s: keep_columns lists %s, which no file contains", self.request.collection_id, missing
                )
            columns = [(name, kind) for name, kind in columns if name in keep]
        return [*columns, ("depictio_run_id", TEXT), ("depictio_file_id", TEXT), ("aggregation_time", "TIMESTAMP")]

    def _insert_file(
        self, source: SourceFile, file_types: dict[str, str], columns: list[tuple[str, str]], drift: list[DriftNote]
    ) -> None:
        for full_sample in (False, True):
            try:
                rows = self._insert(source, file_types, columns, full_sample)
            except duckdb.ConversionException as error:
                if not full_sample:
                    # The sniffer typed a column from a sample; a later row disagrees, so
                    # read the whole file to type it, widening the table when needed.
                    file_types = self._retype(source, file_types, columns, drift)
                    continue
                self._fail(source, error)
                return
            except (duckdb.Error, UnreadableFileError, OSError, ValueError) as error:
                self._fail(source, error)
                return
            self.results[source.file_id] = FileResult(file_id=source.file_id, status="aggregated", row_count=rows)
            return

    def _insert(
        self, source: SourceFile, file_types: dict[str, str], columns: list[tuple[str, str]], full_sample: bool
    ) -> int:
        selects = []
        for name, kind in columns[: -len(RESERVED_COLUMNS)]:
            if name in file_types:
                selects.append(f"CAST({_quote(name)} AS {kind}) AS {_quote(name)}")
            else:
                selects.append(f"CAST(NULL AS {kind}) AS {_quote(name)}")
        selects.extend(["? AS depictio_run_id", "? AS depictio_file_id", "? AS aggregation_time"])
        with _reading(self.connection, source, full_sample) as (expression, parameters):
            sql = f"INSERT INTO {self.scratch} BY NAME SELECT {', '.join(selects)} FROM {expression}"
            values = [source.run_tag, source.file_id, self.aggregation_time, *parameters]
            row = self.connection.execute(sql, values).fetchone()
        return int(row[0]) if row else 0

    def _retype(
        self, source: SourceFile, file_types: dict[str, str], columns: list[tuple[str, str]], drift: list[DriftNote]
    ) -> dict[str, str]:
        with _reading(self.connection, source, full_sample=True) as (expression, parameters):
            rows = self.connection.execute(f"DESCRIBE SELECT * FROM {expression}", parameters).fetchall()
        new_types = {str(row[0]): str(row[1]) for row in rows if row[0] not in RESERVED_COLUMNS}
        for index, (name, kind) in enumerate(columns):
            if name not in new_types:
                continue
            widened = common_type(kind, new_types[name])
            if widened != kind:
                self.connection.execute(f"ALTER TABLE {self.scratch} ALTER {_quote(name)} TYPE {widened}")
                columns[index] = (name, widened)
            if new_types[name] != widened:
                drift.append(
                    DriftNote(file_id=source.file_id, column=name, file_type=new_types[name], table_type=widened)
                )
        return new_types

    def _fail(self, source: SourceFile, error: BaseException) -> None:
        message, line = _describe_error(source, error)
        logger.warning("file %s (%s) skipped: %s", source.file_id, source.location, message)
        self.results[source.file_id] = FileResult(
            file_id=source.file_id, status="failed", error=message, error_line=line
        )

    def _swap(self, columns: list[tuple[str, str]], drift: list[DriftNote]) -> TableRecord:
        collection_id = self.request.collection_id
        column_specs = specs.compute(self.connection, self.scratch, columns, self.request.descriptions)
        row_count = sum(result.row_count or 0 for result in self.results.values())
        live = table_name(collection_id)

        self.connection.execute("BEGIN TRANSACTION")
        try:
            previous = self.connection.execute(
                "SELECT aggregation_version FROM aggregated_tables WHERE data_collection_id = ?", [collection_id]
            ).fetchone()
            version = (previous[0] if previous else 0) + 1
            table = TableRecord(
                data_collection_id=collection_id,
                table_name=live,
                row_count=row_count,
                column_count=len(columns),
                size_bytes=self.request.input_bytes,
                aggregation_version=version,
                aggregation_time=self.aggregation_time,
                aggregation_hash=hashlib.sha256(f"{self.request.inputs_fingerprint}:{version}".encode()).hexdigest(),
                inputs_fingerprint=self.request.inputs_fingerprint,
                drift=drift,
            )
            self.connection.execute(f"DROP TABLE IF EXISTS {live}")
            self.connection.execute(f'ALTER TABLE {self.scratch} RENAME TO "dc_{collection_id}"')
            _store_table_record(self.connection, table, column_specs)
            self.connection.execute("COMMIT")
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        return table


def _store_table_record(connection: Connection, table: TableRecord, column_specs: list[ColumnSpec]) -> None:
    connection.execute("DELETE FROM aggregated_tables WHERE data_collection_id = ?", [table.data_collection_id])
    values = [getattr(table, name) for name in TableRecord.__struct_fields__]
    values[-1] = msgspec.json.encode(table.drift).decode()
    connection.execute(
        f"INSERT INTO aggregated_tables ({_TABLE_COLUMNS}) VALUES ({', '.join('?' * len(values))})", values
    )

    connection.execute("DELETE FROM column_specs WHERE data_collection_id = ?", [table.data_collection_id])
    for position, spec in enumerate(column_specs):
        connection.execute(
            "INSERT INTO column_specs VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                table.data_collection_id,
                position,
                spec.name,
                spec.duckdb_type,
                spec.type,
                spec.description,
                msgspec.json.encode(spec.specs).decode(),
            ],
        )


@contextmanager
def _reading(connection: Connection, source: SourceFile, full_sample: bool = False) -> Iterator[tuple[str, list[Any]]]:
    """Yield a FROM expression for `source`; Feather files are read with pyarrow and registered."""
    if source.format != "feather":
        yield read_expression(source, full_sample)
        return

    view = f"feather_{source.file_id}"
    connection.register(view, pyarrow.feather.read_table(source.location))
    try:
        yield f'"{view}"', []
    finally:
        connection.unregister(view)


def _describe_error(source: SourceFile, error: BaseException) -> tuple[str, int | None]:
    if isinstance(error, UnreadableFileError):
        return str(error), error.line
    if isinstance(error, FileNotFoundError):
        return "the file no longer exists", None

    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    match = _LINE_NUMBER.search(str(error))
    line = int(match.group(1)) if match else None
    if source.format in ("csv", "tsv") and "sniffing" in text:
        ragged = find_ragged_line(source)
        if ragged:
            return f"malformed {source.format.upper()}: {ragged[1]}", ragged[0]
    return text, line


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _column_definitions(columns: list[tuple[str, str]]) -> str:
    return ", ".join(f"{_quote(name)} {kind}" for name, kind in columns)


def fingerprint(parts: list[str]) -> str:
    """Return a hex digest identifying a table's inputs."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
