"""Aggregated tables: build one table per data collection and swap it in atomically."""

from __future__ import annotations

import hashlib
import logging
from contextlib import ExitStack
from typing import Any

import duckdb
import msgspec
import pyarrow as pa

from catalog.build import SCRATCH_SUFFIX, BuildRequest, BuildResult, build_table, table_name
from catalog.records import ColumnSpec, DriftNote, TableRecord
from catalog.row_filters import (
    FilterError,
    RowFilter,
    RowsQuery,
    after_clause,
    order_clause,
    quote_name,
    where_clause,
)
from catalog.row_stream import BATCH_ROWS, RowStream
from catalog.schema import AGGREGATED_TABLE_COLUMNS, DATA_SCHEMA
from catalog.store import Connection, Store

logger = logging.getLogger(__name__)


class TableRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, collection_id: str) -> TableRecord | None:
        with self._store.read() as cursor:
            return _table_record(cursor, collection_id)

    def column_specs(self, collection_id: str) -> list[ColumnSpec]:
        with self._store.read() as cursor:
            return _column_specs(cursor, collection_id)

    def snapshot(
        self, collection_id: str, preview_rows: int = 0, filters: list[RowFilter] | None = None
    ) -> TableSnapshot | None:
        """Return the table record, its column specs and its first rows (those that pass `filters`) as of one moment.

        All reads run in one transaction, so a table swapped in meanwhile never mixes the
        counts of one version with the rows of another. A bad filter raises FilterError.
        """
        with self._store.read() as cursor:
            cursor.execute("BEGIN TRANSACTION")
            try:
                record = _table_record(cursor, collection_id)
                if record is None:
                    return None
                columns: list[str] = []
                rows: list[tuple[Any, ...]] = []
                if preview_rows > 0:
                    where, parameters = where_clause(filters or [], _column_types(cursor, collection_id))
                    result = _run(
                        cursor, f"SELECT * FROM {table_name(collection_id)}{where} LIMIT ?", [*parameters, preview_rows]
                    )
                    columns = [description[0] for description in result.description or []]
                    rows = result.fetchall()
                return TableSnapshot(
                    record=record, specs=_column_specs(cursor, collection_id), columns=columns, rows=rows
                )
            finally:
                cursor.execute("ROLLBACK")

    def unique_values(self, collection_id: str, column: str, filters: list[RowFilter], limit: int) -> list[Any] | None:
        """Return at most `limit` distinct values of `column` among the rows that pass `filters`, sorted.

        Return None when the collection has no table; raise FilterError for an unknown column
        or a bad filter. NULL is not a value here.
        """
        with self._store.read() as cursor:
            cursor.execute("BEGIN TRANSACTION")
            try:
                if _table_record(cursor, collection_id) is None:
                    return None
                types = _column_types(cursor, collection_id)
                if column not in types:
                    raise FilterError(f"unknown column {column!r}; the table has {', '.join(sorted(types))}")
                where, parameters = where_clause(filters, types)
                name = quote_name(column)
                condition = f"{where} AND {name} IS NOT NULL" if where else f" WHERE {name} IS NOT NULL"
                result = _run(
                    cursor,
                    f"SELECT DISTINCT {name} FROM {table_name(collection_id)}{condition} ORDER BY 1 LIMIT ?",
                    [*parameters, limit],
                )
                return [row[0] for row in result.fetchall()]
            finally:
                cursor.execute("ROLLBACK")

    def rows(self, collection_id: str, query: RowsQuery) -> RowsPage | None:
        """Return one page of the table's rows, or None when the collection has no table.

        Raise FilterError for an unknown column, a bad filter or a cursor of another sort.
        """
        with self._store.read() as cursor:
            cursor.execute("BEGIN TRANSACTION")
            try:
                if _table_record(cursor, collection_id) is None:
                    return None
                select = _select_rows(cursor, collection_id, query, with_keys=True, limit=query.limit + 1)
                columns = select.columns
                found = _run(cursor, select.sql, select.parameters).fetchall()
                page = found[: query.limit]
                last = page[-1] if page and len(found) > query.limit else None
                return RowsPage(
                    columns=columns,
                    rows=[row[: len(columns)] for row in page],
                    next_after=None if last is None else (tuple(last[len(columns) : -1]), int(last[-1])),
                    total=_count(cursor, collection_id, select) if query.count_total else None,
                )
            finally:
                cursor.execute("ROLLBACK")

    def rows_arrow(self, collection_id: str, query: RowsQuery) -> ArrowPage | None:
        """Return the page of `rows()` as an Arrow table, with the column types of the aggregated table."""
        with self._store.read() as cursor:
            cursor.execute("BEGIN TRANSACTION")
            try:
                if _table_record(cursor, collection_id) is None:
                    return None
                select = _select_rows(cursor, collection_id, query, with_keys=True, limit=query.limit + 1)
                found = _run(cursor, select.sql, select.parameters).to_arrow_table()
                page = found.slice(0, query.limit)
                next_after = None
                if found.num_rows > query.limit:
                    # The sort key values follow the chosen columns, and the row id comes last.
                    last = [column[page.num_rows - 1].as_py() for column in page.columns[len(select.columns) :]]
                    next_after = (tuple(last[:-1]), int(last[-1]))
                return ArrowPage(
                    table=page.select(list(range(len(select.columns)))),
                    next_after=next_after,
                    total=_count(cursor, collection_id, select) if query.count_total else None,
                )
            finally:
                cursor.execute("ROLLBACK")

    def stream_rows(self, collection_id: str, query: RowsQuery, limit: int | None = None) -> RowStream | None:
        """Open a stream of every row that passes the filters of `query`, in its sort order; None when there is no table.

        `query.limit` and `query.after` do not apply; `limit` caps the rows when given. The
        caller must close the stream. Raise FilterError as `rows()` does, before any row is read.
        """
        cleanup = ExitStack()
        try:
            cursor = cleanup.enter_context(self._store.read())
            cursor.execute("BEGIN TRANSACTION")
            if _table_record(cursor, collection_id) is None:
                cleanup.close()
                return None
            select = _select_rows(
                cursor, collection_id, msgspec.structs.replace(query, after=None), with_keys=False, limit=limit
            )
            result = _run(cursor, select.sql, select.parameters)
            try:
                return RowStream(cursor, result.to_arrow_reader(BATCH_ROWS), cleanup)
            except (duckdb.ConversionException, duckdb.InvalidInputException, duckdb.OutOfRangeException) as error:
                raise FilterError(f"a filter value does not fit its column: {str(error).splitlines()[0]}") from None
        except BaseException:
            cleanup.close()
            raise

    def build(self, request: BuildRequest) -> BuildResult:
        """Bring the collection's table up to date with the request's files (see catalog.build)."""
        reader_config = self._store.reader_config
        return self._store.write_steps(lambda connection: build_table(connection, request, reader_config))

    def drop_scratch_tables(self) -> None:
        """Drop half-built tables that a killed process left behind; they are never served."""
        rows = self._store.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND ends_with(table_name, ?)",
            [DATA_SCHEMA, SCRATCH_SUFFIX],
        )
        if not rows:
            return

        def work(connection: Connection) -> None:
            for (name,) in rows:
                connection.execute(f'DROP TABLE IF EXISTS {DATA_SCHEMA}."{name}"')

        self._store.write(work)
        logger.info("dropped %d half-built tables left by an interrupted build", len(rows))

    def drop(self, collection_id: str) -> None:
        """Remove a collection's table, for a collection that has no file left."""

        def work(connection: Connection) -> None:
            connection.execute(f"DROP TABLE IF EXISTS {table_name(collection_id)}")
            connection.execute("DELETE FROM aggregated_tables WHERE data_collection_id = ?", [collection_id])
            connection.execute("DELETE FROM column_specs WHERE data_collection_id = ?", [collection_id])
            connection.execute("DELETE FROM table_files WHERE data_collection_id = ?", [collection_id])

        self._store.write(work)


class RowsPage(msgspec.Struct, kw_only=True, frozen=True):
    columns: list[str]
    rows: list[tuple[Any, ...]]
    # The position after the last row, when more rows follow: its sort key values and row id.
    next_after: tuple[tuple[Any, ...], int] | None
    # The number of rows that pass the filters, when asked for.
    total: int | None


class ArrowPage(msgspec.Struct, kw_only=True, frozen=True):
    # The chosen columns of the page's rows.
    table: pa.Table
    next_after: tuple[tuple[Any, ...], int] | None
    total: int | None


class _SelectRows(msgspec.Struct, kw_only=True, frozen=True):
    sql: str
    parameters: list[Any]
    # The chosen columns, which come first in the result.
    columns: list[str]
    # The WHERE clause of the filters alone, without the cursor, and its parameters.
    filtered: str
    filter_parameters: list[Any]


def _select_rows(
    cursor: Connection, collection_id: str, query: RowsQuery, *, with_keys: bool, limit: int | None
) -> _SelectRows:
    """Build the SELECT of a page or an export: the chosen columns, the filters, the cursor and the sort order.

    With `with_keys`, the sort key values and the row id follow the chosen columns, to build the next cursor.
    """
    types = _column_types(cursor, collection_id)
    columns = list(query.columns) if query.columns else list(types)
    unknown = [column for column in columns if column not in types]
    if unknown:
        raise FilterError(f"columns: unknown column {unknown[0]!r}; the table has {', '.join(types)}")
    filtered, parameters = where_clause(list(query.filters), types)
    order = order_clause(query.sort, types)
    after, after_parameters = after_clause(query, types)
    where = filtered
    if after:
        where = f"{filtered} AND {after}" if filtered else f" WHERE {after}"
    selected = [quote_name(column) for column in columns]
    if with_keys:
        selected += [*(quote_name(column) for column, _ in query.sort), "rowid"]
    sql = f"SELECT {', '.join(selected)} FROM {table_name(collection_id)}{where}{order}"
    all_parameters = [*parameters, *after_parameters]
    if limit is not None:
        sql += " LIMIT ?"
        all_parameters.append(limit)
    return _SelectRows(
        sql=sql, parameters=all_parameters, columns=columns, filtered=filtered, filter_parameters=parameters
    )


def _count(cursor: Connection, collection_id: str, select: _SelectRows) -> int:
    """Return the number of rows that pass the filters of `select`, ignoring its cursor."""
    counted = _run(
        cursor, f"SELECT count(*) FROM {table_name(collection_id)}{select.filtered}", select.filter_parameters
    ).fetchone()
    return int(counted[0]) if counted else 0


class TableSnapshot(msgspec.Struct, kw_only=True, frozen=True):
    record: TableRecord
    specs: list[ColumnSpec]
    # Names and first rows of the table; empty unless preview rows were requested.
    columns: list[str]
    rows: list[tuple[Any, ...]]


def _column_types(cursor: Connection, collection_id: str) -> dict[str, str]:
    """Return {column name: DuckDB type} of the collection's table, from DuckDB's own schema."""
    rows = cursor.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
        "ORDER BY ordinal_position",
        [DATA_SCHEMA, f"dc_{collection_id}"],
    ).fetchall()
    return {str(name): str(kind) for name, kind in rows}


def _run(cursor: Connection, sql: str, parameters: list[Any]) -> duckdb.DuckDBPyConnection:
    """Run a filtered query; a filter value that does not fit its column raises FilterError."""
    try:
        return cursor.execute(sql, parameters)
    except (duckdb.ConversionException, duckdb.InvalidInputException, duckdb.OutOfRangeException) as error:
        raise FilterError(f"a filter value does not fit its column: {str(error).splitlines()[0]}") from None


def _table_record(cursor: Connection, collection_id: str) -> TableRecord | None:
    row = cursor.execute(
        f"SELECT {AGGREGATED_TABLE_COLUMNS} FROM aggregated_tables WHERE data_collection_id = ?", [collection_id]
    ).fetchone()
    if row is None:
        return None
    values = dict(zip(TableRecord.__struct_fields__, row, strict=True))
    values["drift"] = msgspec.json.decode(str(values["drift"] or "[]"), type=list[DriftNote])
    return TableRecord(**values)


def _column_specs(cursor: Connection, collection_id: str) -> list[ColumnSpec]:
    rows = cursor.execute(
        "SELECT name, duckdb_type, type, description, specs FROM column_specs "
        "WHERE data_collection_id = ? ORDER BY position",
        [collection_id],
    ).fetchall()
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


def fingerprint(parts: list[str]) -> str:
    """Return a hex digest identifying a table's inputs."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
