"""Watching goes on after lost events, event bursts, dead observers and the inotify watch limit.

The kernel's inotify limits are machine-wide settings, so a test cannot lower them for
itself. Where a test needs a limit to be hit, it makes watchdog report it: it queues
watchdog's own EventsLostEvent, or makes watchdog's InotifyObserver.schedule raise ENOSPC.
"""

from __future__ import annotations

import errno
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from watchdog.events import EventsLostEvent
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.inotify import InotifyObserver

import catalog
from ingestor.watch import Watcher
from tests.ingestor.conftest import StartHarness
from tests.ingestor.helpers import Harness, table_collection, wait_until, write_file

ARRIVAL_SECONDS = 60
# Building a table from 5,000 files takes about 10 s on a busy two-core machine.
BURST_SECONDS = 300
BURST_FILES = 5_000
# Name prefixes of the threads that the ingestor starts and must stop.
SERVICE_THREADS = ("ingest-", "watch-", "scan-deadline")


def _location(harness: Harness, index: int = 0) -> str:
    return harness.project.workflows[0].data_location.locations[index]


def _watcher(harness: Harness) -> Watcher:
    watcher = harness.ingestor.watcher
    assert watcher is not None, "the ingestor is not watching; was it started with watch_mode off?"
    return watcher


def _observer(harness: Harness, index: int = 0) -> BaseObserver:
    observer = _watcher(harness).observer(_location(harness, index))
    assert observer is not None, f"no observer watches {_location(harness, index)}"
    return observer


def _replaced(harness: Harness, observer: BaseObserver) -> bool:
    """Return True once another observer watches the first location."""
    return _watcher(harness).observer(_location(harness)) not in (None, observer)


def _report_lost_events(harness: Harness) -> None:
    """Queue the notice that watchdog's inotify observer sends after a kernel queue overflow."""
    location = _location(harness)
    notice = EventsLostEvent(location, is_directory=True)
    _observer(harness).event_queue.put((notice, ObservedWatch(location, recursive=True)))


def _scans(harness: Harness) -> list[catalog.ScanReport]:
    assert harness.project.id is not None
    reports, _ = harness.catalog.scans.list([harness.project.id], 500, 0)
    return sorted(reports, key=lambda report: report.started_at)


def _triggers(harness: Harness) -> list[str]:
    return [str(report.details["trigger"]) for report in _scans(harness)]


def _table_rows(harness: Harness, tag: str) -> int:
    table = harness.catalog.tables.get(harness.collection_id(tag))
    return table.row_count if table is not None else 0


def _messages(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if text in record.getMessage()]


def _watched(start: StartHarness, **ingest: Any) -> Harness:
    settings = {"reconcile_seconds": 0, "settle_seconds": 0.3, "watch_mode": "events", "poll_seconds": 0.5, **ingest}
    harness = start([table_collection("t", r"f_\d+\.csv$")], ingest=settings)
    harness.ingestor.start()
    return harness


def test_lost_events_rescan_whole_workflow(
    start: StartHarness, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Files written before the service starts send no event, so only the rescan finds them.
    for index in range(20):
        write_file(data_dir / f"run_{index % 2}" / f"f_{index}.csv", f"a,b\n{index},x\n")
    harness = _watched(start, scan_on_start=False)
    caplog.set_level(logging.WARNING, logger="ingestor.watch")

    for _ in range(3):
        _report_lost_events(harness)
    wait_until(lambda: _table_rows(harness, "t") == 20, ARRIVAL_SECONDS, "the 20 rows after lost events")

    lost = _messages(caplog, "were lost")
    assert len(lost) == 1, lost
    assert harness.workflow_id in lost[0]
    assert _location(harness) in lost[0]
    assert _triggers(harness) == ["overflow"]
    assert len(harness.files("t")) == 20


def test_burst_of_files_lands_debounced(start: StartHarness, data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    harness = _watched(start, settle_seconds=1.0)
    caplog.set_level(logging.WARNING, logger="ingestor.watch")
    run = data_dir / "run_1"
    run.mkdir()

    for index in range(BURST_FILES):
        (run / f"f_{index}.csv").write_text(f"a,b\n{index},x\n", encoding="utf-8")
        if index == BURST_FILES // 2:
            # As the kernel would when its queue overflows in the middle of the burst.
            _report_lost_events(harness)
    wait_until(lambda: _table_rows(harness, "t") == BURST_FILES, BURST_SECONDS, "every row of the burst")

    on_disk = len(list(run.glob("f_*.csv")))
    assert len(harness.files("t")) == on_disk
    assert _table_rows(harness, "t") == on_disk
    # One build once the burst is quiet, plus one or two if the busy test machine stalls.
    assert harness.table("t").aggregation_version <= 3
    assert len(_messages(caplog, "were lost")) == 1


@pytest.mark.parametrize("watch_mode", ["events", "polling"])
def test_dead_observer_is_replaced(
    start: StartHarness, data_dir: Path, caplog: pytest.LogCaptureFixture, watch_mode: str
) -> None:
    harness = _watched(start, watch_mode=watch_mode)
    caplog.set_level(logging.WARNING, logger="ingestor.watch")
    first = _observer(harness)

    first.stop()
    wait_until(lambda: _replaced(harness, first), ARRIVAL_SECONDS, "a new observer")
    wait_until(lambda: "watch-restart" in _triggers(harness), ARRIVAL_SECONDS, "the rescan after the restart")
    write_file(data_dir / "run_9" / "f_1.csv", "a,b\n1,x\n")
    wait_until(lambda: _table_rows(harness, "t") == 1, ARRIVAL_SECONDS, "the file written after the restart")

    stopped = _messages(caplog, "stopped; starting a new one")
    assert len(stopped) == 1, stopped
    assert _location(harness) in stopped[0]
    assert harness.workflow_id in stopped[0]
    assert _observer(harness).is_alive()
    assert [location.mode for location in harness.ingestor.status.locations] == [watch_mode]
    assert _triggers(harness)[-1] == "event"


def _fail_watch(*arguments: object, **keywords: object) -> None:
    raise OSError(errno.ENOSPC, "inotify watch limit reached")


def test_watch_limit_falls_back_to_polling(
    start: StartHarness, data_dir: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(InotifyObserver, "schedule", _fail_watch)
    caplog.set_level(logging.WARNING, logger="ingestor.watch")
    settings = {"reconcile_seconds": 0, "settle_seconds": 0.3, "watch_mode": "events", "poll_seconds": 0.5}
    harness = start([table_collection("t", r"f_\d+\.csv$")], ingest=settings, location=["data", "more"])

    harness.ingestor.start()
    write_file(data_dir / "run_1" / "f_1.csv", "a,b\n1,x\n")
    wait_until(lambda: _table_rows(harness, "t") == 1, ARRIVAL_SECONDS, "a file in a polled location")

    limit = _messages(caplog, "fs.inotify.max_user_watches")
    assert len(limit) == 1, limit
    assert "sysctl" in limit[0]
    locations = harness.ingestor.status.locations
    assert [location.mode for location in locations] == ["polling", "polling"]
    assert {location.reason for location in locations} == {"the inotify watch limit is reached"}


def test_restart_at_watch_limit_polls(
    start: StartHarness, data_dir: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = _watched(start)
    caplog.set_level(logging.WARNING, logger="ingestor.watch")
    first = _observer(harness)

    monkeypatch.setattr(InotifyObserver, "schedule", _fail_watch)
    first.stop()
    wait_until(lambda: _replaced(harness, first), ARRIVAL_SECONDS, "a new observer")
    write_file(data_dir / "run_1" / "f_1.csv", "a,b\n1,x\n")
    wait_until(lambda: _table_rows(harness, "t") == 1, ARRIVAL_SECONDS, "a file in the polled location")

    assert [location.mode for location in harness.ingestor.status.locations] == ["polling"]
    assert len(_messages(caplog, "fs.inotify.max_user_watches")) == 1


def test_stop_leaves_no_watch_thread(start: StartHarness, data_dir: Path) -> None:
    # Threads of services that earlier tests started are not this ingestor's.
    earlier = set(threading.enumerate())
    harness = _watched(start, reconcile_seconds=1)
    first = _observer(harness)
    # Stopping an observer clears its set of emitters, so keep them to check them later.
    emitters = set(first.emitters)
    first.stop()
    wait_until(lambda: _replaced(harness, first), ARRIVAL_SECONDS, "a new observer")
    replacement = _observer(harness)
    emitters |= replacement.emitters

    harness.ingestor.stop()

    ours = [
        thread.name
        for thread in threading.enumerate()
        if thread not in earlier and thread.name.startswith(SERVICE_THREADS)
    ]
    assert ours == []
    assert not replacement.is_alive()
    assert len(emitters) == 2
    assert not any(emitter.is_alive() for emitter in emitters)


def test_polling_interval_comes_from_settings(start: StartHarness, data_dir: Path) -> None:
    harness = _watched(start, watch_mode="polling", poll_seconds=0.7)

    assert _observer(harness).timeout == 0.7
