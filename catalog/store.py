"""The one DuckDB connection of the service, with a single writer thread.

Every write runs on the thread named `catalog-writer`, one transaction at a time, so
writes from the API and from ingestion never conflict. Reads use their own cursors and
see only committed data.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import duckdb

from catalog.errors import CatalogError, CatalogLockedError, SchemaVersionError
from catalog.limits import resolve_limits
from catalog.schema import MIGRATIONS, SCHEMA_VERSION, STATEMENTS
from config import CatalogSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")
Connection = duckdb.DuckDBPyConnection


class _MissingModule(importlib.abc.MetaPathFinder):
    """An import finder that fails at once for one module known to be absent."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname == self.name:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def _stop_pandas_probes() -> None:
    """Make `import pandas` fail at once when pandas is not installed.

    DuckDB 1.5.5's Python client tries to import pandas several times in each query with
    parameters. Python does not remember a failed import, so each try searches sys.path
    again: about 0.4 ms a query on the machines we measured, more than a small query takes.
    Code that imports pandas optionally, as pyarrow does, still gets an ImportError.
    """
    if "pandas" in sys.modules or importlib.util.find_spec("pandas") is not None:
        return
    if not any(isinstance(finder, _MissingModule) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MissingModule("pandas"))


_stop_pandas_probes()
# DuckDB 1.5.5 names the process that locks a database file: "... is held in <program> (PID <n>)".
_LOCK_HOLDER = re.compile(r"held in (.+) \(PID (\d+)\)")


class Store:
    """Owns the DuckDB file: opens it, checks its schema version, runs reads and writes."""

    def __init__(self, path: str, settings: CatalogSettings | None = None) -> None:
        self.path = path
        limits = resolve_limits(path, settings or CatalogSettings(path=path))
        # Every table build opens a private reader database with these settings.
        self.reader_config = limits.reader_config()
        folder = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as error:
            raise CatalogError(
                f"cannot create the folder of the catalog {path!r}: {error.strerror}; set catalog.path to a writable folder"
            ) from None
        try:
            # DuckDB creates only the last level of a spill folder, so <temp_directory>/catalog
            # and <temp_directory>/reader need their parent.
            os.makedirs(limits.temp_directory, exist_ok=True)
        except OSError as error:
            raise CatalogError(
                f"cannot create the spill folder {limits.temp_directory!r} of the catalog: {error.strerror}; "
                "set catalog.temp_directory to a writable folder"
            ) from None
        try:
            # No query on the catalog connection reads files, loads extensions or attaches
            # databases, because table builds read files in their own reader database. With
            # external access off, DuckDB rejects such reads whatever the SQL. Spilling to
            # temp_directory and Arrow tables registered from Python still work.
            self._connection = duckdb.connect(
                path,
                config={
                    "autoinstall_known_extensions": False,
                    "enable_external_access": False,
                    **limits.catalog_config(),
                },
            )
        except duckdb.Error as error:
            raise _open_error(path, error) from None
        logger.info(
            "opened catalog %s: DuckDB memory limit %.1f MiB for the catalog and %.1f MiB for reading files, "
            "%d threads each, spill folder %s",
            path,
            limits.memory_bytes / 2**20,
            limits.memory_bytes / 2**20,
            limits.threads,
            limits.temp_directory,
        )
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalog-writer")
        self._write_connection = self._connection.cursor()
        self._closed = False
        self._lock = threading.Lock()
        try:
            self._prepare_schema()
        except BaseException:
            # Release the file lock at once, so another process or a retry can open it.
            self.close()
            raise

    def _prepare_schema(self) -> None:
        # fetchall, not fetchone: an unread result keeps its transaction open, and an open
        # transaction on this connection would make every later CHECKPOINT fail.
        tables = self._connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'catalog_meta'"
        ).fetchall()
        if tables and tables[0][0]:
            rows = self._connection.execute("SELECT value FROM catalog_meta WHERE key = 'schema_version'").fetchall()
            found = rows[0][0] if rows else "missing"
            if found.isdigit() and int(found) in MIGRATIONS:
                self._migrate(int(found))
                return
            if found != str(SCHEMA_VERSION):
                raise SchemaVersionError(self.path, found, SCHEMA_VERSION)
            return

        def create(connection: Connection) -> None:
            for statement in STATEMENTS:
                connection.execute(statement)
            connection.execute("INSERT INTO catalog_meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])

        self.write(create)
        logger.info("created catalog %s with schema version %d", self.path, SCHEMA_VERSION)

    def _migrate(self, version: int) -> None:
        """Bring a catalog of an older schema version up to the current one, one step a transaction."""
        while version < SCHEMA_VERSION:
            statements = MIGRATIONS[version]

            def step(
                connection: Connection, statements: tuple[str, ...] = statements, target: int = version + 1
            ) -> None:
                for statement in statements:
                    connection.execute(statement)
                connection.execute("UPDATE catalog_meta SET value = ? WHERE key = 'schema_version'", [str(target)])

            self.write(step)
            version += 1
            logger.info("migrated catalog %s to schema version %d", self.path, version)

    def write(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one transaction on the writer thread and return its result."""
        if self._closed:
            raise CatalogError("the catalog is closed")
        return self._writer.submit(self._run_transaction, work).result()

    def _run_transaction(self, work: Callable[[Connection], T]) -> T:
        connection = self._write_connection
        connection.execute("BEGIN TRANSACTION")
        try:
            result = work(connection)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return result

    def write_steps(self, work: Callable[[Connection], T]) -> T:
        """Run `work` on the writer thread without an enclosing transaction.

        Long jobs such as building a table use this and open their own short transactions,
        so a failure part-way leaves only scratch tables behind, never a half-swapped one.
        """
        if self._closed:
            raise CatalogError("the catalog is closed")
        return self._writer.submit(work, self._write_connection).result()

    def checkpoint(self) -> None:
        """Write the WAL into the database file, so it does not grow until the next restart.

        DuckDB checkpoints by itself only when no other transaction is open at a commit,
        which a busy API rarely allows. A failed checkpoint is logged and retried next time.
        """
        try:
            self.write_steps(lambda connection: connection.execute("CHECKPOINT"))
        except duckdb.Error as error:
            logger.warning("checkpoint of catalog %s failed: %s", self.path, str(error).splitlines()[0])

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Yield a cursor that reads the last committed state, and close it afterwards."""
        if self._closed:
            raise CatalogError("the catalog is closed")
        cursor = self._connection.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    def query(self, sql: str, parameters: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one read query and return all rows."""
        with self.read() as cursor:
            return cursor.execute(sql, parameters or []).fetchall()

    def query_one(self, sql: str, parameters: list[Any] | None = None) -> tuple[Any, ...] | None:
        """Run one read query and return the first row, or None."""
        with self.read() as cursor:
            return cursor.execute(sql, parameters or []).fetchone()

    def close(self) -> None:
        """Finish pending writes, then close the database file."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._writer.shutdown(wait=True)
        self._write_connection.close()
        self._connection.close()
        logger.info("closed catalog %s", self.path)


def _open_error(path: str, error: duckdb.Error) -> CatalogError:
    """Return why the catalog cannot be opened, with the PID of the process that locks the file."""
    holder = lock_holder(error)
    if holder is not None:
        program, pid = holder
        return CatalogLockedError(
            f"cannot open the catalog {path!r}: it is in use by PID {pid} ({program}). If a depictiod service is "
            "running on it, stop it first or send the request to its API",
            pid,
        )
    return CatalogError(
        f"cannot open the catalog {path!r}: {str(error).splitlines()[0]}. If a depictiod service is "
        "running on it, stop it first or send the request to its API"
    )


def lock_holder(error: duckdb.Error) -> tuple[str, int] | None:
    """Return (program, PID) of the process named by DuckDB's error when another one locks the file, else None."""
    found = _LOCK_HOLDER.search(str(error))
    if found is None:
        return None
    return found.group(1), int(found.group(2))
