"""The one DuckDB connection of the service, with a single writer thread.

Every write runs on the thread named `catalog-writer`, one transaction at a time, so
writes from the API and from ingestion never conflict. Reads use their own cursors and
see only committed data.

When the file system rejects a write (a full disk, a read-only file system), writes raise
CatalogUnwritableError until a background attempt succeeds, and reads go on. See
catalog.write_faults for what DuckDB does in each case.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import duckdb

from catalog.errors import CatalogError, CatalogLockedError, CatalogUnwritableError, SchemaVersionError
from catalog.lake import StalePlanError, claim_table_writes, is_conflict, lake_cursor, maintain, open_lake
from catalog.limits import resolve_limits
from catalog.schema import MIGRATIONS, SCHEMA_VERSION, STATEMENTS
from catalog.write_faults import classify_write_error, is_invalidated, is_read_only_file_system
from catalog.write_state import WriteListener, WriteState
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
# Seconds that reopening the file waits for open reads to end before it closes their cursors.
REOPEN_READER_WAIT_SECONDS = 10.0
# Attempts after a DuckLake commit conflict, and the bounds of the wait before each one
# (doubling from the first, with jitter so that two writers do not retry in step).
CONFLICT_RETRIES = 8
CONFLICT_FIRST_WAIT_SECONDS = 0.05
CONFLICT_MAX_WAIT_SECONDS = 2.0
# Seconds between two maintenance runs of a DuckLake catalog (see `checkpoint`).
MAINTENANCE_SECONDS = 600.0
# The catalog_meta row that each attempt to write again replaces.
_WRITE_CHECK_KEY = "write_checked_at"


class Store:
    """Owns the DuckDB file: opens it, checks its schema version, runs reads and writes."""

    def __init__(self, path: str, settings: CatalogSettings | None = None) -> None:
        self.path = path
        self.settings = settings or CatalogSettings(path=path)
        # True when the catalog is a DuckLake catalog that other processes may write too.
        self.lake = self.settings.backend == "ducklake"
        # False until the schema is current, so that its creation and migration do not claim
        # the row of table_writes before that table exists.
        self._schema_ready = False
        self._last_maintenance = time.monotonic()
        limits = resolve_limits(path, self.settings)
        self._limits = limits
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
        # No query on the catalog connection reads files, loads extensions or attaches
        # databases, because table builds read files in their own reader database. With
        # external access off, DuckDB rejects such reads whatever the SQL. Spilling to
        # temp_directory and Arrow tables registered from Python still work.
        self._config = {
            "autoinstall_known_extensions": False,
            "enable_external_access": False,
            **limits.catalog_config(),
        }
        retry_seconds = (settings or CatalogSettings(path=path)).write_retry_seconds
        self._writes = WriteState(path, self._attempt_write, retry_seconds)
        # Reads count themselves here, so that reopening the file can wait for them.
        self._gate = threading.Condition()
        self._readers = 0
        self._reopening = False
        # True while the database is open read-only because the file system rejects writes.
        self.read_only = False
        # True when closing the database to open it again left it closed.
        self._broken = False
        open_failure: CatalogUnwritableError | None = None
        try:
            self._connection = self._connect(read_only=False)
        except duckdb.Error as error:
            open_failure = classify_write_error(error)
            if open_failure is None or not os.path.exists(path):
                raise _open_error(path, error) from None
            # A read-only file system: serve reads, and open it for writing once that works.
            self._connection = self._open_read_only(error)
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
        self._write_connection = self._cursor()
        self._closed = False
        self._lock = threading.Lock()
        if open_failure is not None:
            self._writes.fail(open_failure)
        try:
            self._prepare_schema()
        except BaseException:
            # Release the file lock at once, so another process or a retry can open it.
            self.close()
            raise

    def _connect(self, read_only: bool) -> Connection:
        if self.lake:
            return open_lake(self.settings, self._limits.catalog_config())
        return duckdb.connect(self.path, read_only=read_only, config=self._config)

    def _cursor(self) -> Connection:
        return lake_cursor(self._connection) if self.lake else self._connection.cursor()

    def _open_read_only(self, cause: duckdb.Error) -> Connection:
        try:
            connection = self._connect(read_only=True)
        except duckdb.Error:
            raise _open_error(self.path, cause) from None
        self.read_only = True
        return connection

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
                self._schema_ready = True
                return
            if found != str(SCHEMA_VERSION):
                raise SchemaVersionError(self.path, found, SCHEMA_VERSION)
            self._schema_ready = True
            return

        def create(connection: Connection) -> None:
            for statement in STATEMENTS:
                connection.execute(statement)
            # Processes that create a new DuckLake catalog at once run this again after a conflict.
            connection.execute(
                "INSERT INTO catalog_meta SELECT 'schema_version', ? "
                "WHERE NOT EXISTS (SELECT 1 FROM catalog_meta WHERE key = 'schema_version')",
                [str(SCHEMA_VERSION)],
            )

        self.write(create)
        self._schema_ready = True
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
        """Run `work` in one transaction on the writer thread and return its result.

        Raise CatalogUnwritableError, without running `work`, while writes fail.
        """
        self._check_writable()
        return self._writer.submit(self._guarded, lambda: self._run_with_retries(work)).result()

    def _run_with_retries(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in a transaction, again as a whole after a DuckLake commit conflict with another writer.

        The loser of a conflict gets an error from COMMIT, and nothing of its transaction is
        applied. Its reads saw the old snapshot, so the whole of `work` runs again.
        """
        return self._retry_conflicts(lambda: self._run_transaction(work))

    def _run_transaction(self, work: Callable[[Connection], T]) -> T:
        connection = self._write_connection
        connection.execute("BEGIN TRANSACTION")
        try:
            if self.lake and self._schema_ready:
                claim_table_writes(connection)
            result = work(connection)
        except BaseException:
            # ROLLBACK fails too on an invalidated database, and the error of `work` is the one to raise.
            with contextlib.suppress(duckdb.Error):
                connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return result

    def write_steps(self, work: Callable[[Connection], T]) -> T:
        """Run `work` on the writer thread without an enclosing transaction.

        Long jobs such as building a table use this and open their own short transactions,
        so a failure part-way leaves only scratch tables behind, never a half-swapped one.
        Raise CatalogUnwritableError, without running `work`, while writes fail.
        """
        self._check_writable()
        return self._writer.submit(self._guarded, lambda: work(self._write_connection)).result()

    def write_steps_retrying(self, work: Callable[[Connection], T]) -> T:
        """Run `work` as `write_steps` does, again as a whole after it lost a DuckLake commit conflict.

        `work` must leave nothing half-applied when one of its transactions fails, as table
        builds and joins do: their last transaction swaps the result in.
        """
        return self._retry_conflicts(lambda: self.write_steps(work))

    def _retry_conflicts(self, run: Callable[[], T]) -> T:
        """Call `run`, and again after each conflict with another writer, up to CONFLICT_RETRIES times."""
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                return run()
            except (duckdb.Error, StalePlanError) as error:
                if not is_conflict(error) or attempt == CONFLICT_RETRIES:
                    raise
                self._wait_after_conflict(attempt)
        raise AssertionError("unreachable")

    def _wait_after_conflict(self, attempt: int) -> None:
        wait = min(CONFLICT_FIRST_WAIT_SECONDS * 2**attempt, CONFLICT_MAX_WAIT_SECONDS) * (0.5 + random.random())
        logger.info(
            "write to catalog %s conflicted with another writer (attempt %d); retrying in %.2f s",
            self.path,
            attempt + 1,
            wait,
        )
        time.sleep(wait)

    def checkpoint(self) -> None:
        """Write the WAL into the database file, so it does not grow until the next restart.

        DuckDB checkpoints by itself only when no other transaction is open at a commit,
        which a busy API rarely allows. A failed checkpoint is logged and retried next time.
        """
        try:
            if self.lake:
                # Maintenance rewrites files and talks to PostgreSQL many times, so it runs at
                # most every MAINTENANCE_SECONDS, not after every scan.
                if time.monotonic() - self._last_maintenance < MAINTENANCE_SECONDS:
                    return
                self._last_maintenance = time.monotonic()
                self.write_steps(maintain)
            else:
                self.write_steps(lambda connection: connection.execute("CHECKPOINT"))
        except CatalogUnwritableError:
            # Logged once when writes started to fail. The attempt that succeeds checkpoints.
            return
        except duckdb.Error as error:
            logger.warning("checkpoint of catalog %s failed: %s", self.path, str(error).splitlines()[0])

    @property
    def write_failure(self) -> CatalogUnwritableError | None:
        """Why writes fail now, or None while they work."""
        return self._writes.failure

    @property
    def write_fault(self) -> CatalogUnwritableError | None:
        """Why writes failed, until the fault is known to be over: `write_failure`, or the fault whose writes are on trial."""
        return self._writes.fault

    @property
    def write_attempts(self) -> int:
        """Attempts to write again since writes started to fail, or the count of the last failure once they work."""
        return self._writes.attempts

    def add_write_listener(self, listener: WriteListener, confirms_recovery: bool = False) -> None:
        """Call `listener` with the reason when writes start to fail, and with None when they work again.

        It runs on the thread that noticed the change, so it must return quickly. A listener
        added while writes fail is called at once. With `confirms_recovery`, None only means
        that writes are accepted on trial: the fault ends when `confirm_writable()` is called
        after real work succeeded, and a write that fails before continues the same fault.
        The background check writes a few bytes, which a nearly full disk can still take.
        """
        self._writes.add_listener(listener, confirms_recovery)

    def confirm_writable(self, on_confirmed: Callable[[], None] | None = None) -> bool:
        """End a fault whose writes are on trial, and return True when one ended (see add_write_listener)."""
        return self._writes.confirm(on_confirmed)

    def remove_write_listener(self, listener: WriteListener) -> None:
        self._writes.remove_listener(listener)

    def _check_writable(self) -> None:
        if self._closed:
            raise CatalogError("the catalog is closed")
        self._writes.check()

    def _guarded(self, run: Callable[[], T]) -> T:
        """Call `run` on the writer thread, and turn a write that the file system rejected into CatalogUnwritableError."""
        try:
            return run()
        except BaseException as error:
            failure = classify_write_error(error)
            if failure is None:
                raise
            self._reopen_after(failure)
            self._writes.fail(failure)
            if failure is error:
                raise
            raise failure from error

    def _attempt_write(self) -> bool:
        """Try one small write and a checkpoint on the writer thread, and return True when both worked."""
        try:
            return self._writer.submit(self._write_and_checkpoint).result()
        except RuntimeError:
            return False  # The writer is shut down: the store is closing, and its retry loop stops.

    def _write_and_checkpoint(self) -> bool:
        try:
            if self.read_only or self._broken:
                self._reopen()
            if self.read_only:
                return False

            def check(connection: Connection) -> None:
                connection.execute("DELETE FROM catalog_meta WHERE key = ?", [_WRITE_CHECK_KEY])
                connection.execute(
                    "INSERT INTO catalog_meta VALUES (?, ?)", [_WRITE_CHECK_KEY, time.strftime("%Y-%m-%dT%H:%M:%S")]
                )

            self._run_transaction(check)
            # The checkpoint needs room for the WAL's pages in the database file, so it shows
            # whether the writes that wait behind this one can go through too.
            if not self.lake:
                self._write_connection.execute("CHECKPOINT")
        except Exception as error:
            failure = classify_write_error(error)
            if failure is None:
                logger.warning("writing to catalog %s failed again: %s", self.path, str(error).splitlines()[0])
                return False
            self._reopen_after(failure)
            self._writes.fail(failure)
            return False
        self._writes.recover()
        return True

    def _reopen_after(self, failure: CatalogUnwritableError) -> None:
        """Open the file again when DuckDB invalidated the database, or when its file system turned read-only.

        Either way reads keep working. A file system that turned read-only must be mounted
        again to be written, so only a connection opened after that can write to it.
        """
        if is_read_only_file_system(failure) and not self.read_only:
            self._reopen_logged()
            return
        self._reopen_if_invalidated()

    def _reopen_if_invalidated(self) -> None:
        try:
            self._write_connection.execute("SELECT 1").fetchall()
            return
        except duckdb.Error as error:
            if not is_invalidated(error):
                return
        self._reopen_logged()

    def _reopen_logged(self) -> None:
        try:
            self._reopen()
        except duckdb.Error as error:
            logger.error(
                "catalog %s cannot be opened again: %s. Reads fail until a later attempt to write opens it",
                self.path,
                str(error).splitlines()[0],
            )

    def _reopen(self) -> None:
        """Close the database and open it again, for writing when the file system allows it, else read-only.

        Runs on the writer thread. Reads wait meanwhile, and reads still open after
        REOPEN_READER_WAIT_SECONDS lose their cursor. Raise duckdb.Error when the file
        cannot be opened at all; the next attempt to write tries again.
        """
        with self._gate:
            self._reopening = True
            deadline = time.monotonic() + REOPEN_READER_WAIT_SECONDS
            while self._readers > 0 and time.monotonic() < deadline:
                self._gate.wait(deadline - time.monotonic())
            self._broken = True
            try:
                with contextlib.suppress(duckdb.Error):
                    self._connection.close()
                try:
                    self._connection = self._connect(read_only=False)
                    self.read_only = False
                except duckdb.Error as error:
                    if classify_write_error(error) is None:
                        raise
                    self._connection = self._connect(read_only=True)
                    self.read_only = True
                self._write_connection = self._cursor()
                self._broken = False
            finally:
                self._reopening = False
                self._gate.notify_all()
        # DEBUG, because each failed attempt to write may reopen the file, and the failure itself is logged once.
        logger.debug("opened catalog %s again, %s", self.path, "read-only" if self.read_only else "for writing")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Yield a cursor that reads the last committed state, and close it afterwards."""
        if self._closed:
            raise CatalogError("the catalog is closed")
        with self._gate:
            while self._reopening:
                self._gate.wait()
            cursor = self._cursor()
            self._readers += 1
        try:
            yield cursor
        except duckdb.Error as error:
            if not is_invalidated(error) or self._closed:
                raise
            # The writer thread opens the file again, so the next read gets a working cursor.
            with contextlib.suppress(RuntimeError):
                self._writer.submit(self._reopen_if_invalidated)
            raise CatalogError(
                f"the catalog {self.path!r} is being opened again after a DuckDB error. Try again in a moment"
            ) from error
        finally:
            cursor.close()
            with self._gate:
                self._readers -= 1
                self._gate.notify_all()

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
        self._writes.stop()
        self._writer.shutdown(wait=True)
        with contextlib.suppress(duckdb.Error):
            self._write_connection.close()
        with contextlib.suppress(duckdb.Error):
            self._connection.close()
        logger.info("closed catalog %s", self.path)


def rollback(connection: Connection) -> None:
    """Roll back the open transaction, if any: a COMMIT that lost a DuckLake conflict has ended it already."""
    with contextlib.suppress(duckdb.TransactionException):
        connection.execute("ROLLBACK")


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
