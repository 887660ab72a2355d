"""Scanning again: unchanged folders change nothing, edits and removals reach the tables."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from catalog import SyncCounts
from tests import backends
from tests.ingestor.conftest import StartHarness
from tests.ingestor.helpers import Harness, table_collection, write_file


def _two_collections(start: StartHarness, data_dir: Path) -> Harness:
    """Return a harness with collections `a` (two runs) and `b` (one run), scanned once."""
    write_file(data_dir / "run_1" / "a.csv", "sample,reads\nS1,10\nS2,20\n")
    write_file(data_dir / "run_2" / "a.csv", "sample,reads\nS3,30\n")
    write_file(data_dir / "run_1" / "b.csv", "sample,gc\nS1,0.5\n")
    harness = start([table_collection("a", r"a\.csv$"), table_collection("b", r"b\.csv$")])
    harness.scan()
    return harness


def _sync_counts(harness: Harness) -> SyncCounts:
    """Scan once more and return what the sync of the only workflow changed."""
    result = harness.scan()
    return result.workflows[0].counts


# A second scan of unchanged folders


def test_second_scan_syncs_nothing(start: StartHarness, data_dir: Path) -> None:
    harness = _two_collections(start, data_dir)

    counts = _sync_counts(harness)

    assert counts == SyncCounts()


def test_second_scan_leaves_tables_unchanged(start: StartHarness, data_dir: Path) -> None:
    harness = _two_collections(start, data_dir)
    before = harness.table("a")

    result = harness.scan()

    assert [table.outcome for table in result.tables] == ["unchanged", "unchanged"]
    assert harness.table("a").aggregation_version == before.aggregation_version
    assert harness.table("a") == before


def test_second_scan_keeps_rows(start: StartHarness, data_dir: Path) -> None:
    harness = _two_collections(start, data_dir)
    before = harness.rows("a")

    harness.scan()

    assert harness.rows("a") == before


def test_second_scan_keeps_files(start: StartHarness, data_dir: Path) -> None:
    harness = _two_collections(start, data_dir)
    before = harness.files("a")

    harness.scan()

    assert [record.id for record in harness.files("a")] == [record.id for record in before]
    assert harness.files("a") == before


def test_second_scan_keeps_runs(start: StartHarness, data_dir: Path) -> None:
    harness = _two_collections(start, data_dir)
    before = harness.runs()

    harness.scan()

    assert harness.runs() == before


def test_failed_file_stays_failed(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "a.csv", "x,y\n1,2\n3,4,5\n")
    write_file(data_dir / "run_2" / "a.csv", "x,y\n1,2\n")
    harness = start([table_collection("a", r"a\.csv$")])
    harness.scan()
    before = next(record for record in harness.files("a") if record.run_tag == "run_1")

    harness.scan()

    after = next(record for record in harness.files("a") if record.run_tag == "run_1")
    assert after.status == "failed"
    assert after.error == before.error


# Edited files


def test_edited_file_updates_its_table(start: StartHarness, data_dir: Path) -> None:
    harness = _two_collections(start, data_dir)

    write_file(data_dir / "run_1" / "a.csv", "sample,reads\nS1,11\nS2,21\nS4,41\n")
    result = harness.scan()

    assert [(table.tag, table.outcome) for table in result.tables] == [("a", "updated"), ("b", "unchanged")]
    assert harness.table("a").aggregation_version == 2
    assert harness.table("b").aggregation_version == 1


def test_edited_file_replaces_its_rows(start: StartHarness, data_dir: Path) -> None:
    harness = _two_collections(start, data_dir)

    write_file(data_dir / "run_1" / "a.csv", "sample,reads\nS1,11\nS2,21\nS4,41\n")
    harness.scan()

    assert harness.rows("a", "sample, reads, depictio_run_id") == [
        ("S1", 11, "run_1"),
        ("S2", 21, "run_1"),
        ("S3", 30, "run_2"),
        ("S4", 41, "run_1"),
    ]


def test_edited_file_counts_as_changed(start: StartHarness, data_dir: Path) -> None:
    harness = _two_collections(start, data_dir)

    write_file(data_dir / "run_1" / "a.csv", "sample,reads\nS1,11\nS2,21\nS4,41\n")
    counts = _sync_counts(harness)

    assert counts == SyncCounts(files_changed=1)


def test_edited_file_keeps_its_id(start: StartHarness, data_dir: Path) -> None:
    harness = _two_collections(start, data_dir)
    ids_before = [record.id for record in harness.files("a")]

    write_file(data_dir / "run_1" / "a.csv", "sample,reads\nS1,11\n")
    harness.scan()

    assert [record.id for record in harness.files("a")] == ids_before


def test_same_size_edit_is_detected(start: StartHarness, data_dir: Path) -> None:
    harness = _two_collections(start, data_dir)
    path = data_dir / "run_1" / "a.csv"
    modified = path.stat().st_mtime

    write_file(path, "sample,reads\nS1,90\nS2,80\n")
    os.utime(path, (modified + 5, modified + 5))
    harness.scan()

    assert harness.rows("a", "reads", order_by="1") == [(30,), (80,), (90,)]


def test_fixed_file_aggregates(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "a.csv", "x,y\n1,2\n3,4,5\n")
    write_file(data_dir / "run_2" / "a.csv", "x,y\n1,2\n")
    harness = start([table_collection("a", r"a\.csv$")])
    harness.scan()

    write_file(data_dir / "run_1" / "a.csv", "x,y\n1,2\n3,4\n")
    harness.scan()

    fixed = next(record for record in harness.files("a") if record.run_tag == "run_1")
    assert fixed.status == "aggregated"
    assert fixed.error is None
    assert harness.row_count_by_run("a") == {"run_1": 2, "run_2": 1}


def test_file_emptied_loses_its_rows(start: StartHarness, data_dir: Path) -> None:
    harness = _two_collections(start, data_dir)

    write_file(data_dir / "run_1" / "a.csv", "")
    harness.scan()

    emptied = next(record for record in harness.files("a") if record.run_tag == "run_1")
    assert emptied.status == "failed"
    assert harness.row_count_by_run("a") == {"run_2": 1}


# Removed and added runs and files


def test_deleted_run_is_removed(start: StartHarness, data_dir: Path) -> None:
    harness = _two_collections(start, data_dir)

    shutil.rmtree(data_dir / "run_2")
    counts = _sync_counts(harness)

    assert counts == SyncCounts(runs_removed=1, files_removed=1)
    assert harness.run_tags() == ["run_1"]


def test_deleted_run_loses_files_and_rows(start: StartHarness, data_dir: Path) -> None:
    harness = _two_collections(start, data_dir)

    shutil.rmtree(data_dir / "run_2")
    harness.scan()

    assert [record.run_tag for record in harness.files("a")] == ["run_1"]
    assert harness.row_count_by_run("a") == {"run_1": 2}
    assert harness.table("a").row_count == 2


def test_deleted_run_leaves_other_table(start: StartHarness, data_dir: Path) -> None:
    harness = _two_collections(start, data_dir)

    shutil.rmtree(data_dir / "run_2")
    harness.scan()

    assert harness.table("b").aggregation_version == 1


def test_deleting_every_run_drops_table(start: StartHarness, data_dir: Path) -> None:
    harness = _two_collections(start, data_dir)
    collection_id = harness.collection_id("a")

    shutil.rmtree(data_dir / "run_1")
    shutil.rmtree(data_dir / "run_2")
    harness.scan()

    tables = harness.catalog.store.query(
        "SELECT table_name FROM information_schema.tables WHERE table_name = ?", [f"dc_{collection_id}"]
    )
    assert harness.catalog.tables.get(collection_id) is None
    assert tables == []


def test_deleted_file_loses_its_rows(start: StartHarness, data_dir: Path) -> None:
    harness = _two_collections(start, data_dir)

    (data_dir / "run_1" / "a.csv").unlink()
    counts = _sync_counts(harness)

    assert counts == SyncCounts(files_removed=1)
    assert harness.run_tags() == ["run_1", "run_2"]
    assert harness.row_count_by_run("a") == {"run_2": 1}


def test_added_run_appends_rows(start: StartHarness, data_dir: Path) -> None:
    harness = _two_collections(start, data_dir)
    before = harness.rows("a", "sample, reads, depictio_run_id, depictio_file_id")

    write_file(data_dir / "run_3" / "a.csv", "sample,reads\nS5,50\n")
    counts = _sync_counts(harness)

    after = harness.rows("a", "sample, reads, depictio_run_id, depictio_file_id")
    added = next(record for record in harness.files("a") if record.run_tag == "run_3")
    assert counts == SyncCounts(runs_added=1, files_added=1)
    assert harness.run_tags() == ["run_1", "run_2", "run_3"]
    assert after == [*before, ("S5", 50, "run_3", added.id)]


# Restarts


def test_ids_stable_across_restart(start: StartHarness, data_dir: Path) -> None:
    harness = _two_collections(start, data_dir)
    run_ids = [run.id for run in harness.runs()]
    file_ids = [record.id for record in harness.files("a")]

    harness.reopen()
    harness.scan()

    assert [run.id for run in harness.runs()] == run_ids
    assert [record.id for record in harness.files("a")] == file_ids


def test_restart_scan_changes_nothing(start: StartHarness, data_dir: Path) -> None:
    harness = _two_collections(start, data_dir)
    table = harness.table("a")
    rows = harness.rows("a")

    harness.reopen()
    counts = _sync_counts(harness)

    assert counts == SyncCounts()
    assert harness.table("a") == table
    assert harness.rows("a") == rows


@pytest.mark.skipif(
    backends.backend() == "ducklake", reason="deletes the DuckDB catalog file, which a lake does not have"
)
def test_ids_stable_with_new_catalog(start: StartHarness, data_dir: Path) -> None:
    harness = _two_collections(start, data_dir)
    run_ids = [run.id for run in harness.runs()]
    file_ids = [record.id for record in harness.files("a")]

    harness.close()
    harness.catalog_path.unlink()
    harness.reopen()
    harness.scan()

    assert [run.id for run in harness.runs()] == run_ids
    assert [record.id for record in harness.files("a")] == file_ids


def test_scan_leaves_no_write_ahead_log(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "a,b\n1,2\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    # The scan's writes are in the database file, so a kill now replays nothing at start.
    wal = Path(f"{harness.catalog_path}.wal")
    assert not wal.exists() or wal.stat().st_size == 0
