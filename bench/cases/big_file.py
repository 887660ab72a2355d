"""big_file: one CSV file of about 1 GB, from an empty catalog to a queryable table.

Reference: DuckDB CREATE TABLE AS read_csv of the same file into an on-disk database.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

from bench.project import Collection, collection_id, open_ingestor, table_rows, write_project
from bench.results import Comparison, Plan, Side, limit_row, ratio_row
from bench.timing import count_rows, timed_runs, timed_side

# About 46 bytes a row, so the full file is about 1 GB.
ROWS = {"tiny": 20_000, "full": 22_000_000}
COLLECTION = Collection(id=collection_id(1), tag="measurements", pattern=r"measurements\.csv$")
# The peak memory that depictiod should stay under while it loads the file.
MAX_RSS_MIB = 1024


def _file(root: Path) -> Path:
    return root / "data" / "run_0001" / "measurements.csv"


def generate(root: Path, size: str) -> None:
    """Write the file with DuckDB COPY, which writes on every core, from values computed per row number."""
    path = _file(root)
    path.parent.mkdir(parents=True)
    connection = duckdb.connect()
    try:
        connection.execute(
            f"""COPY (
                SELECT i AS id, 's' || (i % 96) AS sample, 'gene_' || (i * 7919 % 60000) AS gene,
                       (i * 104729) % 1000000 AS count, round((i % 100000) / 7.0, 3) AS score,
                       i % 3 = 0 AS passed
                FROM range({ROWS[size]}) AS rows(i)
            ) TO '{path}' (FORMAT csv, HEADER true)"""
        )
    finally:
        connection.close()
    write_project(root, [COLLECTION])


def run_depictiod(root: Path, plan: Plan) -> Side:
    """Scan and aggregate the file into an empty catalog."""
    rows = 0

    def first_scan(index: int) -> None:
        nonlocal rows
        folder = root / f"depictiod-{index}"
        folder.mkdir()
        with open_ingestor(root / "project.yaml", folder / "catalog.duckdb") as ingestor:
            ingestor.scan_all()
            rows = table_rows(ingestor, COLLECTION.id)
        shutil.rmtree(folder)

    samples = timed_runs(first_scan, plan)
    return timed_side("depictiod", samples, rows, ROWS[plan.size])


def run_duckdb(root: Path, plan: Plan) -> Side:
    """Load the file with one CREATE TABLE AS read_csv into a new on-disk database."""
    rows = 0

    def load(index: int) -> None:
        nonlocal rows
        target = root / f"duckdb-{index}.duckdb"
        connection = duckdb.connect(str(target))
        try:
            connection.execute("CREATE TABLE measurements AS SELECT * FROM read_csv(?)", [str(_file(root))])
            rows = count_rows(connection, "measurements")
        finally:
            connection.close()
        target.unlink()

    samples = timed_runs(load, plan)
    return timed_side("duckdb read_csv", samples, rows, ROWS[plan.size])


def compare(sides: dict[str, Side]) -> list[Comparison]:
    ours, duckdb_side = sides["depictiod"], sides["duckdb"]
    return [
        ratio_row(
            "big_file",
            "time to table",
            "s",
            ours.figures["seconds"],
            duckdb_side.tool,
            duckdb_side.figures["seconds"],
            1.0,
            higher_is_better=False,
        ),
        limit_row(
            "big_file",
            "peak RSS",
            "MiB",
            ours.peak_rss_mib,
            MAX_RSS_MIB,
            reference=duckdb_side.tool,
            theirs=duckdb_side.peak_rss_mib,
        ),
    ]
