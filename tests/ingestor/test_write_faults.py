"""Ingestion while the catalog cannot be written: it pauses, keeps every file, and catches up by itself.

The faults are real: a file size limit (RLIMIT_FSIZE) makes DuckDB's writes fail with
EFBIG, "File too large", as a full disk fails them with ENOSPC.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import config
from ingestor.progress import ScanProgress
from tests.faults import file_size_limit
from tests.ingestor.conftest import StartHarness
from tests.ingestor.helpers import Harness, table_collection, wait_until, write_file

RECOVERY_DEADLINE_SECONDS = 30
RETRY_SECONDS = 0.2
ROWS_PER_RUN = 2000
# Bytes the WAL may still grow once the fault starts: enough for the small commits of a
# build (creating its scratch table, recording outcomes), too little for a run's rows.
WAL_ALLOWANCE = 8192


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
