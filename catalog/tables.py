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
from catalog.errors import CatalogUnwritableError
from catalog.events import EventLog
from catalog.records import ColumnSpec, DriftNote, FileRecord, TableRecord
from catalog.row_filters import (
    FilterError,
    RowFilter,
    RowPosition,
    RowsQuery,
    StaleCursorError,
    after_clause,
    order_clause,
    quote_name,
    where_clause,
)
from catalog.row_stream import BATCH_ROWS, RowStream
from catalog.runs_files import _FILE_COLUMNS, _file_record
from catalog.schema import AGGREGATED_TABLE_COLUMNS, DATA_SCHEMA
from catalog.store import Connection, Store

logger = logging.getLogger(__name__)


class TableRepository:
    def __init__(self, store: Store, events: EventLog) -> None:
        self._store = store
        self._events = events

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

        Raise FilterError for an unknown column, a bad filter or a cursor of another query,
        and StaleCursorError when the row that the cursor names is gone.
        """
        with self._store.read() as cursor:
            cursor.execute("BEGIN TRANSACTION")
            try:
                record = _table_record(cursor, collection_id)
                if record is None:
                    return None
                select = _select_rows(cursor, record, query, with_row_id=True, limit=query.limit + 1)
                columns = select.columns
                found = _run(cursor, select.sql, select.parameters).fetchall()
                page = found[: query.limit]
                position = None
                if page and len(found) > query.limit:
                    position = _position(cursor, record, select, int(page[-1][-1]))
                return RowsPage(
                    columns=columns,
                    rows=[row[: len(columns)] for row in page],
                    next_after=position,
                    total=_count(cursor, collection_id, select) if query.count_total else None,
                )
            finally:
                cursor.execute("ROLLBACK")

    def rows_arrow(self, collection_id: str, query: RowsQuery) -> ArrowPage | None:
        """Return the page of `rows()` as an Arrow table, with the column types of the aggregated table."""
        with self._store.read() as cursor:
            cursor.execute("BEGIN TRANSACTION")
            try:
                record = _table_record(cursor, collection_id)
                if record is None:
                    return None
                select = _select_rows(cursor, record, query, with_row_id=True, limit=query.limit + 1)
                found = _run(cursor, select.sql, select.parameters).to_arrow_table()
                page = found.slice(0, query.limit)
                position = None
                if found.num_rows > query.limit:
                    # The row id follows the chosen columns.
                    position = _position(cursor, record, select, int(page.columns[-1][page.num_rows - 1].as_py()))
                return ArrowPage(
                    table=page.select(list(range(len(select.columns)))),
                    next_after=position,
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
            record = _table_record(cursor, collection_id)
            if record is None:
                cleanup.close()
                return None
            select = _select_rows(
                cursor, record, msgspec.structs.replace(query, after=None), with_row_id=False, limit=limit
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
        """Bring the collection's table up to date with the request's files (see catalog.build).

        Once the change is committed, publish `table.updated`, `schema.changed` when the
        columns changed, and `file.failed` for each file that failed anew or for another reason.
        """
        collection_id = request.collection_id
        file_ids = [source.file_id for source in request.files]
        before = self._state(collection_id)
        outcomes_before = self._file_outcomes(file_ids)
        reader_config = self._store.reader_config
        result = self._store.write_steps_retrying(lambda connection: build_table(connection, request, reader_config))

        failed = {item.file_id: item for item in result.files if item.status == "failed"}
        newly_failed = [
            file_id for file_id, item in failed.items() if outcomes_before.get(file_id) != ("failed", item.error)
        ]
        for record in self._file_records(newly_failed):
            self._events.file_failed(record, failed[record.id].error, failed[record.id].error_line)
        if result.table is not None:
            self._events.table_updated(
                collection_id,
                outcome="updated" if result.updated_in_place else "built",
                rows=result.table.row_count,
                rows_before=before[0] if before else None,
                aggregation_version=result.table.aggregation_version,
            )
            after = self._state(collection_id)
            self._events.schema_changed(collection_id, before[1] if before else {}, after[1] if after else {})
        return result

    def _state(self, collection_id: str) -> tuple[int, dict[str, str]] | None:
        return table_state(self._store, collection_id)

    def _file_outcomes(self, file_ids: list[str]) -> dict[str, tuple[str, str | None]]:
        """Return {file id: (status, error)} of the files among `file_ids`."""
        rows = self._store.query(
            "SELECT id, status, error FROM files WHERE id IN (SELECT unnest(?::VARCHAR[]))", [file_ids]
        )
        return {str(file_id): (str(status), error) for file_id, status, error in rows}

    def _file_records(self, file_ids: list[str]) -> list[FileRecord]:
        if not file_ids:
            return []
        rows = self._store.query(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE id IN (SELECT unnest(?::VARCHAR[]))", [file_ids]
        )
        return [_file_record(row) for row in rows]

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

        try:
            self._store.write(work)
        except CatalogUnwritableError:
            # They are never served, and the next build of each collection replaces its own.
            logger.warning("%d half-built tables left by an interrupted build stay until the next start", len(rows))
            return
        logger.info("dropped %d half-built tables left by an interrupted build", len(rows))

    def drop(self, collection_id: str) -> None:
        """Remove a collection's table, for a collection that has no file left.

        When a table was there, publish `table.updated` (outcome `dropped`) and
        `schema.changed` once the change is committed.
        """
        before = self._state(collection_id)

        def work(connection: Connection) -> None:
            connection.execute(f"DROP TABLE IF EXISTS {table_name(collection_id)}")
            connection.execute("DELETE FROM aggregated_tables WHERE data_collection_id = ?", [collection_id])
            connection.execute("DELETE FROM column_specs WHERE data_collection_id = ?", [collection_id])
            connection.execute("DELETE FROM table_files WHERE data_collection_id = ?", [collection_id])

        self._store.write(work)
        if before is None:
            return
        self._events.table_updated(
            collection_id, outcome="dropped", rows=0, rows_before=before[0], aggregation_version=None
        )
        self._events.schema_changed(collection_id, before[1], {})


class RowsPage(msgspec.Struct, kw_only=True, frozen=True):
    columns: list[str]
    rows: list[tuple[Any, ...]]
    # The last row of the page, when more rows follow.
    next_after: RowPosition | None
    # The number of rows that pass the filters, when asked for.
    total: int | None


class ArrowPage(msgspec.Struct, kw_only=True, frozen=True):
    # The chosen columns of the page's rows.
    table: pa.Table
    # The last row of the page, when more rows follow.
    next_after: RowPosition | None
    total: int | None


class _SelectRows(msgspec.Struct, kw_only=True, frozen=True):
    sql: str
    parameters: list[Any]
    # The chosen columns, which come first in the result.
    columns: list[str]
    # The WHERE clause of the filters alone, without the cursor, and its parameters.
    filtered: str
    filter_parameters: list[Any]
    # The digest that a cursor records of the query, and whether rows are named by file (see RowPosition).
    digest: str
    by_file: bool


def _select_rows(
    cursor: Connection, record: TableRecord, query: RowsQuery, *, with_row_id: bool, limit: int | None
) -> _SelectRows:
    """Build the SELECT of a page or an export: the chosen columns, the filters, the cursor and the sort order.

    With `with_row_id`, the row id follows the chosen columns, to name the page's last row.
    Raise FilterError for a cursor of another query, StaleCursorError when its row is gone.
    """
    collection_id = record.data_collection_id
    table = table_name(collection_id)
    types = _column_types(cursor, collection_id)
    columns = list(query.columns) if query.columns else list(types)
    unknown = [column for column in columns if column not in types]
    if unknown:
        raise FilterError(f"columns: unknown column {unknown[0]!r}; the table has {', '.join(types)}")
    filtered, parameters = where_clause(list(query.filters), types)
    order = order_clause(query.sort, types)
    digest = query.digest(collection_id)
    by_file = set(types) >= _ROW_GROUP_COLUMNS
    where, all_parameters = filtered, list(parameters)
    if query.after is not None:
        if query.after.query != digest:
            raise FilterError(
                "next: the cursor belongs to another collection, filter or sort order; start again without it"
            )
        anchor = _locate(cursor, table, query.after, by_file, record.aggregation_version)
        after, after_parameters = after_clause(query.sort, table, anchor)
        where = f"{filtered} AND {after}" if filtered else f" WHERE {after}"
        all_parameters += after_parameters
    selected = [quote_name(column) for column in columns]
    if with_row_id:
        selected.append("rowid")
    sql = f"SELECT {', '.join(selected)} FROM {table}{where}{order}"
    if limit is not None:
        sql += " LIMIT ?"
        all_parameters.append(limit)
    return _SelectRows(
        sql=sql,
        parameters=all_parameters,
        columns=columns,
        filtered=filtered,
        filter_parameters=parameters,
        digest=digest,
        by_file=by_file,
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


# Columns that every aggregated table has, which name the file and build of each row.
_ROW_GROUP_COLUMNS = {"depictio_file_id", "aggregation_time"}


def table_state(store: Store, collection_id: str) -> tuple[int, dict[str, str]] | None:
    """Return the row count and the {column: type} of a collection's table, or None without a table."""
    with store.read() as cursor:
        record = _table_record(cursor, collection_id)
        if record is None:
            return None
        return record.row_count, _column_types(cursor, collection_id)


def _position(cursor: Connection, record: TableRecord, select: _SelectRows, row_id: int) -> RowPosition:
    """Name the row `row_id` of the table in a way that survives DuckDB's renumbering (see RowPosition)."""
    if not select.by_file:
        return RowPosition(query=select.digest, file_id=None, added=str(record.aggregation_version), ordinal=row_id)
    table = table_name(record.data_collection_id)
    row = cursor.execute(
        f"SELECT depictio_file_id, CAST(aggregation_time AS VARCHAR), "
        f"(SELECT count(*) FROM {table} AS earlier WHERE earlier.depictio_file_id IS NOT DISTINCT FROM "
        f"anchor.depictio_file_id AND earlier.aggregation_time IS NOT DISTINCT FROM anchor.aggregation_time "
        f"AND earlier.rowid < anchor.rowid) FROM {table} AS anchor WHERE anchor.rowid = ?",
        [row_id],
    ).fetchone()
    assert row is not None, "the row was read in this transaction"
    return RowPosition(query=select.digest, file_id=row[0], added=str(row[1]), ordinal=int(row[2]))


def _locate(cursor: Connection, table: str, position: RowPosition, by_file: bool, version: int) -> int:
    """Return the row id of the row that `position` names now; raise StaleCursorError when it is gone."""
    row: tuple[Any, ...] | None = None
    if by_file and position.file_id is not None:
        row = cursor.execute(
            f"SELECT rowid FROM {table} WHERE depictio_file_id = ? AND CAST(aggregation_time AS VARCHAR) = ? "
            "ORDER BY rowid LIMIT 1 OFFSET ?",
            [position.file_id, position.added, position.ordinal],
        ).fetchone()
    elif not by_file and position.file_id is None and position.added == str(version):
        row = cursor.execute(f"SELECT rowid FROM {table} WHERE rowid = ?", [position.ordinal]).fetchone()
    if row is None:
        raise StaleCursorError(
            "next: the row where the previous page ended is gone (its file was changed or removed, or the table "
            "was rebuilt); start again without a cursor"
        )
    return int(row[0])


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
