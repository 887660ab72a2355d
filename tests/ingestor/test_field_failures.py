"""Faults that people running workflow catalogs have hit, each written as the correct behaviour.

Every test names the entry of the field-failure list it covers in a comment. Tests of the
running service (entries 2 and 12) are in tests/e2e/test_field_failures_live.py. Older tests
that cover the same kinds stay where they are:

- entry 11: test_symlink_outside_locations_is_skipped, test_symlink_inside_locations_is_read
  (test_hostile_files.py), test_symlinked_folders_are_not_followed (test_discovery.py);
- entry 16: test_ragged_row_fails_file, test_late_ragged_row_names_line (test_aggregate.py),
  test_hash_sign_is_not_a_comment, test_comment_prefix_drops_comment_lines,
  test_crlf_and_lf_files_both_load (test_csv_dialects.py);
- entry 17: test_gzip_csv_aggregates (test_aggregate.py), test_truncated_gzip_is_failed_not_partial
  (test_hostile_files.py);
- entry 19: test_columns_unite_by_name, test_int_and_float_widen_to_double,
  test_text_and_int_widen_to_text, test_widening_is_recorded_as_drift (test_aggregate.py);
- entry 20: test_column_case_clash_spares_scan (test_aggregate.py).
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from catalog import Catalog, FileRecord
from catalog.build import new_reader
from config import load_settings
from config.errors import ConfigError
from config.settings import CatalogSettings
from tests.ingestor.conftest import StartHarness
from tests.ingestor.helpers import Harness, table_collection, write_file, write_project

BOM = "\ufeff"
RESERVED = ["depictio_run_id", "depictio_file_id", "aggregation_time"]


def _file_in_run(harness: Harness, tag: str, run_tag: str) -> FileRecord:
    [record] = [record for record in harness.files(tag) if record.run_tag == run_tag]
    return record


def _warnings(result: Any) -> list[str]:
    return [warning for scan in result.workflows for warning in scan.warnings]


def _stored_column_names(harness: Harness, tag: str) -> list[str]:
    """Return every column name that the catalog stores for a collection: table and specs."""
    return [*harness.column_types(tag), *harness.specs(tag)]


# Entry 1: a scan that finds nothing must report it, and a scan with nothing new stays quiet.


def test_run_pattern_matching_nothing_warns(
    start: StartHarness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Entry 1: the location is a run folder itself, so no subfolder matches `^run_`.
    location = tmp_path / "projA" / "run_A"
    write_file(location / "tables" / "stats.tsv", "sample\treads\nS1\t10\n")
    harness = start([table_collection("stats", r"stats\.tsv$", "tsv")], location="projA/run_A", runs_regex="^run_")

    with caplog.at_level(logging.WARNING):
        result = harness.scan()

    [run_warning] = [warning for warning in _warnings(result) if warning.startswith("no subfolder of location")]
    assert str(location) in run_warning
    assert "'^run_'" in run_warning
    assert "tables/" in run_warning
    assert run_warning in caplog.text


def test_collection_matching_nothing_has_status(start: StartHarness, tmp_path: Path) -> None:
    # Entry 1: the scan report gives each collection a status besides the warning.
    write_file(tmp_path / "projA" / "run_A" / "tables" / "stats.tsv", "sample\treads\nS1\t10\n")
    harness = start([table_collection("stats", r"stats\.tsv$", "tsv")], location="projA/run_A", runs_regex="^run_")

    result = harness.scan()

    [collection] = result.workflows[0].collections
    assert collection.status == "no_files"
    assert collection.files == 0
    assert any("collection 'stats' matched no file" in warning for warning in _warnings(result))
    [report] = harness.catalog.scans.list([harness.project.id or ""], limit=10, offset=0)[0]
    assert report.details["collections"][0]["status"] == "no_files"


def test_rescan_with_nothing_new_is_quiet(start: StartHarness, data_dir: Path) -> None:
    # Entry 1: "everything already registered" is no warning, and differs from "nothing found".
    write_file(data_dir / "run_1" / "stats.tsv", "sample\treads\nS1\t10\n")
    harness = start([table_collection("stats", r"stats\.tsv$", "tsv")], runs_regex="^run_")
    harness.scan()

    result = harness.scan()

    [collection] = result.workflows[0].collections
    assert _warnings(result) == []
    assert collection.status == "ok"
    assert collection.files == 1
    assert result.workflows[0].counts.files_added == 0


def test_empty_workflow_spares_other_workflows(tmp_path: Path) -> None:
    # Entry 1: one workflow whose location contains no run must not stop the next one.
    write_file(tmp_path / "good" / "run_1" / "stats.tsv", "sample\treads\nS1\t10\n")
    (tmp_path / "empty").mkdir()
    workflows = [
        {
            "name": name,
            "engine": {"name": "snakemake"},
            "data_location": {"structure": "sequencing-runs", "locations": [name], "runs_regex": "^run_"},
            "data_collections": [table_collection(f"stats_{name}", r"stats\.tsv$", "tsv")],
        }
        for name in ("empty", "good")
    ]
    project_path = tmp_path / "project.yaml"
    project_path.write_text(yaml.safe_dump({"name": "two-workflows", "workflows": workflows}), encoding="utf-8")
    harness = Harness(tmp_path, project_path)
    try:
        result = harness.scan()
        good = next(workflow for workflow in harness.project.workflows if workflow.name == "good")
        assert good.data_collections[0].id is not None
        table = harness.catalog.tables.get(good.data_collections[0].id)
    finally:
        harness.close()

    assert [scan.runs for scan in result.workflows] == [0, 1]
    assert table is not None
    assert table.row_count == 1


# Entry 2: several collections in one workflow each keep every run.


def test_second_collection_keeps_every_run(start: StartHarness, data_dir: Path) -> None:
    # Entry 2: three runs, then a fourth, each with one file per collection.
    for run in (1, 2, 3):
        write_file(data_dir / f"run_{run}" / "qc" / "stats.tsv", f"sample\treads\nS{run}\t{run}\n")
        write_file(data_dir / f"run_{run}" / "counts" / "genes.tsv", f"gene\tcount\nG{run}\t{run}\n")
    harness = start(
        [table_collection("stats", r"stats\.tsv$", "tsv"), table_collection("genes", r"genes\.tsv$", "tsv")]
    )
    harness.scan()
    write_file(data_dir / "run_4" / "qc" / "stats.tsv", "sample\treads\nS4\t4\n")
    write_file(data_dir / "run_4" / "counts" / "genes.tsv", "gene\tcount\nG4\t4\n")

    result = harness.scan()

    every_run = {"run_1": 1, "run_2": 1, "run_3": 1, "run_4": 1}
    assert harness.row_count_by_run("stats") == every_run
    assert harness.row_count_by_run("genes") == every_run
    assert sorted(record.run_tag for record in harness.files("genes")) == list(every_run)
    assert {collection.tag: collection.files for collection in result.workflows[0].collections} == {
        "stats": 4,
        "genes": 4,
    }


# Entry 11: Nextflow results that are links into work/.


def _nextflow_run(tmp_path: Path, data_dir: Path, text: str) -> Path:
    """Write work/ab/cdef12/stats.tsv and link data/run_1/stats.tsv to it; return the target."""
    target = write_file(tmp_path / "work" / "ab" / "cdef12" / "stats.tsv", text)
    (data_dir / "run_1").mkdir()
    os.symlink(target, data_dir / "run_1" / "stats.tsv")
    return target


def test_link_is_catalogued_under_results_path(start: StartHarness, data_dir: Path, tmp_path: Path) -> None:
    # Entry 11: read through the target, registered where it was found, target recorded.
    target = _nextflow_run(tmp_path, data_dir, "sample\treads\nS1\t10\nS2\t20\n")
    harness = start([table_collection("stats", r"stats\.tsv$", "tsv")])

    harness.scan()

    record = harness.file("stats", "stats.tsv")
    assert record.file_location == str(data_dir.resolve() / "run_1" / "stats.tsv")
    assert record.link_target == str(target.resolve())
    assert harness.rows("stats", "sample, reads") == [("S1", 10), ("S2", 20)]


def test_change_at_link_target_is_read(start: StartHarness, data_dir: Path, tmp_path: Path) -> None:
    # Entry 11: a change made in work/ reaches the table through the link.
    target = _nextflow_run(tmp_path, data_dir, "sample\treads\nS1\t10\n")
    harness = start([table_collection("stats", r"stats\.tsv$", "tsv")])
    harness.scan()
    target.write_text("sample\treads\nS1\t11\nS2\t22\n", encoding="utf-8")

    harness.scan()

    assert harness.rows("stats", "sample, reads") == [("S1", 11), ("S2", 22)]


def test_link_cycles_end_the_walk(start: StartHarness, data_dir: Path, tmp_path: Path) -> None:
    # Entry 11: a folder link back to its run and a link to itself neither recurse nor stop the scan.
    _nextflow_run(tmp_path, data_dir, "sample\treads\nS1\t10\n")
    os.symlink(data_dir / "run_1", data_dir / "run_1" / "loop")
    os.symlink(data_dir / "run_1" / "self.tsv", data_dir / "run_1" / "self.tsv")
    harness = start([table_collection("stats", r"(stats|self)\.tsv$", "tsv")])

    harness.scan()

    assert harness.row_count_by_run("stats") == {"run_1": 1}
    cycle = harness.file("stats", "self.tsv")
    assert cycle.status == "failed"
    assert cycle.error is not None and "symbolic link" in cycle.error


def test_dead_link_after_cleanup_is_failed(start: StartHarness, data_dir: Path, tmp_path: Path) -> None:
    # Entry 11: after `nextflow clean` removes work/, the file is marked broken and its rows go.
    target = _nextflow_run(tmp_path, data_dir, "sample\treads\nS1\t10\n")
    write_file(data_dir / "run_2" / "stats.tsv", "sample\treads\nS2\t20\n")
    harness = start([table_collection("stats", r"stats\.tsv$", "tsv")])
    harness.scan()
    shutil.rmtree(tmp_path / "work")

    result = harness.scan()

    dead = _file_in_run(harness, "stats", "run_1")
    assert dead.status == "failed"
    assert dead.error is not None and str(target.resolve()) in dead.error
    assert dead.link_target == str(target.resolve())
    assert harness.row_count_by_run("stats") == {"run_2": 1}
    assert result.files_failed == 1


# Entry 15: a UTF-8 byte-order mark before the first column name.


def test_bom_header_unites_with_plain_header(start: StartHarness, data_dir: Path) -> None:
    # Entry 15: run_1 saved with a BOM, run_2 without; one `sample` column.
    write_file(data_dir / "run_1" / "samplesheet.csv", BOM + "sample,group\nS1,a\nS2,b\n")
    write_file(data_dir / "run_2" / "samplesheet.csv", "sample,group\nS3,a\n")
    harness = start([table_collection("sheet", r"samplesheet\.csv$")])

    harness.scan()

    assert list(harness.column_types("sheet")) == ["sample", "group", *RESERVED]
    assert all(BOM not in name for name in _stored_column_names(harness, "sheet"))
    assert harness.rows("sheet", "sample") == [("S1",), ("S2",), ("S3",)]


def test_bom_is_removed_on_every_text_path(start: StartHarness, data_dir: Path) -> None:
    # Entry 15: gzip, a `#` header, duplicate names and a comment line all start after the BOM.
    (data_dir / "run_1").mkdir()
    (data_dir / "run_1" / "s.tsv.gz").write_bytes(gzip.compress((BOM + "sample\tgroup\nS1\ta\n").encode()))
    write_file(data_dir / "run_2" / "s.tsv", BOM + "#sample\tgroup\nS2\tb\n")
    write_file(data_dir / "run_3" / "s.tsv", BOM + "sample\tgroup\tgroup\nS3\tc\td\n")
    write_file(data_dir / "run_4" / "s.tsv", BOM + "# exported by a spreadsheet\nsample\tgroup\nS4\te\n")
    harness = start([table_collection("sheet", r"s\.tsv", "tsv")])

    harness.scan()

    assert [record.status for record in harness.files("sheet")] == ["aggregated"] * 4
    assert list(harness.column_types("sheet")) == ["sample", "group", "group_1", *RESERVED]
    assert all(BOM not in name for name in _stored_column_names(harness, "sheet"))
    assert harness.rows("sheet", "sample") == [("S1",), ("S2",), ("S3",), ("S4",)]


def test_bom_keeps_error_line_numbers(start: StartHarness, data_dir: Path) -> None:
    # Entry 15: the line number of a broken row counts the BOM line as line 1.
    write_file(data_dir / "run_1" / "s.csv", BOM + "sample,group\nS1,a\nS2,b,c\n")
    harness = start([table_collection("sheet", r"s\.csv$")])

    harness.scan()

    record = harness.file("sheet", "s.csv")
    assert record.status == "failed"
    assert record.error_line == 3


# Entry 16: comment lines, `#` headers, short rows and mixed separators.

FEATURECOUNTS = (
    '# Program:featureCounts v2.0.1; Command:"featureCounts" "-a" "genes.gtf" "-o" "counts.txt" "s1.bam"\n'
    "Geneid\tChr\tStart\tEnd\tStrand\tLength\ts1.bam\n"
    "G1\tchr1\t1\t100\t+\t100\t5\n"
    "G2\tchr1\t200\t300\t-\t101\t7\n"
)


def test_leading_comment_line_is_skipped(start: StartHarness, data_dir: Path) -> None:
    # Entry 16 (a): a featureCounts table; the program line is not the header.
    write_file(data_dir / "run_1" / "counts.txt", FEATURECOUNTS)
    harness = start([table_collection("counts", r"counts\.txt$", "tsv")])

    harness.scan()

    record = harness.file("counts", "counts.txt")
    assert list(harness.column_types("counts"))[:7] == ["Geneid", "Chr", "Start", "End", "Strand", "Length", "s1.bam"]
    assert harness.rows("counts", 'Geneid, Strand, "s1.bam"') == [("G1", "+", 5), ("G2", "-", 7)]
    assert record.read_details["comment_lines"] == 1
    assert record.read_details["header_line"] == 2


def test_hash_header_is_kept_without_hash(start: StartHarness, data_dir: Path) -> None:
    # Entry 16 (b): `#sample<TAB>reads` is the header; the name loses its `#`.
    write_file(data_dir / "run_1" / "t.tsv", "#sample\treads\nS1\t10\nS2\t20\n")
    write_file(data_dir / "run_2" / "t.tsv", "sample\treads\nS3\t30\n")
    harness = start([table_collection("t", r"t\.tsv$", "tsv")])

    harness.scan()

    assert list(harness.column_types("t")) == ["sample", "reads", *RESERVED]
    assert harness.rows("t", "sample, reads") == [("S1", 10), ("S2", 20), ("S3", 30)]
    assert _file_in_run(harness, "t", "run_1").read_details["hash_header"] is True


def test_meta_lines_before_hash_header(start: StartHarness, data_dir: Path) -> None:
    # Entry 16 (a, b): VCF-style `##` lines are comments, the `#CHROM` line is the header.
    text = "##fileformat=VCFv4.2\n##source=caller\n#CHROM\tPOS\tID\nchr1\t100\trs1\nchr2\t200\trs2\n"
    write_file(data_dir / "run_1" / "calls.tsv", text)
    harness = start([table_collection("calls", r"calls\.tsv$", "tsv")])

    harness.scan()

    assert list(harness.column_types("calls")) == ["CHROM", "POS", "ID", *RESERVED]
    assert harness.rows("calls", "CHROM, POS") == [("chr1", 100), ("chr2", 200)]
    assert harness.file("calls", "calls.tsv").read_details["comment_lines"] == 2


@pytest.mark.parametrize(
    "text",
    [
        "a,b,c,d\n1,2,3,4\n5,6,7\n8,9,10,11\n12,13,14\n",
        # A quote character sends the count to DuckDB rather than the line count for small files.
        'a,b,c,d\n1,2,3,4\n5,6,"7"\n8,9,10,11\n12,13,14\n',
    ],
    ids=["counted_by_lines", "counted_by_duckdb"],
)
def test_short_rows_are_padded_and_counted(start: StartHarness, data_dir: Path, text: str) -> None:
    # Entry 16 (c): four header columns, two rows of three.
    write_file(data_dir / "run_1" / "t.csv", text)
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    record = harness.file("t", "t.csv")
    assert record.status == "aggregated"
    assert record.row_count == 4
    assert record.read_details["short_rows"] == 2
    assert record.read_details["first_short_row_line"] == 3
    assert harness.rows("t", "a, d", order_by="a") == [(1, 4), (5, None), (8, 11), (12, None)]


def test_comma_and_tab_runs_share_columns(start: StartHarness, data_dir: Path) -> None:
    # Entry 16 (d): the separator is detected per file and stored with it.
    write_file(data_dir / "run_1" / "stats.txt", "sample,reads\nS1,10\n")
    write_file(data_dir / "run_2" / "stats.txt", "sample\treads\nS2\t20\n")
    harness = start([table_collection("stats", r"stats\.txt$", "csv")])

    harness.scan()

    assert list(harness.column_types("stats")) == ["sample", "reads", *RESERVED]
    assert harness.rows("stats", "sample, reads") == [("S1", 10), ("S2", 20)]
    assert _file_in_run(harness, "stats", "run_1").read_details["delimiter"] == ","
    assert _file_in_run(harness, "stats", "run_2").read_details["delimiter"] == "\t"


def test_pipe_separated_file_is_not_split_on_commas(start: StartHarness, data_dir: Path) -> None:
    # Entry 16 (d): values that contain commas do not make the comma the separator.
    write_file(data_dir / "run_1" / "t.csv", "sample|note\nS1|low, retried\nS2|ok\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert harness.rows("t", "sample, note") == [("S1", "low, retried"), ("S2", "ok")]


def test_header_only_file_is_flagged(start: StartHarness, data_dir: Path) -> None:
    # Entry 16: non-empty content that yields no row is failed, not "aggregated" with 0 rows.
    write_file(data_dir / "run_1" / "t.tsv", "sample\treads\n")
    write_file(data_dir / "run_2" / "t.tsv", "# all rows were filtered out\n# nothing to report\n")
    write_file(data_dir / "run_3" / "t.tsv", "sample\treads\nS3\t30\n")
    harness = start([table_collection("t", r"t\.tsv$", "tsv")])

    result = harness.scan()

    for run_tag in ("run_1", "run_2"):
        record = _file_in_run(harness, "t", run_tag)
        assert record.status == "failed", run_tag
        assert record.error is not None and "no data rows" in record.error
    assert harness.row_count_by_run("t") == {"run_3": 1}
    assert result.files_failed == 2


def test_empty_parquet_is_flagged(start: StartHarness, data_dir: Path) -> None:
    # Entry 16: the 0-row check covers binary formats as well.
    import pyarrow as pa
    import pyarrow.parquet

    (data_dir / "run_1").mkdir()
    (data_dir / "run_2").mkdir()
    pyarrow.parquet.write_table(pa.table({"reads": pa.array([], pa.int64())}), data_dir / "run_1" / "t.parquet")
    pyarrow.parquet.write_table(pa.table({"reads": [5]}), data_dir / "run_2" / "t.parquet")
    harness = start([table_collection("t", r"t\.parquet$", "parquet")])

    harness.scan()

    assert _file_in_run(harness, "t", "run_1").status == "failed"
    assert harness.row_count_by_run("t") == {"run_2": 1}


def test_collection_pins_separator(start: StartHarness, data_dir: Path) -> None:
    # Entry 16: a configured separator wins over detection.
    write_file(data_dir / "run_1" / "t.csv", "a,b;c\n1,2;3\n")
    harness = start([table_collection("t", r"t\.csv$", polars_kwargs={"separator": ";"})])

    harness.scan()

    assert harness.rows("t", '"a,b", c') == [("1,2", 3)]
    assert harness.file("t", "t.csv").read_details["delimiter"] == ";"


def test_collection_pins_comment_prefix(start: StartHarness, data_dir: Path) -> None:
    # Entry 16: with comment_prefix "#", a `#` line is a comment even where it could be a header.
    write_file(data_dir / "run_1" / "t.tsv", "#x\ty\nsample\treads\nS1\t10\n")
    harness = start([table_collection("t", r"t\.tsv$", "tsv", polars_kwargs={"comment_prefix": "#"})])

    harness.scan()

    assert harness.rows("t", "sample, reads") == [("S1", 10)]


def test_collection_pins_header_row(start: StartHarness, data_dir: Path) -> None:
    # Entry 16: skip_rows places the header; the skipped lines need not look like comments.
    write_file(data_dir / "run_1" / "t.tsv", "Report generated 2024-01-01\tby tool\nsample\treads\nS1\t10\n")
    harness = start([table_collection("t", r"t\.tsv$", "tsv", polars_kwargs={"skip_rows": 1})])

    harness.scan()

    assert harness.rows("t", "sample, reads") == [("S1", 10)]
    assert harness.file("t", "t.tsv").read_details["header_line"] == 2


# Entry 17: compressed files, found by their content.


def _bgzip(data: bytes, block_size: int = 4096) -> bytes:
    """Return `data` compressed as BGZF (the bgzip format): one gzip member per block, then the EOF member."""
    members = []
    for start in range(0, len(data), block_size):
        block = data[start : start + block_size]
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        deflated = compressor.compress(block) + compressor.flush()
        # Fixed header with FEXTRA: the BC subfield stores the member size minus one.
        header = b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff\x06\x00BC\x02\x00"
        size = len(header) + 2 + len(deflated) + 8
        trailer = struct.pack("<II", zlib.crc32(block), len(block))
        members.append(header + struct.pack("<H", size - 1) + deflated + trailer)
    eof = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
    return b"".join(members) + eof


def test_gzip_named_txt_is_read(start: StartHarness, data_dir: Path) -> None:
    # Entry 17: a gzip file without the .gz suffix.
    (data_dir / "run_1").mkdir()
    (data_dir / "run_1" / "counts.txt").write_bytes(gzip.compress(b"gene\tcount\nG1\t5\nG2\t7\n"))
    harness = start([table_collection("counts", r"counts\.txt$", "tsv")])

    harness.scan()

    assert harness.rows("counts", "gene, count") == [("G1", 5), ("G2", 7)]
    assert harness.file("counts", "counts.txt").read_details["compression"] == "gzip"


def test_plain_text_named_gz_is_read(start: StartHarness, data_dir: Path) -> None:
    # Entry 17: a .gz suffix on an uncompressed file.
    write_file(data_dir / "run_1" / "counts.tsv.gz", "gene\tcount\nG1\t5\n")
    harness = start([table_collection("counts", r"counts\.tsv\.gz$", "tsv")])

    harness.scan()

    assert harness.rows("counts", "gene, count") == [("G1", 5)]


def test_bgzip_file_is_read_to_the_end(start: StartHarness, data_dir: Path) -> None:
    # Entry 17: many gzip members; every decompressed line after the header is a row.
    text = "gene\tcount\n" + "".join(f"G{index}\t{index}\n" for index in range(20_000))
    (data_dir / "run_1").mkdir()
    (data_dir / "run_1" / "counts.tsv.gz").write_bytes(_bgzip(text.encode()))
    harness = start([table_collection("counts", r"counts\.tsv\.gz$", "tsv")])

    harness.scan()

    lines = gzip.decompress((data_dir / "run_1" / "counts.tsv.gz").read_bytes()).decode().splitlines()
    assert harness.table("counts").row_count == len(lines) - 1
    assert harness.rows("counts", "max(count)", order_by="1") == [(19_999,)]


def test_empty_gzip_is_an_empty_file(start: StartHarness, data_dir: Path) -> None:
    # Entry 17: a gzip stream of nothing fails as an empty file does.
    (data_dir / "run_1").mkdir()
    (data_dir / "run_1" / "counts.tsv.gz").write_bytes(gzip.compress(b""))
    write_file(data_dir / "run_2" / "counts.tsv", "gene\tcount\nG1\t5\n")
    harness = start([table_collection("counts", r"counts\.tsv", "tsv")])

    harness.scan()

    record = _file_in_run(harness, "counts", "run_1")
    assert record.status == "failed"
    assert record.error is not None and "empty" in record.error
    assert harness.row_count_by_run("counts") == {"run_2": 1}


def test_tsv_and_tsv_gz_share_a_collection(start: StartHarness, data_dir: Path) -> None:
    # Entry 17: one pattern matches both, and both are read.
    write_file(data_dir / "run_1" / "counts.tsv", "gene\tcount\nG1\t5\n")
    (data_dir / "run_2").mkdir()
    (data_dir / "run_2" / "counts.tsv.gz").write_bytes(gzip.compress(b"gene\tcount\nG2\t7\n"))
    harness = start([table_collection("counts", r"counts\.tsv(\.gz)?$", "tsv")])

    harness.scan()

    assert harness.rows("counts", "gene, count, depictio_run_id") == [("G1", 5, "run_1"), ("G2", 7, "run_2")]


# Entry 18: explicit DuckDB memory, threads and temporary folder.


def test_catalog_settings_reach_duckdb(tmp_path: Path) -> None:
    # Entry 18: the catalog and the file reader both run with the configured limits.
    settings = CatalogSettings(
        path=str(tmp_path / "c.duckdb"), memory_limit="1GB", threads=1, temp_directory=str(tmp_path / "spill")
    )
    opened = Catalog(settings.path, settings)
    try:
        catalog_row = opened.store.query(
            "SELECT current_setting('memory_limit'), current_setting('threads'), current_setting('temp_directory')"
        )
        reader = new_reader(opened.store.reader_config)
        try:
            reader_row = reader.execute(
                "SELECT current_setting('memory_limit'), current_setting('threads'), current_setting('temp_directory')"
            ).fetchall()
        finally:
            reader.close()
    finally:
        opened.close()

    # The limit is shared: half for the catalog, half for reading files (500 MB = 476.8 MiB).
    assert catalog_row == [("476.8 MiB", 1, str(tmp_path / "spill" / "catalog"))]
    assert reader_row == [("476.8 MiB", 1, str(tmp_path / "spill" / "reader"))]


def test_memory_settings_load_from_toml(tmp_path: Path) -> None:
    # Entry 18: depictio.toml [catalog] sets the limits; relative folders start at the file.
    path = tmp_path / "depictio.toml"
    path.write_text('[catalog]\nmemory_limit = "2GB"\nthreads = 2\ntemp_directory = "spill"\n', encoding="utf-8")

    settings = load_settings(str(path), environ={})

    assert settings.catalog.memory_limit == "2GB"
    assert settings.catalog.threads == 2
    assert settings.catalog.temp_directory == str(tmp_path / "spill")


@pytest.mark.parametrize("value", ["lots", "0GB", "150%", "-1MB"])
def test_invalid_memory_limit_is_rejected(tmp_path: Path, value: str) -> None:
    # Entry 18: a limit DuckDB would refuse fails at start, naming the key.
    path = tmp_path / "depictio.toml"
    path.write_text(f'[catalog]\nmemory_limit = "{value}"\n', encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), environ={})

    assert "catalog.memory_limit" in str(caught.value)


def test_file_over_memory_limit_fails_alone(tmp_path: Path) -> None:
    # Entry 18: one value larger than the reader's memory fails its file; the others load.
    data_dir = tmp_path / "data"
    write_file(data_dir / "run_1" / "t.csv", "id,text\n1,short\n")
    write_file(data_dir / "run_2" / "t.csv", "id,text\n2," + "x" * 80_000_000 + "\n")
    write_file(data_dir / "run_3" / "t.csv", "id,text\n" + "".join(f"{index},v{index}\n" for index in range(200_000)))
    limits = CatalogSettings(path=str(tmp_path / "catalog.duckdb"), memory_limit="128MB", threads=1)
    harness = Harness(tmp_path, write_project(tmp_path, [table_collection("t", r"t\.csv$")]), limits)
    try:
        harness.scan()
        huge = _file_in_run(harness, "t", "run_2")
        counts = harness.row_count_by_run("t")
    finally:
        harness.close()

    assert huge.status == "failed"
    assert huge.error is not None and "memory" in huge.error.lower()
    assert counts == {"run_1": 1, "run_3": 200_000}


# Entry 19: different column sets, in any order of arrival.

ENTRY_19_RUNS = {
    "run_1": "A,B\n1,2\n3,4\n",
    "run_2": "B,C\n5,high\n6,low\n",
    "run_3": "A,B\nx1,7\n",
}


def _ingest_in_order(folder: Path, order: list[str]) -> tuple[list[tuple[str, str]], list[tuple[Any, ...]]]:
    """Add the runs one scan at a time in `order`; return the table's column types and rows."""
    harness = Harness(folder, write_project(folder, [table_collection("t", r"t\.csv$")]))
    try:
        for run_tag in order:
            write_file(folder / "data" / run_tag / "t.csv", ENTRY_19_RUNS[run_tag])
            harness.scan()
        return list(harness.column_types("t").items()), harness.rows("t", "A, B, C, depictio_run_id")
    finally:
        harness.close()


def test_union_by_name_ignores_arrival_order(tmp_path: Path) -> None:
    # Entry 19: A,B then B,C then A,B with text in A; ingested 1,2,3 and 3,2,1.
    forward = _ingest_in_order(tmp_path / "forward", ["run_1", "run_2", "run_3"])
    backward = _ingest_in_order(tmp_path / "backward", ["run_3", "run_2", "run_1"])

    assert forward == backward
    types, rows = forward
    assert types[:3] == [("A", "VARCHAR"), ("B", "BIGINT"), ("C", "VARCHAR")]
    assert rows == [
        ("1", 2, None, "run_1"),
        ("3", 4, None, "run_1"),
        ("x1", 7, None, "run_3"),
        (None, 5, "high", "run_2"),
        (None, 6, "low", "run_2"),
    ]


def test_int_float_text_widen_in_one_column(start: StartHarness, data_dir: Path) -> None:
    # Entry 19: the widening chain int -> float -> text, each step recorded per file.
    write_file(data_dir / "run_1" / "t.csv", "v\n1\n")
    write_file(data_dir / "run_2" / "t.csv", "v\n2.50\n")
    write_file(data_dir / "run_3" / "t.csv", "v\nn/a\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert harness.column_types("t")["v"] == "VARCHAR"
    assert harness.rows("t", "v", order_by="depictio_run_id") == [("1",), ("2.50",), ("n/a",)]
    drift = {(note.file_id, note.file_type, note.table_type) for note in harness.table("t").drift}
    file_ids = {record.run_tag: record.id for record in harness.files("t")}
    assert drift == {(file_ids["run_1"], "BIGINT", "VARCHAR"), (file_ids["run_2"], "DOUBLE", "VARCHAR")}


# Entry 20: header drift between tool versions, and repeated header names.


def test_prefixed_and_short_headers_match_by_name(start: StartHarness, data_dir: Path) -> None:
    # Entry 20: MultiQC general stats with module-prefixed headers, then short ones in another order.
    prefixed = "FastQC_mqc-generalstats-fastqc-percent_gc"
    write_file(data_dir / "run_1" / "general_stats.txt", f"Sample\t{prefixed}\nS1\t41\n")
    write_file(data_dir / "run_2" / "general_stats.txt", "percent_gc\tSample\n52\tS2\n")
    harness = start([table_collection("gs", r"general_stats\.txt$", "tsv")])

    harness.scan()

    assert list(harness.column_types("gs")) == ["Sample", prefixed, "percent_gc", *RESERVED]
    assert harness.rows("gs", f'Sample, "{prefixed}", percent_gc') == [("S1", 41, None), ("S2", None, 52)]
    # The drift between the two headers is reported with each file.
    assert _file_in_run(harness, "gs", "run_1").read_details["absent_columns"] == ["percent_gc"]
    assert _file_in_run(harness, "gs", "run_2").read_details["absent_columns"] == [prefixed]


def test_repeated_header_names_are_made_unique(start: StartHarness, data_dir: Path) -> None:
    # Entry 20: three FastQC columns with one title; no column overwrites another.
    write_file(data_dir / "run_1" / "gs.tsv", "Sample\tpercent_gc\tpercent_gc\tpercent_gc\nS1\t41\t42\t43\n")
    harness = start([table_collection("gs", r"gs\.tsv$", "tsv")])

    harness.scan()

    record = harness.file("gs", "gs.tsv")
    assert harness.rows("gs", "percent_gc, percent_gc_1, percent_gc_2") == [(41, 42, 43)]
    assert record.read_details["renamed_columns"] == [
        {"position": 3, "header": "percent_gc", "name": "percent_gc_1"},
        {"position": 4, "header": "percent_gc", "name": "percent_gc_2"},
    ]


def test_renamed_header_skips_names_in_use(start: StartHarness, data_dir: Path) -> None:
    # Entry 20: the suffix skips names that the header already has, ignoring case.
    write_file(data_dir / "run_1" / "t.csv", "a,A,a_1\n1,2,3\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert list(harness.column_types("t"))[:3] == ["a", "A_2", "a_1"]
    assert harness.rows("t", "a, A_2, a_1") == [(1, 2, 3)]


def test_rowid_header_is_renamed(start: StartHarness, data_dir: Path) -> None:
    # A column named rowid would hide DuckDB's row ids, which page cursors rely on.
    write_file(data_dir / "run_1" / "t.csv", "RowId,v\nx,1\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert list(harness.column_types("t"))[:2] == ["RowId_1", "v"]
    assert harness.file("t", "t.csv").read_details["renamed_columns"] == [
        {"position": 1, "header": "RowId", "name": "RowId_1"}
    ]


def test_parquet_rowid_column_fails(start: StartHarness, data_dir: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet

    (data_dir / "run_1").mkdir(parents=True)
    (data_dir / "run_2").mkdir(parents=True)
    pyarrow.parquet.write_table(pa.table({"ROWID": ["x"], "v": [1]}), data_dir / "run_1" / "t.parquet")
    pyarrow.parquet.write_table(pa.table({"v": [2]}), data_dir / "run_2" / "t.parquet")
    harness = start([table_collection("t", r"t\.parquet$", "parquet")])

    harness.scan()

    failed = _file_in_run(harness, "t", "run_1")
    assert failed.status == "failed"
    assert "column named 'ROWID'" in (failed.error or "")
    assert harness.rows("t", "v") == [(2,)]


# Entry 21: Nextflow trace values with units, percent signs, dashes and comma decimals.

TRACE = (
    "task_id\tname\tstatus\texit\tcpus\t%cpu\trss\trealtime\n"
    "1\tFASTQC (S1)\tCOMPLETED\t0\t2\t47.3%\t281.3 MB\t1m 2s\n"
    "2\tTRIM (S1)\tABORTED\t-\t-\t-\t-\t-\n"
    "3\tALIGN (S1)\tCOMPLETED\t0\t8\t99,3%\t18 GB\t2h 3m\n"
)


def test_quoted_fields_after_sample_are_read(start: StartHarness, data_dir: Path) -> None:
    # Without quotes or backslashes in the sampled lines, files are read with RFC 4180
    # quoting: quoted separators and doubled quotes further down still parse.
    body = "".join(f"s{n:03},plain\n" for n in range(300))
    write_file(data_dir / "run_1" / "t.csv", "sample,note\n" + body + 's300,"a, ""quoted"" note"\n')
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    assert harness.file("t", "t.csv").status != "failed"
    assert harness.rows("t", "note", order_by="sample")[-1] == ('a, "quoted" note',)
    assert len(harness.rows("t", "sample")) == 301


def test_trace_values_with_units_stay_text(start: StartHarness, data_dir: Path) -> None:
    # Entry 21: nothing is coerced into a number and no row is dropped.
    write_file(data_dir / "run_1" / "pipeline_info" / "trace.txt", TRACE)
    harness = start([table_collection("trace", r"trace\.txt$", "tsv")])

    harness.scan()

    types = harness.column_types("trace")
    assert {name: types[name] for name in ("%cpu", "rss", "realtime")} == dict.fromkeys(
        ("%cpu", "rss", "realtime"), "VARCHAR"
    )
    assert harness.rows("trace", 'task_id, status, "%cpu", rss') == [
        (1, "COMPLETED", "47.3%", "281.3 MB"),
        (2, "ABORTED", "-", "-"),
        (3, "COMPLETED", "99,3%", "18 GB"),
    ]


def test_trace_dash_is_null_by_rule(start: StartHarness, data_dir: Path) -> None:
    # Entry 21: with null_values ["-"], a dash is NULL and a column of numbers and dashes is numeric.
    write_file(data_dir / "run_1" / "pipeline_info" / "trace.txt", TRACE)
    harness = start([table_collection("trace", r"trace\.txt$", "tsv", polars_kwargs={"null_values": ["-"]})])

    harness.scan()

    types = harness.column_types("trace")
    assert types["cpus"] == "BIGINT"
    assert types["%cpu"] == "VARCHAR"
    assert harness.rows("trace", 'task_id, cpus, "%cpu", rss') == [
        (1, 2, "47.3%", "281.3 MB"),
        (2, None, None, None),
        (3, 8, "99,3%", "18 GB"),
    ]


def test_comma_decimal_is_not_a_number(start: StartHarness, data_dir: Path) -> None:
    # Entry 21: 99,3 is not 993 and not 99.3; it stays as written.
    write_file(data_dir / "run_1" / "t.tsv", "sample\tscore\nS1\t0,5\nS2\t99,3\n")
    write_file(data_dir / "run_2" / "t.tsv", "sample\tscore\nS3\t7\n")
    harness = start([table_collection("t", r"t\.tsv$", "tsv")])

    harness.scan()

    assert harness.column_types("t")["score"] == "VARCHAR"
    assert harness.rows("t", "sample, score") == [("S1", "0,5"), ("S2", "99,3"), ("S3", "7")]
