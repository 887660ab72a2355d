"""Delimited files whose dialect or values DuckDB would read differently from the file's author."""

from __future__ import annotations

import os
from pathlib import Path

from tests.ingestor.conftest import StartHarness
from tests.ingestor.helpers import table_collection, write_file


def test_crlf_and_lf_files_both_load(start: StartHarness, data_dir: Path) -> None:
    (data_dir / "run_1").mkdir()
    (data_dir / "run_1" / "t.csv").write_bytes(b"id,name\r\n1,a\r\n2,b\r\n")
    write_file(data_dir / "run_2" / "t.csv", "id,name\n3,c\n4,d\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert harness.rows("t", "id, name, depictio_run_id") == [
        (1, "a", "run_1"),
        (2, "b", "run_1"),
        (3, "c", "run_2"),
        (4, "d", "run_2"),
    ]


def test_nan_and_infinity_do_not_block_table(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "id,x\n1,1.5\n2,nan\n3,inf\n4,2.5\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    specs = harness.specs("t")["x"].specs
    assert harness.table("t").row_count == 4
    assert specs["count"] == 4
    assert specs["average"] == 2.0
    assert specs["min"] == 1.5
    assert specs["max"] == 2.5


def test_t_and_f_letters_stay_text(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "pos,ref\n100,T\n200,T\n")
    write_file(data_dir / "run_2" / "t.csv", "pos,ref\n300,A\n400,G\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert harness.column_types("t")["ref"] == "VARCHAR"
    assert harness.rows("t", "ref") == [("A",), ("G",), ("T",), ("T",)]


def test_true_and_false_stay_boolean(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "id,flag\n1,true\n2,false\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert harness.column_types("t")["flag"] == "BOOLEAN"


def test_text_widening_keeps_file_spelling(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "id,x\n1,1.50\n2,1e5\n3,-669\n")
    write_file(data_dir / "run_2" / "t.csv", "id,x\n4,abc\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert harness.column_types("t")["x"] == "VARCHAR"
    assert harness.rows("t", "x", order_by="id") == [("1.50",), ("1e5",), ("-669",), ("abc",)]


def test_null_values_keep_empty_cells_null(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "id,x\n1,1.5\n2,NA\n3,\n4,1e5\n")
    write_file(data_dir / "run_2" / "t.csv", "id,x\n5,\n6,2\n")
    harness = start([table_collection("t", r"t\.csv$", polars_kwargs={"null_values": ["NA"]})])

    harness.scan()

    assert harness.column_types("t")["x"] == "DOUBLE"
    assert harness.rows("t", "x", order_by="id") == [(1.5,), (None,), (None,), (100000.0,), (None,), (2.0,)]


def test_hash_sign_is_not_a_comment(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "id,name\n#2,b\n3,c\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert harness.rows("t", "id, name") == [("#2", "b"), ("3", "c")]


def test_all_files_failing_removes_table(start: StartHarness, data_dir: Path) -> None:
    only = write_file(data_dir / "run_1" / "t.csv", "a,b\n1,2\n")
    harness = start([table_collection("t", r"t\.csv$")])
    harness.scan()
    only.write_text("a,b\n1,2\n3,4,5\n6,7\n")
    stamp = only.stat().st_mtime_ns + 1_000_000_000
    os.utime(only, ns=(stamp, stamp))

    result = harness.scan()

    assert harness.catalog.tables.get(harness.collection_id("t")) is None
    assert result.files_failed == 1
    assert harness.file("t", "t.csv").status == "failed"


def test_late_text_keeps_earlier_spelling(start: StartHarness, data_dir: Path) -> None:
    write_file(
        data_dir / "run_1" / "t.csv",
        "id,w\nfirst,1.50\nsecond,1e5\n" + "".join(f"r{i},{i}.25\n" for i in range(30_000)),
    )
    write_file(
        data_dir / "run_2" / "t.csv", "id,w\n" + "".join(f"s{i},{i}.5\n" for i in range(30_000)) + "late,not-a-number\n"
    )
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert harness.column_types("t")["w"] == "VARCHAR"
    assert harness.catalog.store.query(
        f"SELECT w FROM data.\"dc_{harness.collection_id('t')}\" WHERE id IN ('first', 'second', 'late') ORDER BY id"
    ) == [("1.50",), ("not-a-number",), ("1e5",)]
    assert harness.table("t").row_count == 60_003


def test_comment_prefix_drops_comment_lines(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "id,v\nx,3\n# note\ny,4\n")
    harness = start([table_collection("t", r"t\.csv$", polars_kwargs={"comment_prefix": "#"})])

    harness.scan()

    assert harness.rows("t", "id, v") == [("x", 3), ("y", 4)]
