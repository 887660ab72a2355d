"""Touching, renaming and removing run folders change exactly the rows they should."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.ingestor.conftest import StartHarness
from tests.ingestor.helpers import Harness, table_collection, write_file


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
