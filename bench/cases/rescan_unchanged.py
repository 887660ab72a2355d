"""rescan_unchanged: a full reconcile of 100,000 registered files in 1,000 runs, none of them changed.

Reference: a bare walk of the same tree with os.scandir and a stat of every file.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from bench.project import WORKFLOW_ID, Collection, collection_id, open_ingestor, table_rows, write_project
from bench.results import Comparison, Plan, Side, ratio_row
from bench.timing import timed_runs, timed_side


class Size(msgspec.Struct, frozen=True):
    runs: int
    files_per_run: int


SIZES = {"tiny": Size(runs=10, files_per_run=10), "full": Size(runs=1000, files_per_run=100)}
COLLECTION = Collection(id=collection_id(1), tag="parts", pattern=r"part_\d+\.csv$")


def generate(root: Path, size: str) -> None:
    """Write the runs' files, each a header and one row."""
    params = SIZES[size]
    for run in range(params.runs):
        folder = root / "data" / f"run_{run:04d}"
        folder.mkdir(parents=True)
        for index in range(params.files_per_run):
            (folder / f"part_{index:03d}.csv").write_text(f"sample,value\ns{index},{run}\n", encoding="ascii")
    write_project(root, [COLLECTION])


def _expected(size: str) -> int:
    return SIZES[size].runs * SIZES[size].files_per_run


def run_depictiod(root: Path, plan: Plan) -> Side:
    """Register every file with a first scan (not timed), then time full reconciles that find nothing to do.

    The first scan warms the page cache and the imports, so no other warm-up runs.
    """
    rows = 0
    with open_ingestor(root / "project.yaml", root / "catalog.duckdb") as ingestor:
        ingestor.scan_all()

        def reconcile(index: int) -> None:
            for project in ingestor.scan_all():
                changes = [scan.counts for scan in project.workflows if scan.workflow_id == WORKFLOW_ID]
                if any(count.files_added or count.files_changed or count.files_removed for count in changes):
                    raise RuntimeError(f"the reconcile of unchanged files found changes: {changes}")

        samples = timed_runs(reconcile, msgspec.structs.replace(plan, warmups=0))
        rows = table_rows(ingestor, COLLECTION.id)
    return timed_side("depictiod", samples, rows, _expected(plan.size))


def _walk(folder: str) -> int:
    """Stat every file under `folder` without following links; return how many there are."""
    files = 0
    pending = [folder]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                else:
                    entry.stat(follow_symlinks=False)
                    files += 1
    return files


def run_walk(root: Path, plan: Plan) -> Side:
    """Walk the tree with os.scandir and stat each file, as the least that any reconcile must do."""
    files = 0

    def walk(index: int) -> None:
        nonlocal files
        files = _walk(str(root / "data"))

    samples = timed_runs(walk, plan)
    return timed_side("os.scandir + stat", samples, files, _expected(plan.size))


def compare(sides: dict[str, Side]) -> list[Comparison]:
    ours, walk = sides["depictiod"], sides["walk"]
    return [
        ratio_row(
            "rescan_unchanged",
            "full reconcile",
            "s",
            ours.figures["seconds"],
            walk.tool,
            walk.figures["seconds"],
            1.5,
            higher_is_better=False,
        )
    ]
