"""ingest_two_writers: two projects of equal size ingested by one writer or by two, from empty catalogs.

Every side runs `depictiod scan` (one pass over the projects, then exit) as child processes
and times them from the first start to the last exit, so the time includes each process's
start and the opening of its catalog. The depictiod side is two scan processes on one
DuckLake catalog, one project each. The references are one scan of both projects into a
DuckDB file and one scan of both into a DuckLake catalog. Each DuckLake run gets a new
database in a throwaway PostgreSQL cluster that the side starts and stops itself
(tests/postgres.py). After each run the side counts the rows, files and distinct row keys of
every table, so a missing or duplicated row fails the case.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec

from bench.project import Collection, collection_id, write_project
from bench.results import Comparison, Plan, Side
from bench.timing import median
from catalog import Catalog
from catalog.build import table_name
from config import CatalogSettings
from tests.postgres import PostgresCluster, running_cluster

CASE = "ingest_two_writers"
# A scan still running after this many seconds is killed and the side fails.
SCAN_TIMEOUT_SECONDS = 600
# Part of the INFO line that catalog.store logs before it runs a write again after a commit conflict.
CONFLICT_LOG_TEXT = "conflicted with another writer"


class Size(msgspec.Struct, frozen=True):
    # Runs in each of the two projects.
    runs: int
    rows_per_file: int


# At the full size each project has 250 files and 500,000 rows (13 MB of CSV), so the
# whole case, with four runs of each side, takes minutes rather than an hour.
SIZES = {"tiny": Size(runs=3, rows_per_file=20), "full": Size(runs=50, rows_per_file=2000)}


class Schema(msgspec.Struct, frozen=True):
    prefix: str
    files_per_run: int
    # Columns after `line`, which numbers the rows of a run across its files of this schema.
    header: str


SCHEMAS = (
    Schema(prefix="counts", files_per_run=3, header="sample,gene,count,score"),
    Schema(prefix="qc", files_per_run=2, header="sample,metric,value,passed"),
)


class Project(msgspec.Struct, frozen=True):
    name: str
    project_id: str
    workflow_id: str
    # The project's collections, in the order of SCHEMAS.
    collections: tuple[Collection, ...]

    @property
    def file_name(self) -> str:
        return f"{self.name}.yaml"

    @property
    def location(self) -> str:
        return f"data_{self.name}"


def _project(name: str, number: int) -> Project:
    collections = tuple(
        Collection(
            id=collection_id(number * len(SCHEMAS) + index + 1),
            tag=f"{schema.prefix}_{name}",
            pattern=rf"{schema.prefix}_\d+\.csv$",
        )
        for index, schema in enumerate(SCHEMAS)
    )
    return Project(
        name=name,
        project_id=f"6b00000000000000000002{number:02x}",
        workflow_id=f"6b00000000000000000003{number:02x}",
        collections=collections,
    )


PROJECTS = (_project("left", 0), _project("right", 1))


def _lines(schema: Schema, first_line: int, rows: int, seed: int) -> list[str]:
    if schema.prefix == "counts":
        return [
            f"{first_line + i},s{i % 24},g{i},{(i * 7919 + seed) % 100_000},{((i * 31 + seed) % 1000) / 4}"
            for i in range(rows)
        ]
    return [f"{first_line + i},s{i % 24},m{i % 40},{((i * 13 + seed) % 997) / 10},{i % 3 != 0}" for i in range(rows)]


def generate(root: Path, size: str) -> None:
    """Write both projects: the same number of runs, files and rows in each, but different values."""
    params = SIZES[size]
    for number, project in enumerate(PROJECTS):
        for run in range(params.runs):
            folder = root / project.location / f"run_{run:04d}"
            folder.mkdir(parents=True)
            for schema in SCHEMAS:
                for index in range(schema.files_per_run):
                    seed = number * 1_000_003 + run * 101 + index
                    lines = _lines(schema, index * params.rows_per_file, params.rows_per_file, seed)
                    body = "\n".join(lines)
                    path = folder / f"{schema.prefix}_{index}.csv"
                    path.write_text(f"line,{schema.header}\n{body}\n", encoding="utf-8")
        write_project(
            root,
            list(project.collections),
            project.location,
            name=project.name,
            project_id=project.project_id,
            workflow_id=project.workflow_id,
            file_name=project.file_name,
        )


def _expected_files(size: str) -> int:
    """Return the files of both projects together."""
    return len(PROJECTS) * SIZES[size].runs * sum(schema.files_per_run for schema in SCHEMAS)


def _expected_rows(size: str) -> int:
    return _expected_files(size) * SIZES[size].rows_per_file


class Writer(msgspec.Struct, frozen=True):
    """One `depictiod scan` process: the projects it scans and the [catalog] settings it writes with."""

    projects: tuple[Project, ...]
    catalog: CatalogSettings


class Ingestion(msgspec.Struct, frozen=True):
    # Wall time from the start of the first scan process to the exit of the last.
    seconds: float
    # The largest peak resident memory of the scan processes, in MiB.
    peak_rss_mib: float
    # Writes that lost a DuckLake commit conflict and ran again, from the scans' logs.
    conflicts: int


def run_two_lake_writers(root: Path, plan: Plan) -> Side:
    """Scan each project with its own process, both at once, into one new DuckLake catalog per run."""
    return _lake_side(root, plan, "2 DuckLake writers", [(project,) for project in PROJECTS])


def run_one_lake_writer(root: Path, plan: Plan) -> Side:
    """Scan both projects with one process into a new DuckLake catalog per run."""
    return _lake_side(root, plan, "1 DuckLake writer", [PROJECTS])


def run_one_file_writer(root: Path, plan: Plan) -> Side:
    """Scan both projects with one process into a new DuckDB catalog file per run."""
    runs = []
    rows = 0
    for index in range(plan.warmups + plan.repeats):
        folder = root / f"file-{index}"
        writer = Writer(projects=PROJECTS, catalog=CatalogSettings(path=str(folder / "scan" / "catalog.duckdb")))
        runs.append(_ingest(root, folder, [writer]))
        rows = _check_tables(writer.catalog, plan.size)
        shutil.rmtree(folder)
    return _side("1 DuckDB file writer", runs[plan.warmups :], rows, plan.size)


def _lake_side(root: Path, plan: Plan, tool: str, groups: list[tuple[Project, ...]]) -> Side:
    """Ingest with one scan process per group of projects into a new DuckLake catalog per run."""
    runs = []
    rows = 0
    with running_cluster() as cluster:
        for index in range(plan.warmups + plan.repeats):
            folder = root / f"lake-{len(groups)}-{index}"
            database = cluster.create_database("bench")
            try:
                writers = [
                    Writer(projects=projects, catalog=_lake_settings(cluster, database, folder, f"scan-{number}"))
                    for number, projects in enumerate(groups)
                ]
                runs.append(_ingest(root, folder, writers))
                rows = _check_tables(_lake_settings(cluster, database, folder, "check"), plan.size)
            finally:
                cluster.drop_database(database)
                shutil.rmtree(folder, ignore_errors=True)
    return _side(tool, runs[plan.warmups :], rows, plan.size)


def _lake_settings(cluster: PostgresCluster, database: str, folder: Path, name: str) -> CatalogSettings:
    """Return the settings of one process on the lake in `database`, with its own local folder and the shared data path."""
    return CatalogSettings(
        path=str(folder / name / "catalog.duckdb"),
        backend="ducklake",
        postgres=cluster.dsn(database),
        data_path=str(folder / "lake-data"),
    )


def _ingest(root: Path, folder: Path, writers: list[Writer]) -> Ingestion:
    """Start one `depictiod scan` per writer, all at once, and wait until each has exited.

    Raise RuntimeError, with the end of its log, when a scan fails or runs past SCAN_TIMEOUT_SECONDS.
    """
    commands = []
    for number, writer in enumerate(writers):
        config = _write_config(root, Path(writer.catalog.path).parent, writer)
        command = [sys.executable, "-m", "depictiod", "scan", "--config", str(config)]
        commands.append((command, folder / f"scan-{number}.log"))

    started = time.perf_counter()
    processes = []
    for command, log in commands:
        with log.open("wb") as output:
            processes.append(subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + SCAN_TIMEOUT_SECONDS
    exits = [_wait(process, deadline) for process in processes]
    seconds = time.perf_counter() - started

    failures = [
        f"{' '.join(command)} exited with {status}{_killed_note(status)}:\n{log.read_text(errors='replace')[-3000:]}"
        for (command, log), (status, _) in zip(commands, exits, strict=True)
        if status != 0
    ]
    if failures:
        raise RuntimeError("\n".join(failures))
    conflicts = sum(log.read_text(errors="replace").count(CONFLICT_LOG_TEXT) for _, log in commands)
    return Ingestion(seconds=seconds, peak_rss_mib=max(peak for _, peak in exits), conflicts=conflicts)


def _wait(process: subprocess.Popen[bytes], deadline: float) -> tuple[int, float]:
    """Wait for `process`, killing it at `deadline`, and return its exit status and peak RSS in MiB.

    os.wait4 returns the resource usage of that one child, so a concurrent scan's memory
    does not count (ru_maxrss is in KiB on Linux). The 10 ms polling interval bounds the
    error that it adds to the measured time.
    """
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid == process.pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage.ru_maxrss / 1024
        if time.monotonic() > deadline:
            process.kill()
        time.sleep(0.01)


def _killed_note(status: int) -> str:
    return f" (killed after {SCAN_TIMEOUT_SECONDS} s)" if status == -signal.SIGKILL else ""


def _write_config(root: Path, folder: Path, writer: Writer) -> Path:
    folder.mkdir(parents=True)
    listed = ", ".join(f'"{root / project.file_name}"' for project in writer.projects)
    catalog = {"path": writer.catalog.path}
    if writer.catalog.backend == "ducklake":
        catalog |= {
            "backend": writer.catalog.backend,
            "postgres": writer.catalog.postgres,
            "data_path": writer.catalog.data_path,
        }
    catalog_lines = "".join(f'{name} = "{value}"\n' for name, value in catalog.items())
    path = folder / "depictio.toml"
    # The files were written before the clock started, so they count as settled at once,
    # and nothing watches the folders. INFO logs the conflicts that _ingest counts.
    path.write_text(
        f"projects = [{listed}]\n"
        '[server]\nlog_level = "INFO"\n'
        f"[catalog]\n{catalog_lines}"
        '[ingest]\nsettle_seconds = 0\nwatch_mode = "off"\nreconcile_seconds = 0\n',
        encoding="utf-8",
    )
    return path


def _check_tables(settings: CatalogSettings, size: str) -> int:
    """Check every table of both projects and return their rows in all.

    Each table must have the generated rows, one depictio_file_id per generated file, and
    no two rows with the same run and `line`, so a duplicated row fails even when a lost
    row makes the count match. Raise RuntimeError otherwise.
    """
    params = SIZES[size]
    catalog = Catalog(settings.path, settings)
    total = 0
    problems = []
    try:
        for project in PROJECTS:
            for schema, collection in zip(SCHEMAS, project.collections, strict=True):
                files = params.runs * schema.files_per_run
                expected = (files * params.rows_per_file, files, files * params.rows_per_file)
                found = catalog.store.query_one(
                    'SELECT count(*), count(DISTINCT depictio_file_id), count(DISTINCT (depictio_run_id, "line")) '
                    f"FROM {table_name(collection.id)}"
                )
                counts = tuple(int(value) for value in found) if found else (0, 0, 0)
                if counts != expected:
                    problems.append(f"{collection.tag}: (rows, file ids, distinct keys) {counts}, expected {expected}")
                total += counts[0]
    finally:
        catalog.close()
    if problems:
        raise RuntimeError(f"{CASE}: wrong tables at {settings.path}: " + "; ".join(problems))
    return total


def _side(tool: str, runs: list[Ingestion], rows: int, size: str) -> Side:
    seconds = median([run.seconds for run in runs])
    return Side(
        tool=tool,
        figures={
            "seconds": seconds,
            "files_per_s": _expected_files(size) / seconds,
            "rows_per_s": _expected_rows(size) / seconds,
            "conflicts": median([float(run.conflicts) for run in runs]),
        },
        peak_rss_mib=max(run.peak_rss_mib for run in runs),
        rows=rows,
        expected_rows=_expected_rows(size),
        samples=[run.seconds for run in runs],
    )


def compare(sides: dict[str, Side]) -> list[Comparison]:
    """Compare the two DuckLake writers' throughput with each one-writer reference; no target is set."""
    ours = sides["depictiod"]
    rows = []
    for reference in (sides["file"], sides["lake"]):
        for metric, unit in (("files_per_s", "files/s"), ("rows_per_s", "rows/s")):
            rows.append(
                Comparison(
                    case=CASE,
                    metric=unit,
                    unit=unit,
                    ours=ours.figures[metric],
                    reference=reference.tool,
                    theirs=reference.figures[metric],
                    ratio=ours.figures[metric] / reference.figures[metric],
                )
            )
    return rows
