"""Tables follow their files by replacing only the rows of files that changed.

Every test ends by comparing the table with a fresh full aggregation of the same files
into a new catalog: an update in place must give exactly the table a rebuild gives.
"""

from __future__ import annotations

import random
import shutil
import threading
from pathlib import Path
from typing import Any

from tests.ingestor.conftest import StartHarness
from tests.ingestor.helpers import Harness, table_collection, write_file


def _fresh_table(harness: Harness, tag: str) -> tuple[dict[str, str], list[tuple[Any, ...]]]:
    """Return (column types, rows) of the table a new catalog builds from the same files at once."""
    folder = harness.folder / f"fresh-{random.random()}"
    folder.mkdir()
    fresh = Harness(folder, harness.project_path)
    try:
        fresh.scan()
        return fresh.column_types(tag), fresh.rows(tag, "* EXCLUDE (aggregation_time)")
    finally:
        fresh.close()


def _assert_equals_fresh(harness: Harness, tag: str) -> None:
    types, rows = _fresh_table(harness, tag)
    assert harness.column_types(tag) == types
    assert harness.rows(tag, "* EXCLUDE (aggregation_time)") == rows
    assert harness.table(tag).row_count == len(rows)


def _aggregation_times(harness: Harness, tag: str) -> dict[str, set[object]]:
    """Return {run tag: aggregation times of its rows}; rows copied again get a new time."""
    times: dict[str, set[object]] = {}
    for run_tag, stamp in harness.rows(tag, "depictio_run_id, aggregation_time"):
        times.setdefault(str(run_tag), set()).add(stamp)
    return times


def _runs(data_dir: Path, count: int) -> None:
    for number in range(1, count + 1):
        write_file(data_dir / f"run_{number}" / "t.csv", f"a,b\n{number},x{number}\n{number + 100},y{number}\n")


def test_new_run_is_added_in_place(start: StartHarness, data_dir: Path) -> None:
    _runs(data_dir, 3)
    harness = start([table_collection("t", r"t\.csv$")])
    harness.scan()
    before = _aggregation_times(harness, "t")

    write_file(data_dir / "run_4" / "t.csv", "a,b\n4,x4\n")
    result = harness.scan()

    assert result.tables[0].outcome == "updated"
    after = _aggregation_times(harness, "t")
    assert {run: after[run] for run in before} == before  # Old rows were not read again.
    assert harness.row_count_by_run("t") == {"run_1": 2, "run_2": 2, "run_3": 2, "run_4": 1}
    assert harness.table("t").aggregation_version == 2
    _assert_equals_fresh(harness, "t")


def test_changed_file_replaces_only_its_rows(start: StartHarness, data_dir: Path) -> None:
    _runs(data_dir, 3)
    harness = start([table_collection("t", r"t\.csv$")])
    harness.scan()
    before = _aggregation_times(harness, "t")

    write_file(data_dir / "run_2" / "t.csv", "a,b\n7,z\n8,z\n9,z\n")
    result = harness.scan()

    assert result.tables[0].outcome == "updated"
    after = _aggregation_times(harness, "t")
    assert after["run_1"] == before["run_1"]
    assert after["run_3"] == before["run_3"]
    assert after["run_2"] != before["run_2"]
    assert harness.rows("t", "a, b", "a") == [
        (1, "x1"),
        (3, "x3"),
        (7, "z"),
        (8, "z"),
        (9, "z"),
        (101, "y1"),
        (103, "y3"),
    ]
    _assert_equals_fresh(harness, "t")


def test_removed_file_is_retracted_in_place(start: StartHarness, data_dir: Path) -> None:
    _runs(data_dir, 3)
    harness = start([table_collection("t", r"t\.csv$")])
    harness.scan()

    (data_dir / "run_3" / "t.csv").unlink()
    result = harness.scan()

    assert result.tables[0].outcome == "updated"
    assert harness.row_count_by_run("t") == {"run_1": 2, "run_2": 2}
    _assert_equals_fresh(harness, "t")


def test_new_column_rebuilds_whole_table(start: StartHarness, data_dir: Path) -> None:
    _runs(data_dir, 2)
    harness = start([table_collection("t", r"t\.csv$")])
    harness.scan()

    write_file(data_dir / "run_3" / "t.csv", "a,c,b\n3,new,x3\n")
    result = harness.scan()

    assert result.tables[0].outcome == "built"
    assert list(harness.column_types("t"))[:3] == ["a", "b", "c"]
    _assert_equals_fresh(harness, "t")


def test_wider_type_rebuilds_whole_table(start: StartHarness, data_dir: Path) -> None:
    _runs(data_dir, 2)
    harness = start([table_collection("t", r"t\.csv$")])
    harness.scan()

    write_file(data_dir / "run_3" / "t.csv", "a,b\n2.5,x3\n")
    result = harness.scan()

    assert result.tables[0].outcome == "built"
    assert harness.column_types("t")["a"] == "DOUBLE"
    _assert_equals_fresh(harness, "t")


def test_removing_widening_file_narrows_type_again(start: StartHarness, data_dir: Path) -> None:
    _runs(data_dir, 2)
    write_file(data_dir / "run_3" / "t.csv", "a,b,only_here\n2.5,x3,1\n")
    harness = start([table_collection("t", r"t\.csv$")])
    harness.scan()
    assert harness.column_types("t")["a"] == "DOUBLE"

    shutil.rmtree(data_dir / "run_3")
    harness.scan()

    assert harness.column_types("t")["a"] == "BIGINT"
    assert "only_here" not in harness.column_types("t")
    _assert_equals_fresh(harness, "t")


def test_empty_column_in_new_file_fits_numeric_column(start: StartHarness, data_dir: Path) -> None:
    _runs(data_dir, 2)
    harness = start([table_collection("t", r"t\.csv$")])
    harness.scan()

    write_file(data_dir / "run_3" / "t.csv", "a,b\n,x3\n,y3\n")
    result = harness.scan()

    assert result.tables[0].outcome == "updated"
    assert harness.column_types("t")["a"] == "BIGINT"
    _assert_equals_fresh(harness, "t")


def test_file_failing_after_change_loses_its_rows(start: StartHarness, data_dir: Path) -> None:
    _runs(data_dir, 3)
    harness = start([table_collection("t", r"t\.csv$")])
    harness.scan()

    write_file(data_dir / "run_2" / "t.csv", "a,b\n1,2,3,4\n5\n")
    result = harness.scan()

    assert result.tables[0].outcome == "updated"
    failed = [record for record in harness.files("t") if record.status == "failed"]
    assert [record.run_tag for record in failed] == ["run_2"]
    assert harness.row_count_by_run("t") == {"run_1": 2, "run_3": 2}
    _assert_equals_fresh(harness, "t")


def test_unchanged_failed_file_is_not_read_again(start: StartHarness, data_dir: Path) -> None:
    _runs(data_dir, 2)
    write_file(data_dir / "run_3" / "t.csv", "a,b\n1,2,3,4\n5\n")
    harness = start([table_collection("t", r"t\.csv$")])
    harness.scan()

    write_file(data_dir / "run_4" / "t.csv", "a,b\n4,x4\n")
    result = harness.scan()

    # Only the new file was read: the failed one, unchanged, kept its outcome.
    assert result.tables[0].outcome == "updated"
    assert result.tables[0].files_aggregated == 1
    assert result.tables[0].files_failed == 1
    _assert_equals_fresh(harness, "t")


def test_drift_notes_follow_updates(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "a,b\n1.5,x\n")
    write_file(data_dir / "run_2" / "t.csv", "a,b\n2,y\n")
    harness = start([table_collection("t", r"t\.csv$")])
    harness.scan()
    assert [(note.column, note.file_type) for note in harness.table("t").drift] == [("a", "BIGINT")]

    write_file(data_dir / "run_3" / "t.csv", "a,b\n3,z\n")
    harness.scan()
    assert sorted((note.column, note.file_type) for note in harness.table("t").drift) == [
        ("a", "BIGINT"),
        ("a", "BIGINT"),
    ]

    (data_dir / "run_2" / "t.csv").unlink()
    harness.scan()
    assert len(harness.table("t").drift) == 1


def test_reader_sees_table_before_or_after_update(start: StartHarness, data_dir: Path) -> None:
    _runs(data_dir, 20)
    harness = start([table_collection("t", r"t\.csv$")])
    harness.scan()
    table = f'data."dc_{harness.collection_id("t")}"'
    seen: set[int] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.add(int(harness.catalog.store.query(f"SELECT count(*) FROM {table}")[0][0]))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for number in range(1, 11):
            write_file(data_dir / f"run_{number}" / "t.csv", "a,b\n1,a\n2,b\n3,c\n")
            harness.scan()
    finally:
        stop.set()
        reader.join(timeout=30)

    # Each update moves one file from 2 rows to 3: no count between two versions is possible.
    assert seen <= {40 + step for step in range(11)}
    _assert_equals_fresh(harness, "t")


def test_random_changes_match_fresh_aggregation(start: StartHarness, data_dir: Path) -> None:
    chooser = random.Random(20261204)
    harness = start([table_collection("t", r"t\.csv$")])
    bodies = [
        "a,b\n{n},x\n",
        "a,b\n{n},x\n{n},y\n",
        "a,b,c\n{n},x,1\n",
        "a,b\n{n}.5,x\n",
        "a,b\n,x\n",
        "b,a\nq,{n}\n",
        "a,b\n1,2,3\n",
    ]
    for step in range(25):
        run = data_dir / f"run_{chooser.randrange(6)}"
        action = chooser.random()
        if action < 0.2 and run.exists():
            shutil.rmtree(run)
        else:
            write_file(run / "t.csv", chooser.choice(bodies).format(n=step))
        harness.scan()
        if harness.catalog.tables.get(harness.collection_id("t")) is not None:
            _assert_equals_fresh(harness, "t")
        else:
            assert not any(data_dir.glob("run_*/t.csv")) or _fresh_has_no_table(harness, "t")


def _fresh_has_no_table(harness: Harness, tag: str) -> bool:
    folder = harness.folder / f"fresh-{random.random()}"
    folder.mkdir()
    fresh = Harness(folder, harness.project_path)
    try:
        fresh.scan()
        return fresh.catalog.tables.get(fresh.collection_id(tag)) is None
    finally:
        fresh.close()
