"""Run a client's SQL query over the tables it may read, read-only, with a time limit.

catalog.sql_check checks and rewrites the query. This module runs the result on a read
cursor inside a read-only transaction, and interrupts the cursor when the time limit
passes. The result is read either as Python rows or as a pyarrow RecordBatchReader, so
export formats can stream it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import pyarrow

from catalog.sql_check import CatalogTable, CheckedQuery, QuerySources, SqlError, allowed_functions, check_query
from catalog.store import Connection, Store

logger = logging.getLogger(__name__)

# Catalog tables that administrators may query by their bare names, and the columns that
# stay hidden: password hashes, and the token ids (jti) that the service accepts.
CATALOG_TABLES = (
    "projects",
    "workflows",
    "data_collections",
    "runs",
    "files",
    "aggregated_tables",
    "column_specs",
    "table_files",
    "users",
    "tokens",
    "dashboards",
    "scan_reports",
    "project_access",
    "external_tables",
)
HIDDEN_COLUMNS = {"users": frozenset({"password_hash"}), "tokens": frozenset({"jti", "refresh_jti"})}


class SqlTimeoutError(SqlError):
    """Raised when a query runs past its time limit and is interrupted."""


class QueryResult:
    """The open result of a query: its columns, then its rows or a stream of record batches."""

    def __init__(self, cursor: Connection, checked: CheckedQuery) -> None:
        self._cursor = cursor
        self.checked = checked
        description = cursor.description or []
        # (name, DuckDB type) of each column, in order; names may repeat.
        self.columns: list[tuple[str, str]] = [(str(item[0]), str(item[1])) for item in description]

    def fetch_rows(self, count: int) -> list[tuple[Any, ...]]:
        """Return up to `count` rows as Python values."""
        return self._cursor.fetchmany(count)

    def arrow_reader(self, batch_rows: int) -> pyarrow.RecordBatchReader:
        """Return the rows as a stream of Arrow record batches of about `batch_rows` rows."""
        return self._cursor.to_arrow_reader(batch_rows)


class SqlRepository:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._functions: frozenset[str] | None = None

    def catalog_tables(self) -> dict[str, CatalogTable]:
        """Return the catalog tables that administrators may query, each without its hidden columns."""
        rows = self._store.query(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'main' "
            "ORDER BY table_name, ordinal_position"
        )
        columns: dict[str, list[str]] = {}
        for table, column in rows:
            if table in CATALOG_TABLES and column not in HIDDEN_COLUMNS.get(table, frozenset()):
                columns.setdefault(table, []).append(column)
        return {name: CatalogTable(name=name, columns=tuple(names)) for name, names in columns.items()}

    @contextmanager
    def open(self, text: str, sources: QuerySources, max_rows: int, timeout_seconds: float) -> Iterator[QueryResult]:
        """Check and run one query; yield its result while the time limit runs.

        Raise SqlError for a query that is rejected or fails in DuckDB, and SqlTimeoutError
        when it runs past `timeout_seconds`, also while its rows are read. The query never
        returns more than `max_rows` + 1 rows, so a caller can tell that more were cut.
        """
        with self._store.read() as cursor:
            cursor.execute("BEGIN TRANSACTION READ ONLY")
            try:
                if self._functions is None:
                    self._functions = allowed_functions(cursor)
                checked = check_query(cursor, text, sources, self._functions, max_rows + 1)
                with _time_limit(cursor, timeout_seconds):
                    try:
                        cursor.execute(checked.sql)
                        yield QueryResult(cursor, checked)
                    except duckdb.InterruptException:
                        raise SqlTimeoutError(
                            f"the query timed out after {timeout_seconds:g} seconds (sql.timeout_seconds); "
                            "filter or aggregate more, or ask the administrator for a longer limit"
                        ) from None
                    except (duckdb.InternalException, duckdb.FatalException):
                        raise
                    except duckdb.Error as error:
                        raise SqlError(f"the query failed: {str(error).splitlines()[0]}") from None
            finally:
                cursor.execute("ROLLBACK")


@contextmanager
def _time_limit(cursor: Connection, seconds: float) -> Iterator[None]:
    """Interrupt whatever `cursor` runs once `seconds` have passed, until the block ends."""
    lock = threading.Lock()
    running = True

    def interrupt() -> None:
        with lock:
            if running:
                cursor.interrupt()

    timer = threading.Timer(seconds, interrupt)
    timer.name = "sql-time-limit"
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            running = False
        timer.cancel()
