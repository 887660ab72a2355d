"""Files that are broken in ways DuckDB alone would not report, or would not survive."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from catalog import FileRecord
from catalog.build import MAX_FILE_COLUMNS
from tests.ingestor.conftest import StartHarness
from tests.ingestor.helpers import Harness, table_collection, write_file

GOOD_ROWS = "a,b\n" + "".join(f"{index},x{index}\n" for index in range(10))


def _file_in_run(harness: Harness, tag: str, run_tag: str) -> FileRecord:
    [record] = [record for record in harness.files(tag) if record.run_tag == run_tag]
    return record


def _gzip_bytes(text: str) -> bytes:
    return gzip.compress(text.encode(), mtime=0)


def test_invalid_utf8_after_sample_fails_only_that_file(start: StartHarness, data_dir: Path) -> None:
    rows = "a,b\n" + "1,x\n" * 50_000
    (data_dir / "run_1").mkdir()
    (data_dir / "run_1" / "t.csv").write_bytes(rows.encode() + b"1,\xff\xfe\n")
    write_file(data_dir / "run_2" / "t.csv", GOOD_ROWS)
    write_file(data_dir / "run_1" / "u.csv", GOOD_ROWS)
    harness = start([table_collection("t", r"t\.csv$"), table_collection("u", r"u\.csv$")])

    harness.scan()

    broken = _file_in_run(harness, "t", "run_1")
    assert broken.status == "failed"
    assert broken.error is not None
    assert "not utf-8" in broken.error
    assert harness.row_count_by_run("t") == {"run_2": 10}
    assert harness.table("u").row_count == 10
    assert harness.catalog.store.query("SELECT 1") == [(1,)]
    rescan = harness.scan()
    assert rescan.project_id == harness.project.id


def test_truncated_gzip_is_failed_not_partial(start: StartHarness, data_dir: Path) -> None:
    whole = _gzip_bytes("a,b\n" + "".join(f"{index},y\n" for index in range(20_000)))
    (data_dir / "run_1").mkdir()
    (data_dir / "run_1" / "t.csv.gz").write_bytes(whole[: len(whole) // 2])
    write_file(data_dir / "run_2" / "t.csv", GOOD_ROWS)
    harness = start([table_collection("t", r"t\.csv")])

    harness.scan()

    broken = harness.file("t", "t.csv.gz")
    assert broken.status == "failed"
    assert broken.error is not None
    assert "truncated or corrupt" in broken.error
    assert harness.row_count_by_run("t") == {"run_2": 10}


def test_corrupt_gzip_does_not_stop_project(start: StartHarness, data_dir: Path) -> None:
    whole = bytearray(_gzip_bytes("a,b\n" + "".join(f"{index},y\n" for index in range(5_000))))
    whole[len(whole) // 2 : len(whole) // 2 + 64] = b"\x00" * 64
    (data_dir / "run_1").mkdir()
    (data_dir / "run_1" / "t.csv.gz").write_bytes(bytes(whole))
    write_file(data_dir / "run_2" / "t.csv", GOOD_ROWS)
    harness = start([table_collection("t", r"t\.csv")])

    harness.scan()

    assert harness.file("t", "t.csv.gz").status == "failed"
    assert harness.row_count_by_run("t") == {"run_2": 10}


def test_time_zone_timestamps_aggregate(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "id,when\n1,2020-01-01 10:00:00+02:00\n2,2020-01-02 10:00:00+02:00\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert harness.table("t").row_count == 2
    assert harness.specs("t")["when"].specs["count"] == 2


def test_symlink_outside_locations_is_skipped(
    start: StartHarness, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    secret = write_file(tmp_path_factory.mktemp("elsewhere") / "secret.csv", "user,password\nroot,hunter2\n")
    write_file(data_dir / "run_1" / "t.csv", GOOD_ROWS)
    os.symlink(secret, data_dir / "run_1" / "s.csv")
    harness = start([table_collection("t", r".*\.csv$")])

    result = harness.scan()

    assert harness.file_names("t") == ["run_1/t.csv"]
    warnings = [warning for scan in result.workflows for warning in scan.warnings]
    assert any("outside the workflow's locations" in warning for warning in warnings)


def test_nextflow_link_into_work_is_read(start: StartHarness, data_dir: Path, tmp_path: Path) -> None:
    # Nextflow publishes results as links into the work/ folder beside the results folder.
    target = write_file(tmp_path / "work" / "ab" / "cdef12" / "t.csv", GOOD_ROWS)
    (data_dir / "run_1").mkdir()
    os.symlink(target, data_dir / "run_1" / "t.csv")
    os.symlink(data_dir / "run_1", data_dir / "run_1" / "loop")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert harness.file_names("t") == ["run_1/t.csv"]
    assert harness.row_count_by_run("t") == {"run_1": 10}


def test_symlink_inside_locations_is_read(start: StartHarness, data_dir: Path) -> None:
    target = write_file(data_dir / "shared" / "t.csv", GOOD_ROWS)
    (data_dir / "run_1").mkdir()
    (data_dir / "run_2").mkdir()
    os.symlink(target, data_dir / "run_1" / "t.csv")
    os.symlink(target, data_dir / "run_2" / "t.csv")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert harness.file_names("t") == ["run_1/t.csv", "run_2/t.csv"]
    assert harness.row_count_by_run("t") == {"run_1": 10, "run_2": 10}


def test_rescan_still_reports_failed_file(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", GOOD_ROWS)
    write_file(data_dir / "run_2" / "t.csv", "a,b\n1,2\n3,4,5\n6,7\n")
    harness = start([table_collection("t", r"t\.csv$")])

    first = harness.scan()
    second = harness.scan()

    assert first.files_failed == 1
    assert second.files_failed == 1
    assert second.tables[0].outcome == "unchanged"


def test_reserved_column_in_other_case_is_replaced(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "DEPICTIO_RUN_ID,val\nexported,1\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert harness.rows("t", "depictio_run_id, val") == [("run_1", 1)]


def test_failure_reason_keeps_duckdb_detail(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "a,b\n" + "1,2\n" * 30_000 + "3,4,5\n")
    write_file(data_dir / "run_2" / "t.csv", GOOD_ROWS)
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    broken = _file_in_run(harness, "t", "run_1")
    assert broken.status == "failed"
    assert broken.error_line == 30_002
    assert broken.error is not None
    assert len(broken.error.split()) > 5


def test_file_outcomes_commit_with_table(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", GOOD_ROWS)
    write_file(data_dir / "run_2" / "t.csv", "a,b\n1,2\n3,4,5\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()
    harness.reopen()
    rescan = harness.scan()

    assert _file_in_run(harness, "t", "run_2").status == "failed"
    assert _file_in_run(harness, "t", "run_1").row_count == 10
    assert rescan.files_failed == 1


def test_too_wide_file_fails_alone(start: StartHarness, data_dir: Path) -> None:
    columns = MAX_FILE_COLUMNS + 1
    header = "sample," + ",".join(f"c{index}" for index in range(columns - 1))
    write_file(data_dir / "run_1" / "t.csv", header + "\n" + "s1" + ",1" * (columns - 1) + "\n")
    write_file(data_dir / "run_2" / "t.csv", "sample,c0\ns2,2\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    wide = next(record for record in harness.files("t") if record.run_tag == "run_1")
    assert wide.status == "failed"
    assert f"the file has {columns} columns" in (wide.error or "")
    assert harness.row_count_by_run("t") == {"run_2": 1}


def test_wide_file_within_limit_loads(start: StartHarness, data_dir: Path) -> None:
    header = "sample," + ",".join(f"c{index}" for index in range(999))
    write_file(data_dir / "run_1" / "t.csv", header + "\n" + "s1" + ",1" * 999 + "\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert len(harness.specs("t")) == 1000 + 3
    assert harness.table("t").row_count == 1


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"PAR1\x15\x04\x15\x00", "is a Parquet file"),
        (bytes(range(256)) * 4, "contains NUL bytes"),
    ],
    ids=["parquet", "random_bytes"],
)
def test_binary_file_in_csv_collection_names_reason(
    start: StartHarness, data_dir: Path, content: bytes, reason: str
) -> None:
    (data_dir / "run_1").mkdir()
    (data_dir / "run_1" / "t.csv").write_bytes(content)
    write_file(data_dir / "run_2" / "t.csv", "a\n1\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    failed = next(record for record in harness.files("t") if record.run_tag == "run_1")
    assert failed.status == "failed"
    assert reason in (failed.error or "")
    assert harness.row_count_by_run("t") == {"run_2": 1}


def test_non_utf8_name_skips_only_that_file(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "a,b\n1,x\n2,y\n")
    # A name that is not UTF-8 is legal on Linux; Python reads it with surrogate escapes.
    with open(os.fsencode(data_dir / "run_1") + b"/\xff\xfe t.csv", "wb") as handle:
        handle.write(b"a,b\n3,z\n")
    os.makedirs(os.fsencode(data_dir) + b"/run_\xff")
    with open(os.fsencode(data_dir) + b"/run_\xff/t.csv", "wb") as handle:
        handle.write(b"a,b\n4,w\n")
    harness = start([table_collection("t", r".*t\.csv$")])

    result = harness.scan()

    assert harness.row_count_by_run("t") == {"run_1": 2}
    warnings = [warning for scan in result.workflows for warning in scan.warnings]
    assert any("\\xff\\xfe t.csv" in warning and "not valid UTF-8" in warning for warning in warnings), warnings
    assert any("run_\\xff'" in warning for warning in warnings), warnings
