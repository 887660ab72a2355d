"""Ingestion while the catalog cannot be written: it pauses, keeps every file, and catches up by itself.

The faults are real: a file size limit (RLIMIT_FSIZE) makes DuckDB's writes fail with
EFBIG, "File too large", as a full disk fails them with ENOSPC.
"""

from __future__ import annotations

import logging
import re
import threading
from contextlib import ExitStack
from pathlib import Path

import pytest

import config
from ingestor.progress import ScanProgress
from tests import backends
from tests.faults import file_size_limit
from tests.ingestor.conftest import StartHarness
from tests.ingestor.helpers import Harness, table_collection, wait_until, write_file

# These tests break writes to the DuckDB catalog file; a DuckLake catalog writes elsewhere.
pytestmark = pytest.mark.skipif(backends.backend() == "ducklake", reason="tests the DuckDB file backend")

RECOVERY_DEADLINE_SECONDS = 30
RETRY_SECONDS = 0.2
ROWS_PER_RUN = 2000
# Bytes the WAL may still grow once the fault starts: enough for the small commits of a
# build (creating its scratch table, recording outcomes), too little for a run's rows.
WAL_ALLOWANCE = 8192
# The maximum wait between attempts in the test of a false recovery: long enough that the
# doubling shows (0.5 s, 1 s, 2 s), short enough that the test ends soon after the fault.
FALSE_RECOVERY_MAX_WAIT = 2.0


def _write_run(data_dir: Path, run: str) -> None:
    rows = "".join(f"{run}-g{index},{index},{index * 0.5}\n" for index in range(ROWS_PER_RUN))
    write_file(data_dir / run / "counts.csv", "gene,count,score\n" + rows)


def _retrying_settings(harness: Harness) -> None:
    """Open the harness's catalog again with quick retries of failed writes."""
    harness.catalog_settings = config.CatalogSettings(path=str(harness.catalog_path), write_retry_seconds=RETRY_SECONDS)
    harness.reopen()


def _wal_size(harness: Harness) -> int:
    wal = Path(f"{harness.catalog_path}.wal")
    return wal.stat().st_size if wal.exists() else 0


def _failed_files(harness: Harness) -> list[str]:
    return [record.filename for record in harness.files("counts") if record.status == "failed"]


def test_build_fault_keeps_files_unfailed(start: StartHarness, data_dir: Path) -> None:
    harness = start([table_collection("counts", r"counts\.csv$")])
    _retrying_settings(harness)
    _write_run(data_dir, "run_1")
    harness.scan()
    _write_run(data_dir, "run_2")
    _write_run(data_dir, "run_3")

    # The fault starts once the scan has registered the new files, before their rows are written.
    with ExitStack() as fault:

        def start_fault(event: ScanProgress) -> None:
            if event.step == "workflow":
                fault.enter_context(file_size_limit(_wal_size(harness) + WAL_ALLOWANCE))

        harness.ingestor.progress = start_fault
        results = harness.ingestor.scan_all()
        harness.ingestor.progress = None

    assert results == []
    assert harness.ingestor.status.state == "paused"
    assert len(harness.files("counts")) == 3
    assert _failed_files(harness) == []
    assert harness.row_count_by_run("counts") == {"run_1": ROWS_PER_RUN}


def test_files_read_after_build_fault(start: StartHarness, data_dir: Path) -> None:
    harness = start([table_collection("counts", r"counts\.csv$")])
    _retrying_settings(harness)
    _write_run(data_dir, "run_1")
    harness.scan()
    _write_run(data_dir, "run_2")
    with ExitStack() as fault:

        def start_fault(event: ScanProgress) -> None:
            if event.step == "workflow":
                fault.enter_context(file_size_limit(_wal_size(harness) + WAL_ALLOWANCE))

        harness.ingestor.progress = start_fault
        harness.ingestor.scan_all()
        harness.ingestor.progress = None
    wait_until(lambda: harness.catalog.store.write_failure is None, RECOVERY_DEADLINE_SECONDS, "writes to work")

    harness.scan()

    assert harness.row_count_by_run("counts") == {"run_1": ROWS_PER_RUN, "run_2": ROWS_PER_RUN}
    assert _failed_files(harness) == []


def test_rescan_pauses_while_unwritable(start: StartHarness, data_dir: Path) -> None:
    _write_run(data_dir, "run_1")
    harness = start([table_collection("counts", r"counts\.csv$")], ingest={"watch_mode": "off"})
    _retrying_settings(harness)
    harness.ingestor.start()
    _write_run(data_dir, "run_2")

    with file_size_limit(0):
        harness.ingestor.rescan_workflow(harness.workflow_id)
        status = harness.ingestor.status
        state, write_error = status.state, status.write_error

    assert state == "paused"
    assert write_error is not None
    assert write_error.startswith("a file size limit is reached (")
    assert "File too large" in write_error


def test_ingestion_resumes_after_fault(start: StartHarness, data_dir: Path) -> None:
    _write_run(data_dir, "run_1")
    harness = start([table_collection("counts", r"counts\.csv$")], ingest={"watch_mode": "off"})
    _retrying_settings(harness)
    harness.ingestor.start()
    _write_run(data_dir, "run_2")
    with file_size_limit(0):
        harness.ingestor.rescan_workflow(harness.workflow_id)
    _write_run(data_dir, "run_3")

    wait_until(
        lambda: harness.ingestor.status.state == "idle" and len(harness.row_count_by_run("counts")) == 3,
        RECOVERY_DEADLINE_SECONDS,
        "the three runs in the table",
    )

    assert harness.ingestor.status.write_error is None
    assert harness.row_count_by_run("counts") == {run: ROWS_PER_RUN for run in ("run_1", "run_2", "run_3")}
    assert _failed_files(harness) == []


def test_resume_scan_reported(start: StartHarness, data_dir: Path) -> None:
    _write_run(data_dir, "run_1")
    harness = start([table_collection("counts", r"counts\.csv$")], ingest={"watch_mode": "off"})
    _retrying_settings(harness)
    harness.ingestor.start()
    _write_run(data_dir, "run_2")
    with file_size_limit(0):
        harness.ingestor.rescan_workflow(harness.workflow_id)

    wait_until(lambda: "run_2" in harness.row_count_by_run("counts"), RECOVERY_DEADLINE_SECONDS, "run_2 in the table")

    assert harness.project.id is not None
    reports, _ = harness.catalog.scans.list([harness.project.id], 100, 0)
    assert "resume" in {report.details["trigger"] for report in reports}


def test_false_recovery_keeps_fault(start: StartHarness, data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    # As on a nearly full disk, the background check gets through but the resume scan's
    # rows do not. Each scan that starts while `fault_on` is set imposes a file size limit
    # once it has registered its files, and the first rejected write lifts it again.
    caplog.set_level(logging.INFO)
    _write_run(data_dir, "run_1")
    harness = start([table_collection("counts", r"counts\.csv$")], ingest={"watch_mode": "off"})
    harness.catalog_settings = config.CatalogSettings(
        path=str(harness.catalog_path), write_retry_seconds=FALSE_RECOVERY_MAX_WAIT
    )
    harness.reopen()
    harness.ingestor.start()
    store = harness.catalog.store
    fault = ExitStack()
    fault_on = threading.Event()
    fault_on.set()

    def impose(event: ScanProgress) -> None:
        if event.step == "workflow" and fault_on.is_set():
            fault.enter_context(file_size_limit(_wal_size(harness) + WAL_ALLOWANCE))

    # Whether readiness would be 503 (write_error set) at each change of the write state.
    # Listeners run in the order they were added, so this one reads the ingestor's state
    # after the ingestor's listener updated it.
    unready_at_changes: list[bool] = []

    def changed(failure: object) -> None:
        unready_at_changes.append(harness.ingestor.status.write_error is not None)
        if failure is not None:
            fault.close()

    store.add_write_listener(changed)
    harness.ingestor.progress = impose
    _write_run(data_dir, "run_2")

    harness.ingestor.rescan_workflow(harness.workflow_id)
    # Three attempts mean that two got through and their resume scans failed.
    wait_until(lambda: store.write_attempts >= 3, RECOVERY_DEADLINE_SECONDS, "three attempts to write again")
    fault_during = store.write_fault
    fault_on.clear()
    wait_until(lambda: store.write_fault is None, RECOVERY_DEADLINE_SECONDS, "the fault to end")
    harness.ingestor.progress = None

    messages = [record.getMessage() for record in caplog.records]
    assert fault_during is not None
    assert len([message for message in messages if message.startswith("ingestion resumes")]) >= 3
    assert len(unready_at_changes) >= 5
    assert all(unready_at_changes)
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "cannot be written: a file size limit is reached" in errors[0]
    recoveries = [
        message for message in messages if message.startswith("catalog ") and "can be written again" in message
    ]
    assert len(recoveries) == 1
    # The attempts count across the false recoveries, so the wait kept doubling. A fourth
    # attempt is made when the third one's scan imposed the limit before `fault_on` was cleared.
    attempts = re.search(r"and (\d+) attempts", recoveries[0])
    assert attempts is not None
    assert int(attempts.group(1)) >= 3
    assert len([message for message in messages if message.startswith("ingestion paused")]) == 1
    assert harness.ingestor.status.write_error is None
    assert harness.row_count_by_run("counts") == {"run_1": ROWS_PER_RUN, "run_2": ROWS_PER_RUN}
