"""Touching, renaming, moving and removing run folders change exactly the rows they should."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.ingestor.conftest import StartHarness
from tests.ingestor.helpers import Harness, table_collection, wait_until, write_file

# Watched changes land within a second or two, and the margin covers a busy test machine.
MOVE_SECONDS = 60


def _tree(data_dir: Path) -> None:
    for run, values in (("run_1", "1,2\n3,4\n"), ("run_2", "5,6\n"), ("run_3", "7,8\n9,10\n11,12\n")):
        write_file(data_dir / run / "t.csv", "a,b\n" + values)


def _rows(harness: Harness) -> list[tuple[object, ...]]:
    return harness.rows("t", "a, b, depictio_run_id")


def test_touch_reingests_nothing(start: StartHarness, data_dir: Path) -> None:
    _tree(data_dir)
    harness = start([table_collection("t", r"t\.csv$")])
    harness.scan()
    version = harness.table("t").aggregation_version
    for path in data_dir.glob("run_*/t.csv"):
        stamp = path.stat().st_mtime_ns + 5_000_000_000
        os.utime(path, ns=(stamp, stamp))

    result = harness.scan()

    assert harness.table("t").aggregation_version == version
    assert result.tables[0].outcome == "unchanged"


def test_rename_and_back_restores_rows(start: StartHarness, data_dir: Path) -> None:
    _tree(data_dir)
    harness = start([table_collection("t", r"t\.csv$")])
    harness.scan()
    before = _rows(harness)

    (data_dir / "run_2").rename(data_dir / "run_9")
    harness.scan()
    renamed = harness.row_count_by_run("t")
    (data_dir / "run_9").rename(data_dir / "run_2")
    harness.scan()

    assert renamed == {"run_1": 2, "run_3": 3, "run_9": 1}
    assert _rows(harness) == before


def test_removed_run_retracts_exactly_its_rows(start: StartHarness, data_dir: Path, tmp_path: Path) -> None:
    _tree(data_dir)
    harness = start([table_collection("t", r"t\.csv$")])
    harness.scan()
    before = _rows(harness)

    shutil.move(str(data_dir / "run_2"), str(tmp_path / "run_2_away"))
    harness.scan()
    without = _rows(harness)
    shutil.move(str(tmp_path / "run_2_away"), str(data_dir / "run_2"))
    harness.scan()

    assert without == [row for row in before if row[2] != "run_2"]
    assert _rows(harness) == before


def _watched_rows(harness: Harness) -> dict[str, int]:
    """Return {run tag: rows} of the aggregated table, or {} while it has none."""
    if harness.catalog.tables.get(harness.collection_id("t")) is None:
        return {}
    return harness.row_count_by_run("t")


@pytest.mark.parametrize("watch_mode", ["events", "polling"])
def test_watched_run_moves_in_renames_and_leaves(
    start: StartHarness, data_dir: Path, tmp_path: Path, watch_mode: str
) -> None:
    write_file(data_dir / "run_1" / "part_1.csv", "a,b\n1,2\n")
    ingest = {"watch_mode": watch_mode, "reconcile_seconds": 0, "settle_seconds": 0.3, "poll_seconds": 0.5}
    harness = start([table_collection("t", r"part_\d\.csv$")], ingest=ingest)
    harness.ingestor.start()
    staging = tmp_path / "staging"
    write_file(staging / "run_7" / "part_1.csv", "a,b\n71,1\n")
    write_file(staging / "run_7" / "part_2.csv", "a,b\n72,2\n")

    shutil.move(str(staging / "run_7"), str(data_dir / "run_7"))
    wait_until(lambda: _watched_rows(harness) == {"run_1": 1, "run_7": 2}, MOVE_SECONDS, "the moved-in run")
    write_file(data_dir / "run_7" / "part_3.csv", "a,b\n73,3\n")
    wait_until(lambda: _watched_rows(harness) == {"run_1": 1, "run_7": 3}, MOVE_SECONDS, "a file added to it")
    moved_in = harness.file_names("t")

    (data_dir / "run_7").rename(data_dir / "run_7_failed")
    wait_until(lambda: _watched_rows(harness) == {"run_1": 1, "run_7_failed": 3}, MOVE_SECONDS, "the renamed run")
    renamed = harness.file_names("t")
    renamed_runs = harness.run_tags()

    shutil.move(str(data_dir / "run_7_failed"), str(staging / "run_7_failed"))
    wait_until(lambda: _watched_rows(harness) == {"run_1": 1}, MOVE_SECONDS, "the moved-out run to leave")

    assert moved_in == ["run_1/part_1.csv", "run_7/part_1.csv", "run_7/part_2.csv", "run_7/part_3.csv"]
    assert renamed == [
        "run_1/part_1.csv",
        "run_7_failed/part_1.csv",
        "run_7_failed/part_2.csv",
        "run_7_failed/part_3.csv",
    ]
    assert renamed_runs == ["run_1", "run_7_failed"]
    assert harness.run_tags() == ["run_1"]
    assert harness.file_names("t") == ["run_1/part_1.csv"]
    assert _rows(harness) == [(1, 2, "run_1")]
