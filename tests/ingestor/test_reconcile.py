"""Scheduled reconciles: one job per workflow, no pile-up, and a deadline for each scan."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import xxhash
import yaml

import catalog
from config.settings import WorkflowOverride
from tests.ingestor.conftest import StartHarness
from tests.ingestor.helpers import Harness, table_collection, wait_until, write_file

ARRIVAL_SECONDS = 60
REAL_XXH3_128 = xxhash.xxh3_128


def _scans(harness: Harness, workflow_id: str | None = None) -> list[catalog.ScanReport]:
    assert harness.project.id is not None
    reports, _ = harness.catalog.scans.list([harness.project.id], 500, 0)
    found = [report for report in reports if workflow_id is None or report.workflow_id == workflow_id]
    return sorted(found, key=lambda report: report.started_at)


def _scheduled(harness: Harness, workflow_id: str) -> int:
    return sum(1 for report in _scans(harness, workflow_id) if report.details["trigger"] == "schedule")


def _two_workflow_project(folder: Path) -> Path:
    """Write a project with the workflows `fast` and `quiet`, each with its own location."""
    workflows = []
    for name in ("fast", "quiet"):
        (folder / name).mkdir()
        workflows.append(
            {
                "name": name,
                "engine": {"name": "snakemake"},
                "data_location": {"structure": "sequencing-runs", "runs_regex": "run_.*", "locations": [name]},
                "data_collections": [table_collection(f"{name}_t", r"t\.csv$")],
            }
        )
    path = folder / "project.yaml"
    path.write_text(yaml.safe_dump({"name": "two-workflows", "workflows": workflows}), encoding="utf-8")
    return path


def test_each_workflow_reconciles_on_its_schedule(tmp_path: Path) -> None:
    overrides = [
        WorkflowOverride(project="two-workflows", workflow="fast", reconcile_seconds=1),
        WorkflowOverride(project="two-workflows", workflow="quiet", reconcile_seconds=0),
    ]
    ingest = {"reconcile_seconds": 300, "watch_mode": "off", "workflows": overrides}
    harness = Harness(tmp_path, _two_workflow_project(tmp_path), ingest=ingest)
    fast, quiet = (workflow.id or "" for workflow in harness.project.workflows)
    try:
        harness.ingestor.start()
        wait_until(lambda: _scheduled(harness, fast) >= 3, ARRIVAL_SECONDS, "three reconciles of `fast`")
        scheduled_quiet = _scheduled(harness, quiet)
    finally:
        harness.close()

    # `quiet` turned its reconcile off, and the 300 s default had no time to come round.
    assert scheduled_quiet == 0


def _registering_scan(
    harness: Harness, changed_at: Any, found: Callable[[catalog.ScanReport], bool]
) -> tuple[catalog.ScanReport, catalog.ScanReport]:
    """Return the scan that recorded a change, and the first scheduled scan that started after it."""

    def first_scheduled() -> catalog.ScanReport | None:
        later = [r for r in _scans(harness) if r.details["trigger"] == "schedule" and r.started_at >= changed_at]
        return later[0] if later else None

    wait_until(lambda: first_scheduled() is not None, ARRIVAL_SECONDS, "a scheduled reconcile after the change")
    wait_until(
        lambda: any(found(r) for r in _scans(harness) if r.finished_at >= changed_at),
        ARRIVAL_SECONDS,
        "the scan that records the change",
    )
    registering = next(r for r in _scans(harness) if r.finished_at >= changed_at and found(r))
    scheduled = first_scheduled()
    assert scheduled is not None
    return registering, scheduled


@pytest.mark.parametrize("watch_mode", ["off", "polling"])
def test_change_lands_within_one_interval(start: StartHarness, data_dir: Path, watch_mode: str) -> None:
    write_file(data_dir / "run_1" / "t.csv", "a,b\n1,2\n")
    harness = start(
        [table_collection("t", r"t\.csv$")],
        ingest={"watch_mode": watch_mode, "reconcile_seconds": 1, "settle_seconds": 0},
    )
    harness.ingestor.start()
    steps: list[tuple[str, Callable[[], object], Callable[[catalog.ScanReport], bool]]] = [
        ("add", lambda: write_file(data_dir / "run_2" / "t.csv", "a,b\n3,4\n"), lambda r: r.files_new == 1),
        ("change", lambda: write_file(data_dir / "run_2" / "t.csv", "a,b\n5,6\n7,8\n"), lambda r: r.files_changed == 1),
        ("remove", lambda: (data_dir / "run_1" / "t.csv").unlink(), lambda r: r.files_removed == 1),
    ]

    for step, change, found in steps:
        changed_at = catalog.utc_now()
        change()
        registering, scheduled = _registering_scan(harness, changed_at, found)
        # The change is in the catalog no later than the first reconcile that started after it.
        assert registering.started_at <= scheduled.started_at, step

    # The scan report is written before the table is rebuilt.
    wait_until(lambda: harness.row_count_by_run("t") == {"run_2": 2}, ARRIVAL_SECONDS, "the rebuilt table")


class SlowDisk:
    """Stands in for xxhash.xxh3_128 reading from a slow disk.

    Each digest takes `seconds`, except the first, which waits until `release` is set,
    as a read from a hung file server would. It records how many digests ran at once.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.release = threading.Event()
        self.calls = 0
        self.running = 0
        self.max_running = 0
        self._lock = threading.Lock()

    def __call__(self) -> _SlowDigest:
        return _SlowDigest(self)

    def wait(self) -> None:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            first = self.calls == 1
        try:
            if first:
                self.release.wait(ARRIVAL_SECONDS)
            else:
                time.sleep(self.seconds)
        finally:
            with self._lock:
                self.running -= 1


class _SlowDigest:
    def __init__(self, disk: SlowDisk) -> None:
        self._disk = disk
        self._digest = REAL_XXH3_128()

    def update(self, data: bytes) -> None:
        self._digest.update(data)

    def hexdigest(self) -> str:
        self._disk.wait()
        return str(self._digest.hexdigest())


@pytest.fixture
def slow_disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlowDisk]:
    disk = SlowDisk(seconds=0.3)
    monkeypatch.setattr(xxhash, "xxh3_128", disk)
    yield disk
    disk.release.set()


def test_stuck_reconcile_times_out_and_resumes(
    start: StartHarness, data_dir: Path, slow_disk: SlowDisk, caplog: pytest.LogCaptureFixture
) -> None:
    for index in range(8):
        write_file(data_dir / "run_1" / f"t_{index}.csv", f"a,b\n{index},x\n")
    ingest = {
        "scan_on_start": False,
        "watch_mode": "off",
        "reconcile_seconds": 1,
        "reconcile_deadline_seconds": 1,
        "settle_seconds": 0,
    }
    harness = start([table_collection("t", r"t_\d\.csv$")], ingest=ingest)
    caplog.set_level(logging.WARNING)
    caplog.set_level(logging.INFO, logger="ingestor.service")
    status = harness.ingestor.status
    counts: list[int] = []

    def registered(expected: int) -> bool:
        counts.append(len(harness.files("t")))
        return counts[-1] == expected

    harness.ingestor.start()
    # The first reconcile hangs in its first read: it is reported while it hangs.
    wait_until(lambda: status.scans_timed_out >= 1, ARRIVAL_SECONDS, "the overrun to be reported")
    reported_while_stuck = slow_disk.running == 1 and not slow_disk.release.is_set()
    wait_until(lambda: bool(_skipped(caplog)), ARRIVAL_SECONDS, "a reconcile trigger skipped while one runs")
    files_while_stuck = len(harness.files("t"))
    slow_disk.release.set()
    wait_until(lambda: bool(_stopped(caplog)), ARRIVAL_SECONDS, "the hung scan to stop")
    # The scan checks its deadline before each file, so it stopped without reading the rest.
    reads_when_stopped = slow_disk.calls
    wait_until(lambda: registered(8), ARRIVAL_SECONDS, "the 8 files once the disk is quick again")
    wait_until(lambda: harness.catalog.tables.get(harness.collection_id("t")) is not None, ARRIVAL_SECONDS, "the table")

    assert reported_while_stuck
    assert files_while_stuck == 0
    # Each stopped scan wrote nothing, so the catalog went from no file to all of them.
    assert set(counts) <= {0, 8}
    assert slow_disk.max_running == 1
    # A stopped scan keeps the hashes it computed, so no file was read twice.
    assert slow_disk.calls == 8
    overrun = [r.getMessage() for r in caplog.records if "past its deadline" in r.getMessage()]
    assert overrun, "no overrun warning was logged"
    assert harness.workflow_id in overrun[0]
    assert "past its deadline of 1 s" in overrun[0]
    assert reads_when_stopped < 8
    assert harness.workflow_id in _stopped(caplog)[0]
    assert status.last_error is not None
    assert harness.workflow_id in status.last_error
    assert harness.table("t").row_count == 8
    reports, _ = harness.catalog.scans.list([harness.project.id or ""], limit=100, offset=0)
    timed_out = [report for report in reports if report.details.get("timed_out")]
    assert timed_out, "the stopped scan has no scan report"
    assert "stopped at its deadline of 1 s" in timed_out[0].details["warnings"][0]


def _stopped(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "at its deadline" in r.getMessage()]


def _skipped(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "maximum number of running instances" in r.getMessage()]
