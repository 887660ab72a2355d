"""incremental_run: 1,000 runs registered, one new run of 10 files; time until its rows are queryable.

depictiod rescans the workflow as a change event makes it do, here called directly, so
the settle window is not part of the time (event_latency measures the service's whole
path). Reference: a full rebuild of the same table from every file with one DuckDB
read_csv, which is what Depictio does on every ingest.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import msgspec

from bench.project import WORKFLOW_ID, Collection, collection_id, open_ingestor, run_rows, table_rows, write_project
from bench.results import Comparison, Plan, Side, ratio_row
from bench.timing import count_rows, timed_runs, timed_side


class Size(msgspec.Struct, frozen=True):
    runs: int
    files_per_run: int
    rows_per_file: int


SIZES = {
    "tiny": Size(runs=10, files_per_run=10, rows_per_file=20),
    "full": Size(runs=1000, files_per_run=10, rows_per_file=50),
}
COLLECTION = Collection(id=collection_id(1), tag="samples", pattern=r"sample_\d+\.csv$")


def _write_run(folder: Path, params: Size, seed: int) -> None:
    folder.mkdir(parents=True)
    for index in range(params.files_per_run):
        lines = [f"s{index},g{row},{(seed * 131 + row * 17) % 1000},{row / 8}" for row in range(params.rows_per_file)]
        (folder / f"sample_{index}.csv").write_text("sample,gene,count,score\n" + "\n".join(lines) + "\n")


def generate(root: Path, size: str) -> None:
    params = SIZES[size]
    for run in range(params.runs):
        _write_run(root / "data" / f"run_{run:04d}", params, run)
    write_project(root, [COLLECTION])


def run_depictiod(root: Path, plan: Plan) -> Side:
    """Register every run with a first scan (not timed), then time each new run from rescan to queryable rows.

    The first scan warms the page cache and the imports, so no other warm-up runs.
    """
    params = SIZES[plan.size]
    plan = msgspec.structs.replace(plan, warmups=0)
    new_rows = params.files_per_run * params.rows_per_file
    with open_ingestor(root / "project.yaml", root / "catalog.duckdb") as ingestor:
        ingestor.scan_all()

        def add_run(index: int) -> None:
            _write_run(root / "data" / f"run_new_{index:03d}", params, params.runs + index)

        def ingest_run(index: int) -> None:
            ingestor.rescan_workflow(WORKFLOW_ID, "event")
            found = run_rows(ingestor, COLLECTION.id, f"run_new_{index:03d}")
            if found != new_rows:
                raise RuntimeError(f"run_new_{index:03d} has {found} rows after its rescan, not {new_rows}")

        samples = timed_runs(ingest_run, plan, prepare=add_run)
        rows = table_rows(ingestor, COLLECTION.id)
    return timed_side("depictiod", samples, rows, (params.runs + plan.repeats) * new_rows)


def run_rebuild(root: Path, plan: Plan) -> Side:
    """Rebuild the table from every file of every run, new runs included, into an on-disk database."""
    params = SIZES[plan.size]
    rows = expected = 0
    connection = duckdb.connect(str(root / "rebuild.duckdb"))

    def rebuild(index: int) -> None:
        nonlocal rows, expected
        files = sorted(str(path) for path in (root / "data").glob("run_*/sample_*.csv"))
        connection.execute("CREATE OR REPLACE TABLE samples AS SELECT * FROM read_csv(?, filename = true)", [files])
        rows = count_rows(connection, "samples")
        expected = len(files) * params.rows_per_file

    try:
        samples = timed_runs(rebuild, plan)
    finally:
        connection.close()
    return timed_side("duckdb full rebuild", samples, rows, expected)


def compare(sides: dict[str, Side]) -> list[Comparison]:
    ours, rebuild = sides["depictiod"], sides["rebuild"]
    return [
        ratio_row(
            "incremental_run",
            "new run to rows",
            "s",
            ours.figures["seconds"],
            rebuild.tool,
            rebuild.figures["seconds"],
            0.02,
            higher_is_better=False,
        )
    ]
