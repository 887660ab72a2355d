"""A catalog file that cannot be written: writes are rejected, reads go on, and writing resumes by itself.

The faults are real: a file size limit (RLIMIT_FSIZE) makes DuckDB's writes fail with
EFBIG, "File too large", as a full disk fails them with ENOSPC.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from catalog import CatalogUnwritableError
from catalog.store import Connection, Store
from catalog.write_faults import classify_write_error
from config import CatalogSettings
from tests import backends
from tests.faults import file_size_limit
from tests.ingestor.helpers import wait_until

# These tests open, lock, copy or break the DuckDB file itself, which a DuckLake catalog does not have.
pytestmark = pytest.mark.skipif(backends.backend() == "ducklake", reason="tests the DuckDB file backend")

# Seconds allowed for the store's background attempts to notice that writes work again.
RECOVERY_DEADLINE_SECONDS = 20
# The maximum wait between two attempts to write again, so that tests recover quickly.
RETRY_SECONDS = 0.2
EFBIG_SUMMARY = "a file size limit is reached"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    path = str(tmp_path / "catalog.duckdb")
    opened = Store(path, CatalogSettings(path=path, write_retry_seconds=RETRY_SECONDS))
    try:
        yield opened
    finally:
        opened.close()


def _insert(store: Store, key: str) -> None:
    store.write(lambda connection: connection.execute("INSERT INTO catalog_meta VALUES (?, 'value')", [key]))


def _keys(store: Store) -> list[str]:
    rows = store.query("SELECT key FROM catalog_meta WHERE key LIKE 'test-%' ORDER BY key")
    return [str(row[0]) for row in rows]


def _wait_for_recovery(store: Store) -> None:
    wait_until(lambda: store.write_failure is None, RECOVERY_DEADLINE_SECONDS, "writes to work again")


def test_rejected_commit_raises_unwritable(store: Store) -> None:
    with file_size_limit(0), pytest.raises(CatalogUnwritableError) as raised:
        _insert(store, "test-during")

    assert raised.value.summary == EFBIG_SUMMARY
    assert "Could not write file" in raised.value.detail
    assert "File too large" in raised.value.detail


def test_failed_write_sets_write_failure(store: Store) -> None:
    with file_size_limit(0):
        with pytest.raises(CatalogUnwritableError):
            _insert(store, "test-during")
        failure = store.write_failure

    assert failure is not None
    assert failure.summary == EFBIG_SUMMARY


def test_writes_rejected_without_running(store: Store) -> None:
    calls: list[Connection] = []
    with file_size_limit(0):
        with pytest.raises(CatalogUnwritableError):
            _insert(store, "test-during")
        with pytest.raises(CatalogUnwritableError):
            store.write(calls.append)
        with pytest.raises(CatalogUnwritableError):
            store.write_steps(calls.append)

    assert calls == []


def test_reads_work_while_writes_fail(store: Store) -> None:
    _insert(store, "test-before")
    with file_size_limit(0):
        with pytest.raises(CatalogUnwritableError):
            _insert(store, "test-during")
        keys = _keys(store)

    assert keys == ["test-before"]


def test_writes_resume_after_fault_lifted(store: Store) -> None:
    _insert(store, "test-before")
    with file_size_limit(0), pytest.raises(CatalogUnwritableError):
        _insert(store, "test-during")

    _wait_for_recovery(store)
    _insert(store, "test-after")

    assert _keys(store) == ["test-after", "test-before"]


def test_failed_checkpoint_reopens_database(store: Store, tmp_path: Path) -> None:
    _insert(store, "test-in-wal")
    database_size = os.path.getsize(tmp_path / "catalog.duckdb")
    # The WAL can still grow, but the checkpoint must grow the database file, and fails.
    with file_size_limit(database_size):
        store.checkpoint()
        failure = store.write_failure
        keys = _keys(store)
        read_only = store.read_only

    assert failure is not None
    assert "Failed to create checkpoint" in failure.detail
    # DuckDB invalidated the database: these reads work only because the store opened the
    # file again, and the row committed to the WAL before the checkpoint is still there.
    assert keys == ["test-in-wal"]
    assert read_only is False


def test_wal_rows_survive_failed_checkpoint(tmp_path: Path) -> None:
    path = str(tmp_path / "catalog.duckdb")
    settings = CatalogSettings(path=path, write_retry_seconds=RETRY_SECONDS)
    store = Store(path, settings)
    try:
        _insert(store, "test-in-wal")
        with file_size_limit(os.path.getsize(path)):
            store.checkpoint()
        _wait_for_recovery(store)
        _insert(store, "test-after")
    finally:
        store.close()

    reopened = Store(path, settings)
    try:
        assert _keys(reopened) == ["test-after", "test-in-wal"]
    finally:
        reopened.close()


def test_listeners_notified_once_per_failure(store: Store) -> None:
    changes: list[str | None] = []
    store.add_write_listener(lambda failure: changes.append(None if failure is None else failure.summary))
    with file_size_limit(0):
        for key in ("test-one", "test-two", "test-three"):
            with pytest.raises(CatalogUnwritableError):
                _insert(store, key)
        wait_until(lambda: store.write_attempts >= 2, RECOVERY_DEADLINE_SECONDS, "two attempts to write again")

    _wait_for_recovery(store)

    assert changes == [EFBIG_SUMMARY, None]


def test_failure_logged_once(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="catalog")
    with file_size_limit(0):
        for key in ("test-one", "test-two"):
            with pytest.raises(CatalogUnwritableError):
                _insert(store, key)
        wait_until(lambda: store.write_attempts >= 2, RECOVERY_DEADLINE_SECONDS, "two attempts to write again")
    _wait_for_recovery(store)

    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    recoveries = [record.getMessage() for record in caplog.records if "can be written again" in record.getMessage()]
    assert len(errors) == 1
    assert "cannot be written: a file size limit is reached" in errors[0]
    assert len(recoveries) == 1


def test_late_listener_notified_at_once(store: Store) -> None:
    changes: list[CatalogUnwritableError | None] = []
    with file_size_limit(0):
        with pytest.raises(CatalogUnwritableError):
            _insert(store, "test-during")
        store.add_write_listener(changes.append)

    assert len(changes) == 1
    assert changes[0] is not None


def test_closing_stops_the_retries(tmp_path: Path) -> None:
    path = str(tmp_path / "catalog.duckdb")
    store = Store(path, CatalogSettings(path=path, write_retry_seconds=RETRY_SECONDS))
    with file_size_limit(0):
        with pytest.raises(CatalogUnwritableError):
            _insert(store, "test-during")
        store.close()

    names = [thread.name for thread in threading.enumerate()]
    assert "catalog-write-retry" not in names


# DuckDB 1.5.5's messages for each cause, as seen on tmpfs (ENOSPC), under RLIMIT_FSIZE (EFBIG)
# and on an ext4 file system that went read-only (EROFS). The disk quota and I/O error texts
# are the strerror() of EDQUOT and EIO in the same message.
WRITE_ERRORS = [
    (
        duckdb.TransactionException(
            'TransactionContext Error: Failed to commit: Could not write file "/c.duckdb.wal": No space left on device'
        ),
        "the disk is full",
        'TransactionContext Error: Failed to commit: Could not write file "/c.duckdb.wal": No space left on device',
    ),
    (
        duckdb.TransactionException(
            'TransactionContext Error: Failed to commit: Could not write file "/c.duckdb": Read-only file system'
        ),
        "the file system is read-only",
        'TransactionContext Error: Failed to commit: Could not write file "/c.duckdb": Read-only file system',
    ),
    (
        duckdb.IOException('IO Error: Could not write file "/c.duckdb.wal": Disk quota exceeded'),
        "the disk quota is used up",
        'IO Error: Could not write file "/c.duckdb.wal": Disk quota exceeded',
    ),
    (
        duckdb.IOException('IO Error: Could not write file "/c.duckdb": Input/output error'),
        "the disk reported an I/O error",
        'IO Error: Could not write file "/c.duckdb": Input/output error',
    ),
    (
        duckdb.FatalException(
            "FATAL Error: Failed: database has been invalidated because of a previous fatal error. The database "
            "must be restarted prior to being used again.\n"
            'Original error: "Failed to create checkpoint because of error: Could not write file "/c.duckdb": '
            'No space left on device"'
        ),
        "the disk is full",
        'Failed to create checkpoint because of error: Could not write file "/c.duckdb": No space left on device',
    ),
    (
        duckdb.FatalException("FATAL Error: an internal assertion failed"),
        "DuckDB closed the database after a fatal error",
        "FATAL Error: an internal assertion failed",
    ),
]


@pytest.mark.parametrize(("error", "summary", "detail"), WRITE_ERRORS)
def test_write_error_classified(error: duckdb.Error, summary: str, detail: str) -> None:
    failure = classify_write_error(error)

    assert failure is not None
    assert failure.summary == summary
    assert failure.detail == detail


@pytest.mark.parametrize(
    "error",
    [
        duckdb.ConstraintException("Constraint Error: duplicate key"),
        duckdb.CatalogException("Catalog Error: Table with name nowhere does not exist!"),
        OSError(28, "No space left on device"),
    ],
)
def test_other_errors_not_classified(error: BaseException) -> None:
    assert classify_write_error(error) is None
