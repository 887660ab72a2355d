"""many_files: 2,000 small CSV files of three schemas, from an empty catalog to queryable tables.

References: polars scan_csv over a glob per collection with the frames inserted into an
on-disk DuckDB file, and one DuckDB read_csv over the list of files per collection.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import msgspec

from bench.project import Collection, collection_id, open_ingestor, table_rows, write_project
from bench.results import Comparison, Plan, Side, ratio_row
from bench.timing import count_rows, timed_runs, timed_side


class Size(msgspec.Struct, frozen=True):
    runs: int
    # Rows of every file; 2,000 rows make files of 40 to 60 KB, about 100 MB for 2,000 files.
    rows_per_file: int


SIZES = {"tiny": Size(runs=4, rows_per_file=20), "full": Size(runs=200, rows_per_file=2000)}


class Schema(msgspec.Struct, frozen=True):
    collection: Collection
    prefix: str
    files_per_run: int
    header: str
    # DuckDB types of columns whose type depends on the file; both references are given them.
    duckdb_types: dict[str, str]


SCHEMAS = [
    Schema(
        collection=Collection(id=collection_id(1), tag="counts", pattern=r"counts_\d+\.csv$"),
        prefix="counts",
        files_per_run=4,
        header="sample,gene,count,score",
        duckdb_types={"score": "DOUBLE"},
    ),
    Schema(
        collection=Collection(id=collection_id(2), tag="qc", pattern=r"qc_\d+\.csv$"),
        prefix="qc",
        files_per_run=3,
        header="sample,metric,value,passed",
        duckdb_types={},
    ),
    Schema(
        collection=Collection(id=collection_id(3), tag="lanes", pattern=r"lanes_\d+\.csv$"),
        prefix="lanes",
        files_per_run=3,
        header="sample,lane,reads,sequenced_on",
        duckdb_types={},
    ),
]


def _lines(prefix: str, rows: int, decimals: bool) -> list[str]:
    """Return `rows` data lines of one schema; `decimals` writes the counts' scores with a fraction."""
    if prefix == "counts":
        return [
            f"s{i % 24},g{i},{(i * 7919) % 100_000},{(i * 31) % 1000 + (0.25 if decimals else 0)}" for i in range(rows)
        ]
    if prefix == "qc":
        # Every seventh value is empty, a null in the table.
        return [f"s{i % 24},m{i % 40},{'' if i % 7 == 0 else (i * 13) % 997 / 10},{i % 3 != 0}" for i in range(rows)]
    return [
        f"s{i % 24},{i % 8 + 1},{(i * 104_729) % 50_000_000},2026-{i % 12 + 1:02d}-{i % 28 + 1:02d}"
        for i in range(rows)
    ]


def generate(root: Path, size: str) -> None:
    """Write the run folders; odd runs write integer scores and even runs decimals, so `score` widens to DOUBLE."""
    params = SIZES[size]
    pools = {
        (schema.prefix, decimals): _lines(schema.prefix, params.rows_per_file, decimals)
        for schema in SCHEMAS
        for decimals in (False, True)
    }
    for run in range(params.runs):
        folder = root / "data" / f"run_{run:04d}"
        folder.mkdir(parents=True)
        for schema in SCHEMAS:
            pool = pools[(schema.prefix, run % 2 == 0)]
            for index in range(schema.files_per_run):
                # Rotate the shared lines so that files differ without generating each one.
                shift = (run * 10 + index) % len(pool)
                body = "\n".join(pool[shift:] + pool[:shift])
                (folder / f"{schema.prefix}_{index}.csv").write_text(f"{schema.header}\n{body}\n", encoding="utf-8")
    write_project(root, [schema.collection for schema in SCHEMAS])


def _expected_rows(size: str) -> int:
    params = SIZES[size]
    return params.runs * params.rows_per_file * sum(schema.files_per_run for schema in SCHEMAS)


def run_depictiod(root: Path, plan: Plan) -> Side:
    """Scan, register and aggregate into an empty catalog, as a first start does."""
    rows = 0

    def first_scan(index: int) -> None:
        nonlocal rows
        folder = root / f"depictiod-{index}"
        folder.mkdir()
        with open_ingestor(root / "project.yaml", folder / "catalog.duckdb") as ingestor:
            ingestor.scan_all()
            rows = sum(table_rows(ingestor, schema.collection.id) for schema in SCHEMAS)
        shutil.rmtree(folder)

    samples = timed_runs(first_scan, plan)
    return timed_side("depictiod", samples, rows, _expected_rows(plan.size))


def run_polars(root: Path, plan: Plan) -> Side:
    """Read each collection with one polars scan_csv over a glob and insert the frame into an on-disk DuckDB file."""
    import polars

    rows = 0

    def load(index: int) -> None:
        nonlocal rows
        target = root / f"polars-{index}.duckdb"
        connection = duckdb.connect(str(target))
        try:
            rows = 0
            for schema in SCHEMAS:
                overrides = {name: polars.Float64 for name in schema.duckdb_types}
                frame = polars.scan_csv(
                    str(root / "data" / "run_*" / f"{schema.prefix}_*.csv"),
                    schema_overrides=overrides,
                    include_file_paths="path",
                ).collect()
                connection.register("frame", frame.to_arrow())
                connection.execute(f"CREATE TABLE {schema.collection.tag} AS SELECT * FROM frame")
                connection.unregister("frame")
                rows += count_rows(connection, schema.collection.tag)
        finally:
            connection.close()
        target.unlink()

    samples = timed_runs(load, plan)
    return timed_side("polars scan_csv", samples, rows, _expected_rows(plan.size))


def run_duckdb(root: Path, plan: Plan) -> Side:
    """Load each collection with one DuckDB read_csv over its list of files into an on-disk table."""
    rows = 0

    def load(index: int) -> None:
        nonlocal rows
        target = root / f"duckdb-{index}.duckdb"
        connection = duckdb.connect(str(target))
        try:
            rows = 0
            for schema in SCHEMAS:
                files = sorted(str(path) for path in (root / "data").glob(f"run_*/{schema.prefix}_*.csv"))
                # The types are constants of this module, so they are written into the SQL text.
                types = "".join(f", types = {{'{name}': '{kind}'}}" for name, kind in schema.duckdb_types.items())
                connection.execute(
                    f"CREATE TABLE {schema.collection.tag} AS SELECT * FROM read_csv(?{types}, filename = true)",
                    [files],
                )
                rows += count_rows(connection, schema.collection.tag)
        finally:
            connection.close()
        target.unlink()

    samples = timed_runs(load, plan)
    return timed_side("duckdb read_csv(list)", samples, rows, _expected_rows(plan.size))


def compare(sides: dict[str, Side]) -> list[Comparison]:
    """Compare depictiod's time with the faster of the two references; the target is a ratio of at most 1."""
    ours = sides["depictiod"]
    fastest = min((sides["polars"], sides["duckdb"]), key=lambda side: side.figures["seconds"])
    return [
        ratio_row(
            "many_files",
            "time to tables",
            "s",
            ours.figures["seconds"],
            fastest.tool,
            fastest.figures["seconds"],
            1.0,
            higher_is_better=False,
        )
    ]
