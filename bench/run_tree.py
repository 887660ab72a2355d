"""A workflow tree that grows while a service ingests it, and the tables its files should give.

Each run folder `data/run_NNNN` has two CSV files: `metrics.csv` (METRICS_ROWS rows) and
`summary.csv` (SAMPLES rows). A TreeGrowth thread adds runs in batches spread over a
period, and rewrites the metrics file of an earlier run now and then, so that both new
files and changed files reach the service while it serves requests.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

import duckdb
import msgspec

from bench.project import Collection, collection_id, write_project
from catalog.build import table_name

logger = logging.getLogger(__name__)

# The file name of each collection, by tag.
FILE_NAMES = {"metrics": "metrics.csv", "summary": "summary.csv"}
COLLECTIONS = tuple(
    Collection(id=collection_id(number), tag=tag, pattern=f"{re.escape(name)}$")
    for number, (tag, name) in enumerate(FILE_NAMES.items(), start=1)
)
METRICS_ROWS = 200
SAMPLES = 8
# One batch in this many also rewrites the metrics file of an earlier run.
REWRITE_EVERY = 3
# Columns that the service adds to every row: the file id and the aggregation time differ
# from one build to the next, so the comparison leaves them out and checks the file ids apart.
_ADDED_COLUMNS = ("depictio_file_id", "aggregation_time")


def run_tag(index: int) -> str:
    return f"run_{index:04d}"


def write_run(root: Path, index: int) -> None:
    """Write the two files of run `index`."""
    folder = root / "data" / run_tag(index)
    folder.mkdir(parents=True, exist_ok=True)
    write_metrics(folder, index, 0)
    summary = ["sample,reads,passed"]
    for sample in range(SAMPLES):
        passed = "true" if (sample + index) % 3 else "false"
        summary.append(f"s{sample},{sample * 1000 + index},{passed}")
    (folder / FILE_NAMES["summary"]).write_text("\n".join(summary) + "\n", encoding="utf-8")


def write_metrics(folder: Path, index: int, version: int) -> None:
    """Write the metrics file of run `index`; each `version` gives other values in as many rows."""
    metrics = ["sample,position,depth,score"]
    for row in range(METRICS_ROWS):
        depth = (row * 37 + index * 11 + version * 5) % 500
        score = ((row * 7919 + index * 104729 + version * 31) % 100_000) / 1000
        metrics.append(f"s{row % SAMPLES},{index * 100_000 + row},{depth},{score:.3f}")
    (folder / FILE_NAMES["metrics"]).write_text("\n".join(metrics) + "\n", encoding="utf-8")


def write_tree(root: Path, runs: int) -> Path:
    """Write the project file and the first `runs` runs; return the project file's path."""
    for index in range(runs):
        write_run(root, index)
    return write_project(root, list(COLLECTIONS))


class TreeGrowth:
    """A thread that adds runs `first` to `total - 1` in `batches` batches spread evenly over `seconds`.

    Every REWRITE_EVERY-th batch also rewrites the metrics file of an earlier run with new
    values but the same row count. `finished_at` is the wall-clock time of the last write.
    """

    def __init__(self, root: Path, first: int, total: int, seconds: float, batches: int) -> None:
        if not 0 < first < total:
            raise ValueError(f"first run {first} must be above 0 and below the run count {total}")
        self.root = root
        self.first = first
        self.total = total
        self.seconds = seconds
        self.batches = max(1, min(batches, total - first))
        self.runs_written = 0
        self.files_rewritten = 0
        self.finished_at = 0.0
        self.error: BaseException | None = None
        self._stopping = threading.Event()
        self._versions: dict[int, int] = {}
        self._thread = threading.Thread(target=self._run, name="tree-growth", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop before the next batch and wait for the thread, if it was started."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def join(self, timeout: float) -> bool:
        """Wait for the last batch; return False when the thread still runs after `timeout` seconds."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._add_batches()
        except BaseException as error:
            # The caller reads `error` after join() and reports it, since a thread cannot raise to it.
            logger.exception("writing the run tree under %s failed", self.root)
            self.error = error
        self.finished_at = time.time()

    def _add_batches(self) -> None:
        pending = list(range(self.first, self.total))
        interval = self.seconds / self.batches
        started = time.monotonic()
        for batch in range(self.batches):
            # Each batch starts at its own point of the period, so slow writes do not shift the rest.
            if self._stopping.wait(max(0.0, started + batch * interval - time.monotonic())):
                return
            size = len(pending) // (self.batches - batch)
            for index in pending[:size]:
                write_run(self.root, index)
                self.runs_written += 1
            del pending[:size]
            if batch % REWRITE_EVERY == REWRITE_EVERY - 1:
                self._rewrite_earlier_run(batch)

    def _rewrite_earlier_run(self, batch: int) -> None:
        # Runs below `first` were written before the thread started, so each is a finished run.
        index = (batch * 7) % self.first
        self._versions[index] = self._versions.get(index, 0) + 1
        write_metrics(self.root / "data" / run_tag(index), index, self._versions[index])
        self.files_rewritten += 1


class TableCheck(msgspec.Struct, kw_only=True, frozen=True):
    """The comparison of one catalog table with a DuckDB read of its source files."""

    tag: str
    expected_rows: int
    table_rows: int
    # Rows of the source files that the table lacks, and rows of the table that no file has.
    missing_rows: int
    unexpected_rows: int
    source_files: int
    # Distinct depictio_file_id values: one per source file when every file is aggregated once.
    file_ids: int

    @property
    def correct(self) -> bool:
        return (
            self.expected_rows == self.table_rows
            and self.missing_rows == 0
            and self.unexpected_rows == 0
            and self.file_ids == self.source_files
        )


def check_tables(catalog_path: Path, root: Path) -> list[TableCheck]:
    """Compare each table of a stopped service's catalog with a fresh DuckDB read of the files under `root`.

    The run tag of a source row is the name of its run folder. Rows are compared as
    multisets (EXCEPT ALL both ways), so a duplicate or a lost row counts.
    """
    connection = duckdb.connect(str(catalog_path), read_only=True)
    try:
        return [_check_table(connection, root, collection) for collection in COLLECTIONS]
    finally:
        connection.close()


def _check_table(connection: duckdb.DuckDBPyConnection, root: Path, collection: Collection) -> TableCheck:
    files = sorted(str(path) for path in (root / "data").glob(f"run_*/{FILE_NAMES[collection.tag]}"))
    table = table_name(collection.id)
    columns = [
        str(row[0])
        for row in connection.execute(f"DESCRIBE {table}").fetchall()
        if str(row[0]) not in _ADDED_COLUMNS and row[0] != "depictio_run_id"
    ]
    selected = ", ".join(f'"{name}"' for name in columns)
    # A view cannot take parameters, so the paths (written by this module) are quoted here.
    listed = ", ".join("'" + path.replace("'", "''") + "'" for path in files)
    connection.execute(
        f"CREATE OR REPLACE TEMP VIEW expected AS SELECT {selected}, "
        "regexp_extract(filename, '(run_[0-9]+)/[^/]+$', 1) AS depictio_run_id "
        f"FROM read_csv([{listed}], header = true, filename = true)"
    )
    connection.execute(f"CREATE OR REPLACE TEMP VIEW actual AS SELECT {selected}, depictio_run_id FROM {table}")
    return TableCheck(
        tag=collection.tag,
        expected_rows=_count(connection, "SELECT count(*) FROM expected"),
        table_rows=_count(connection, "SELECT count(*) FROM actual"),
        missing_rows=_count(
            connection, "SELECT count(*) FROM (SELECT * FROM expected EXCEPT ALL SELECT * FROM actual)"
        ),
        unexpected_rows=_count(
            connection, "SELECT count(*) FROM (SELECT * FROM actual EXCEPT ALL SELECT * FROM expected)"
        ),
        source_files=len(files),
        file_ids=_count(connection, f"SELECT count(DISTINCT depictio_file_id) FROM {table}"),
    )


def _count(connection: duckdb.DuckDBPyConnection, sql: str) -> int:
    found = connection.execute(sql).fetchone()
    return int(found[0]) if found else 0
