"""Aggregating a collection's files into one DuckDB table: formats, columns, types, failures."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.feather
import pyarrow.parquet

from catalog import DriftNote
from tests.ingestor.conftest import StartHarness
from tests.ingestor.helpers import table_collection, write_file

RESERVED = ["depictio_run_id", "depictio_file_id", "aggregation_time"]

# More rows than DuckDB's CSV sniffer samples by default, so with duckdb 1.5.5 it types a
# column from these rows alone and a later value of another type breaks that type.
BEYOND_SNIFF_SAMPLE = 30_000


def _integers_then(value: str, header: str = "n") -> str:
    """Return a one-column CSV of BEYOND_SNIFF_SAMPLE integers followed by `value`."""
    return header + "\n" + "".join(f"{i}\n" for i in range(BEYOND_SNIFF_SAMPLE)) + value + "\n"


# Formats


def test_csv_aggregates(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "sample,reads\nS1,10\nS2,20\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert harness.rows("t", "sample, reads") == [("S1", 10), ("S2", 20)]


def test_tsv_by_format(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.txt", "sample\treads\nS1\t10\n")
    harness = start([table_collection("t", r"t\.txt$", "tsv")])

    harness.scan()

    assert harness.rows("t", "sample, reads") == [("S1", 10)]


def test_tsv_by_suffix(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.tsv", "sample\treads\nS1\t10\n")
    harness = start([table_collection("t", r"t\.tsv$", "csv")])

    harness.scan()

    assert harness.rows("t", "sample, reads") == [("S1", 10)]


def test_gzip_csv_aggregates(start: StartHarness, data_dir: Path) -> None:
    (data_dir / "run_1").mkdir()
    (data_dir / "run_1" / "t.csv.gz").write_bytes(gzip.compress(b"sample,reads\nS1,10\nS2,20\n"))
    harness = start([table_collection("t", r"t\.csv\.gz$")])

    harness.scan()

    assert harness.rows("t", "sample, reads") == [("S1", 10), ("S2", 20)]


def test_parquet_aggregates(start: StartHarness, data_dir: Path) -> None:
    (data_dir / "run_1").mkdir()
    table = pa.table({"sample": ["S1", "S2"], "reads": pa.array([10, 20], pa.int32())})
    pyarrow.parquet.write_table(table, data_dir / "run_1" / "t.parquet")
    harness = start([table_collection("t", r"t\.parquet$", "parquet")])

    harness.scan()

    assert harness.rows("t", "sample, reads") == [("S1", 10), ("S2", 20)]


def test_feather_aggregates(start: StartHarness, data_dir: Path) -> None:
    (data_dir / "run_1").mkdir()
    table = pa.table({"sample": ["S1", "S2"], "gc": [0.41, 0.52]})
    pyarrow.feather.write_feather(table, str(data_dir / "run_1" / "t.feather"))
    harness = start([table_collection("t", r"t\.feather$", "feather")])

    harness.scan()

    assert harness.rows("t", "sample, gc") == [("S1", 0.41), ("S2", 0.52)]


def test_parquet_int_widths_widen(start: StartHarness, data_dir: Path) -> None:
    (data_dir / "run_1").mkdir()
    (data_dir / "run_2").mkdir()
    pyarrow.parquet.write_table(pa.table({"reads": pa.array([1], pa.int32())}), data_dir / "run_1" / "t.parquet")
    pyarrow.parquet.write_table(pa.table({"reads": pa.array([2], pa.int64())}), data_dir / "run_2" / "t.parquet")
    harness = start([table_collection("t", r"t\.parquet$", "parquet")])

    harness.scan()

    assert harness.column_types("t")["reads"] == "BIGINT"
    assert harness.rows("t", "reads, depictio_run_id") == [(1, "run_1"), (2, "run_2")]


# Columns that depictiod adds


def test_rows_carry_run_tag(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "reads\n1\n2\n")
    write_file(data_dir / "run_2" / "t.csv", "reads\n3\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert harness.row_count_by_run("t") == {"run_1": 2, "run_2": 1}


def test_rows_carry_file_id(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "reads\n1\n")
    write_file(data_dir / "run_2" / "t.csv", "reads\n3\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    expected = sorted((record.run_tag, record.id) for record in harness.files("t"))
    assert harness.rows("t", "depictio_run_id, depictio_file_id") == expected


def test_rows_carry_aggregation_time(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "reads\n1\n2\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert harness.rows("t", "DISTINCT aggregation_time") == [(harness.table("t").aggregation_time,)]


def test_reserved_columns_come_last(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "sample,reads\nS1,1\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert list(harness.column_types("t")) == ["sample", "reads", *RESERVED]


def test_file_reserved_columns_are_replaced(start: StartHarness, data_dir: Path) -> None:
    write_file(
        data_dir / "run_1" / "t.csv",
        "reads,aggregation_time,depictio_run_id\n1,2020-01-01 00:00:00,exported_run\n",
    )
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert list(harness.column_types("t")) == ["reads", *RESERVED]
    assert harness.rows("t", "depictio_run_id") == [("run_1",)]
    assert harness.rows("t", "aggregation_time") == [(harness.table("t").aggregation_time,)]


# Columns and types across files


def test_columns_unite_by_name(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "sample,reads\nS1,10\n")
    write_file(data_dir / "run_2" / "t.csv", "gc,sample\n0.5,S2\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert list(harness.column_types("t")) == ["sample", "reads", "gc", *RESERVED]
    assert harness.rows("t", "sample, reads, gc") == [("S1", 10, None), ("S2", None, 0.5)]


def test_int_and_float_widen_to_double(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "value\n1\n2\n")
    write_file(data_dir / "run_2" / "t.csv", "value\n2.5\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert harness.column_types("t")["value"] == "DOUBLE"
    assert harness.rows("t", "value") == [(1.0,), (2.0,), (2.5,)]


def test_widening_is_recorded_as_drift(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "value\n1\n2\n")
    write_file(data_dir / "run_2" / "t.csv", "value\n2.5\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    integer_file_id = next(record.id for record in harness.files("t") if record.run_tag == "run_1")
    assert harness.table("t").drift == [
        DriftNote(file_id=integer_file_id, column="value", file_type="BIGINT", table_type="DOUBLE")
    ]


def test_date_and_timestamp_widen_to_timestamp(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "day\n2024-01-02\n")
    write_file(data_dir / "run_2" / "t.csv", "day\n2024-01-03 10:30:00\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert harness.column_types("t")["day"] == "TIMESTAMP"
    assert len(harness.rows("t", "day")) == 2


def test_empty_column_stays_numeric(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "sample,score\nS1,2.5\n")
    write_file(data_dir / "run_2" / "t.csv", "sample,score\nS2,\nS3,\n")
    write_file(data_dir / "run_3" / "t.csv", "sample,score\nS4,7\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert harness.column_types("t")["score"] == "DOUBLE"
    assert harness.rows("t", "sample, score") == [("S1", 2.5), ("S2", None), ("S3", None), ("S4", 7.0)]


def test_text_and_int_widen_to_text(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "value\n1\n")
    write_file(data_dir / "run_2" / "t.csv", "value\nhigh\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert harness.column_types("t")["value"] == "VARCHAR"
    assert harness.rows("t", "value") == [("1",), ("high",)]


def test_text_after_sniff_sample_loads(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", _integers_then("x"))
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert harness.file("t", "t.csv").status == "aggregated"
    assert harness.column_types("t")["n"] == "VARCHAR"
    assert harness.rows("t", "count(*)", order_by="1") == [(BEYOND_SNIFF_SAMPLE + 1,)]
    assert harness.rows("t", "n", order_by="1")[-1] == ("x",)


def test_sniff_widening_keeps_other_files(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", _integers_then("x"))
    write_file(data_dir / "run_2" / "t.csv", "n\n7\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert harness.column_types("t")["n"] == "VARCHAR"
    assert harness.row_count_by_run("t") == {"run_1": BEYOND_SNIFF_SAMPLE + 1, "run_2": 1}


def test_sniff_widening_records_drift(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", _integers_then("x"))
    write_file(data_dir / "run_2" / "t.csv", "n\n7\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    # run_2's integers were widened to text because of run_1's last row, so that is drift.
    integer_file_id = next(record.id for record in harness.files("t") if record.run_tag == "run_2")
    expected = DriftNote(file_id=integer_file_id, column="n", file_type="BIGINT", table_type="VARCHAR")
    assert expected in harness.table("t").drift


def test_column_case_clash_spares_scan(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "Sample,reads\nS1,1\n")
    write_file(data_dir / "run_2" / "t.csv", "sample,reads\nS2,2\n")
    write_file(data_dir / "run_1" / "other.csv", "reads\n5\n")
    harness = start([table_collection("t", r"t\.csv$"), table_collection("other", r"other\.csv$")])

    results = harness.ingestor.scan_all()

    assert harness.ingestor.status.last_error is None
    assert len(results) == 1
    assert harness.rows("other", "reads") == [(5,)]
    assert {record.status for record in harness.files("t")} <= {"aggregated", "failed"}


# Files that cannot be read


def test_ragged_row_fails_file(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "a,b\n1,2\n3,4,5\n6,7\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    record = harness.file("t", "t.csv")
    assert record.status == "failed"
    assert record.error is not None and "line 3" in record.error
    assert record.error_line == 3


def test_ragged_row_spares_other_files(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "a,b\n1,2\n3,4,5\n6,7\n")
    write_file(data_dir / "run_2" / "t.csv", "a,b\n8,9\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert harness.row_count_by_run("t") == {"run_2": 1}
    assert [record.status for record in harness.files("t")] == ["failed", "aggregated"]


def test_late_ragged_row_names_line(start: StartHarness, data_dir: Path) -> None:
    text = "a,b\n" + "".join(f"{i},{i}\n" for i in range(BEYOND_SNIFF_SAMPLE)) + "1,2,3\n"
    write_file(data_dir / "run_1" / "t.csv", text)
    write_file(data_dir / "run_2" / "t.csv", "a,b\n8,9\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    record = next(record for record in harness.files("t") if record.run_tag == "run_1")
    ragged_line = BEYOND_SNIFF_SAMPLE + 2
    assert record.status == "failed"
    assert record.error is not None and str(ragged_line) in record.error
    assert record.error_line == ragged_line
    assert harness.row_count_by_run("t") == {"run_2": 1}


def test_empty_file_fails_with_reason(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "")
    write_file(data_dir / "run_2" / "t.csv", "reads\n1\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    record = next(record for record in harness.files("t") if record.run_tag == "run_1")
    assert record.status == "failed"
    assert record.error is not None and "empty" in record.error
    assert harness.row_count_by_run("t") == {"run_2": 1}


def test_invalid_parquet_fails_file(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.parquet", "this is not parquet\n")
    (data_dir / "run_2").mkdir()
    pyarrow.parquet.write_table(pa.table({"reads": [1]}), data_dir / "run_2" / "t.parquet")
    harness = start([table_collection("t", r"t\.parquet$", "parquet")])

    harness.scan()

    record = next(record for record in harness.files("t") if record.run_tag == "run_1")
    assert record.status == "failed"
    assert record.error
    assert harness.row_count_by_run("t") == {"run_2": 1}


def test_file_statuses_record_row_counts(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "reads\n1\n2\n3\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    record = harness.file("t", "t.csv")
    assert record.status == "aggregated"
    assert record.row_count == 3
    assert record.error is None


# Collection settings and column specs


def test_keep_columns_selects_columns(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "sample,reads,gc\nS1,10,0.5\n")
    harness = start([table_collection("t", r"t\.csv$", keep_columns=["sample", "gc"])])

    harness.scan()

    assert list(harness.column_types("t")) == ["sample", "gc", *RESERVED]


def test_columns_description_in_specs(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "sample,reads\nS1,10\n")
    harness = start([table_collection("t", r"t\.csv$", columns_description={"reads": "Reads after trimming"})])

    harness.scan()

    specs = harness.specs("t")
    assert specs["reads"].description == "Reads after trimming"
    assert specs["sample"].description is None


def test_column_specs_describe_numbers(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "sample,reads\nS1,10\nS2,\nS3,30\nS4,30\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    reads = harness.specs("t")["reads"]
    assert reads.type == "int64"
    assert reads.specs["count"] == 3
    assert reads.specs["nulls"] == 1
    assert reads.specs["min"] == 10
    assert reads.specs["max"] == 30
    assert reads.specs["unique"] == 2


def test_column_specs_describe_text(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "sample,reads\nS1,10\nS2,\nS1,30\n,30\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    sample = harness.specs("t")["sample"]
    assert sample.type == "object"
    assert sample.specs["count"] == 3
    assert sample.specs["nulls"] == 1
    assert sample.specs["min"] == "S1"
    assert sample.specs["max"] == "S2"
    assert sample.specs["unique"] == 2


def test_column_specs_cover_every_column(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "sample,reads\nS1,10\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert list(harness.specs("t")) == ["sample", "reads", *RESERVED]


def test_table_record_counts_rows_and_columns(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "sample,reads\nS1,10\nS2,20\n")
    write_file(data_dir / "run_2" / "t.csv", "sample,reads\nS3,30\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    table = harness.table("t")
    assert table.row_count == 3
    assert table.column_count == 2 + len(RESERVED)
    assert table.aggregation_version == 1
