"""What a scan reports per data collection, and the progress events it sends."""

from __future__ import annotations

from pathlib import Path

from ingestor import CollectionScan, ScanProgress
from tests.ingestor.conftest import StartHarness
from tests.ingestor.helpers import Harness, table_collection, write_file


def _collection(harness: Harness, tag: str) -> CollectionScan:
    """Scan once more and return the collection's summary."""
    result = harness.scan()
    found = [item for item in result.workflows[0].collections if item.tag == tag]
    assert len(found) == 1
    return found[0]


def test_collection_counts_new_files(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "a.csv", "value\n1\n")
    write_file(data_dir / "run_2" / "a.csv", "value\n2\n")
    harness = start([table_collection("a", r"a\.csv$"), table_collection("b", r"b\.csv$")])

    summary = _collection(harness, "a")

    assert summary.files == 2
    assert summary.files_new == 2
    assert summary.files_changed == 0
    assert summary.files_removed == 0
    assert summary.warning is None


def test_collection_counts_changes_per_collection(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "a.csv", "value\n1\n")
    write_file(data_dir / "run_2" / "a.csv", "value\n2\n")
    write_file(data_dir / "run_1" / "b.csv", "value\n3\n")
    harness = start([table_collection("a", r"a\.csv$"), table_collection("b", r"b\.csv$")])
    harness.scan()
    write_file(data_dir / "run_1" / "a.csv", "value\n1\n10\n")
    (data_dir / "run_2" / "a.csv").unlink()
    write_file(data_dir / "run_3" / "a.csv", "value\n4\n")

    result = harness.scan()

    a, b = result.workflows[0].collections
    assert (a.files, a.files_new, a.files_changed, a.files_removed) == (2, 1, 1, 1)
    assert (b.files, b.files_new, b.files_changed, b.files_removed) == (1, 0, 0, 0)


def test_rescan_counts_nothing_new(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "a.csv", "value\n1\n")
    harness = start([table_collection("a", r"a\.csv$")])
    harness.scan()

    summary = _collection(harness, "a")

    assert summary.files == 1
    assert (summary.files_new, summary.files_changed, summary.files_removed) == (0, 0, 0)
    assert summary.warning is None


def test_pattern_miss_names_runs_searched(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "stats.tsv", "value\n1\n")
    write_file(data_dir / "run_2" / "stats.tsv", "value\n2\n")
    harness = start([table_collection("counts", r"counts\.tsv$")])

    summary = _collection(harness, "counts")

    assert summary.files == 0
    assert summary.warning is not None
    assert "matched no file" in summary.warning
    assert str(data_dir) in summary.warning
    assert r"'counts\\.tsv$'" in summary.warning
    assert "2 run folders searched (run_1, run_2), containing 2 files" in summary.warning


def test_location_inside_run_lists_its_folders(start: StartHarness, tmp_path: Path) -> None:
    # The location is one run folder instead of the folder that contains the runs.
    run = tmp_path / "projA" / "run_A"
    write_file(run / "tables" / "stats.tsv", "value\n1\n")
    harness = start([table_collection("stats", r"stats\.tsv$")], runs_regex="^run_", location="projA/run_A")

    result = harness.scan()

    warning = result.workflows[0].collections[0].warning
    assert warning is not None
    assert "no subfolder matches runs_regex '^run_'" in warning
    assert "contains tables/" in warning
    assert warning in result.workflows[0].warnings


def test_progress_reports_workflow_then_collections(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "a.csv", "value\n1\n2\n")
    write_file(data_dir / "run_2" / "a.csv", "value\n3\n")
    harness = start([table_collection("a", r"a\.csv$"), table_collection("b", r"b\.csv$")])
    events: list[ScanProgress] = []
    harness.ingestor.progress = events.append

    harness.scan()

    assert [(event.step, event.name) for event in events] == [
        ("workflow", "pipeline"),
        ("collection", "a"),
        ("collection", "b"),
    ]
    assert events[0].files == 2
    assert (events[1].files, events[1].rows) == (2, 3)
    assert (events[2].files, events[2].rows) == (0, 0)
    assert {event.project for event in events} == {"ingest-test"}
