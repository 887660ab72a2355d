"""Which change events mark a workflow for a rescan, with watchdog's own event objects."""

from __future__ import annotations

import pytest
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    EventsLostEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
)

from ingestor.discover import IgnoreRules
from ingestor.watch import ChangeHandler

LOCATION = "/data/results"
WORKFLOW_ID = "6a0001000000000000000002"


class Recorder:
    """Collects the calls that a ChangeHandler makes."""

    def __init__(self) -> None:
        self.changed: list[str] = []
        self.lost: list[tuple[str, str]] = []

    def handler(
        self, runs_in_subfolders: bool = True, patterns: tuple[str, ...] = ("*.bak", "logs/*")
    ) -> ChangeHandler:
        return ChangeHandler(
            WORKFLOW_ID,
            LOCATION,
            runs_in_subfolders,
            IgnoreRules(patterns),
            self.changed.append,
            lambda workflow_id, location: self.lost.append((workflow_id, location)),
        )


def _at(relative_path: str) -> str:
    return f"{LOCATION}/{relative_path}"


RELEVANT: list[FileSystemEvent] = [
    FileCreatedEvent(_at("run_1/t.csv")),
    FileModifiedEvent(_at("run_1/sub/t.csv")),
    FileDeletedEvent(_at("run_1/t.csv")),
    FileMovedEvent(_at("run_1/t.csv.part"), _at("run_1/t.csv")),
    FileMovedEvent(_at("run_1/t.csv"), _at("run_1/t.csv.bak")),
    DirCreatedEvent(_at("run_2")),
    DirMovedEvent(_at("run_2"), _at("run_2_failed")),
    DirDeletedEvent(_at("run_2")),
    # A folder whose name matches a pattern still contains files the patterns do not skip.
    DirDeletedEvent(_at("run_1/archive.bak")),
    DirDeletedEvent(LOCATION),
    # A loose file at the top of a location may be a single-file collection's file.
    FileCreatedEvent(_at("samples.csv")),
]

IGNORED: list[FileSystemEvent] = [
    FileCreatedEvent(_at("run_1/t.csv.tmp")),
    FileModifiedEvent(_at("run_1/t.csv.part")),
    FileCreatedEvent(_at("run_1/t.csv~")),
    FileCreatedEvent(_at("run_1/.t.csv")),
    FileCreatedEvent(_at("run_1/.snakemake/log/run.log")),
    DirCreatedEvent(_at(".staging")),
    FileCreatedEvent(_at("run_1/t.csv.bak")),
    FileModifiedEvent(_at("run_1/logs/fastqc.log")),
    FileMovedEvent(_at("run_1/t.tmp"), _at("run_1/t.csv.bak")),
    FileOpenedEvent(_at("run_1/t.csv")),
    FileClosedNoWriteEvent(_at("run_1/t.csv")),
    # watchdog adds one for the parent folder beside each event of an entry in it.
    DirModifiedEvent(_at("run_1")),
]


@pytest.mark.parametrize("event", RELEVANT, ids=[repr(event) for event in RELEVANT])
def test_event_marks_workflow(event: FileSystemEvent) -> None:
    recorder = Recorder()

    recorder.handler().dispatch(event)

    assert recorder.changed == [WORKFLOW_ID]


@pytest.mark.parametrize("event", IGNORED, ids=[repr(event) for event in IGNORED])
def test_event_is_ignored(event: FileSystemEvent) -> None:
    recorder = Recorder()

    recorder.handler().dispatch(event)

    assert recorder.changed == []


def test_flat_location_matches_paths_from_location() -> None:
    recorder = Recorder()
    handler = recorder.handler(runs_in_subfolders=False)

    handler.dispatch(FileCreatedEvent(_at("logs/fastqc.log")))
    handler.dispatch(FileCreatedEvent(_at("run_1/logs/fastqc.log")))

    assert recorder.changed == [WORKFLOW_ID]


def test_lost_events_are_reported_not_marked() -> None:
    recorder = Recorder()

    recorder.handler().dispatch(EventsLostEvent(LOCATION, is_directory=True))

    assert recorder.lost == [(WORKFLOW_ID, LOCATION)]
    assert recorder.changed == []


def test_failing_callback_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    def fail(workflow_id: str) -> None:
        raise RuntimeError("catalog unavailable")

    handler = ChangeHandler(WORKFLOW_ID, LOCATION, True, IgnoreRules(), fail, lambda *_: None)

    handler.dispatch(FileCreatedEvent(_at("run_1/t.csv")))

    assert WORKFLOW_ID in caplog.text
    assert "catalog unavailable" in caplog.text


def test_ignore_rules_match_name_and_run_path() -> None:
    rules = IgnoreRules(["*.bak", "logs/*"])

    assert rules.ignores("t.csv.bak")
    assert rules.ignores("sub/t.csv.bak")
    assert rules.ignores("logs/a.csv")
    assert rules.ignores("sub/t.csv.part")
    assert not rules.ignores("sub/logs/a.csv")
    assert not rules.ignores("t.csv")
