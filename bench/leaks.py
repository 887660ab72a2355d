"""Leak check: start and stop the whole service many times in one process, and rescan a tree many times.

`python -m bench.leaks --lifecycles 50 --scans 1000` runs both parts in this process and
samples, after each lifecycle and every few scans: open file descriptors
(/proc/self/fd), Python threads (threading.enumerate), kernel threads
(/proc/self/task, which include DuckDB's own) and resident memory after a garbage
collection (VmRSS). After a warm-up of a fifth of the cycles, the median of the last
three samples must stay within a fixed margin of the median of the first three. The
command prints every sample, and exits with 1 when a resource grew past its margin.

A lifecycle is what `depictiod serve` does. uvicorn starts the app, whose lifespan opens
the catalog and starts the ingestor (start-up scan, watch by events, reconcile
scheduler). A client signs in and reads the project list over HTTP. Then uvicorn stops,
and the lifespan stops the ingestor and closes the catalog. A scan cycle rewrites one
file of a three-run tree with other values and rescans the workflow, as a scheduled
reconcile does, so that every cycle reads a changed file and updates a table.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import msgspec
import uvicorn

from api import create_app
from bench.project import WORKFLOW_ID
from bench.run_tree import METRICS_ROWS, run_tag, write_metrics, write_tree
from bench.servers import ADMIN_EMAIL, ADMIN_PASSWORD, API
from catalog import Catalog
from config import Project, Settings, load_projects, load_settings
from ingestor import Ingestor

logger = logging.getLogger(__name__)

RUNS = 3
# Change events kept in memory (catalog.event_history). The history is bounded, and a short
# one fills up during the warm-up, so that it does not count as growth afterwards.
EVENT_HISTORY = 20
# Cycles before the first sample that counts, as a share of all cycles: caches, the
# allocator's pools and DuckDB's buffers fill up during the first ones.
WARMUP_SHARE = 0.2
# Samples whose median stands for the start and for the end of the measured cycles.
WINDOW = 3
START_SECONDS = 60.0
STOP_SECONDS = 60.0
# Threads that a running service has, by name prefix; each lifecycle checks that they ran.
SERVICE_THREADS = ("APScheduler", "ingest-settle", "watch-events-", "catalog-writer")


class Sample(msgspec.Struct, kw_only=True, frozen=True):
    """The process's resources after `cycle` cycles."""

    cycle: int
    open_files: int
    threads: int
    tasks: int
    rss_mib: float
    # Bytes of the C heap in use (glibc's mallinfo2), in MiB: steadier than RSS, but blind to
    # Python's own memory pools. None without glibc 2.33 or later. It is shown, not checked.
    heap_mib: float | None = None


class Margins(msgspec.Struct, kw_only=True, frozen=True):
    """The growth allowed for each resource from the start to the end of the measured cycles."""

    open_files: int = 2
    threads: int = 2
    # Kernel threads: DuckDB starts and stops its worker threads with each database.
    tasks: int = 4
    # NOTE: part of this margin is used up without any leak. The C heap in use grows by about
    # 29 MiB over the first 2,000 rescans and then stops, as DuckDB 1.5.5 alone does over
    # GROUP BY and ORDER BY queries. RSS grew by 12.6 MiB from rescan 200 to 1,000 in one
    # run; docs/reliability.md has the figures.
    rss_mib: float = 24.0


class LeakCheckError(Exception):
    """Raised when a cycle did not do its work, so its samples would not show what they claim."""


def take_sample(cycle: int) -> Sample:
    """Collect garbage, then count this process's open files and threads and read its resident memory."""
    gc.collect()
    _release_free_memory()
    return Sample(
        cycle=cycle,
        open_files=len(os.listdir("/proc/self/fd")),
        threads=threading.active_count(),
        tasks=len(os.listdir("/proc/self/task")),
        rss_mib=_resident_mib(),
        heap_mib=_heap_in_use_mib(),
    )


def _release_free_memory() -> None:
    """Return what free memory the C heap can release to the system (glibc's malloc_trim).

    Fragmented free memory stays resident all the same, so RSS still varies by about
    10 MiB between samples, which the margins allow for. Without glibc, nothing is released.
    """
    try:
        libc = ctypes.CDLL(None)
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        return


class _MallInfo2(ctypes.Structure):
    """glibc's struct mallinfo2 (malloc.h): sizes in bytes, of type size_t."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _heap_in_use_mib() -> float | None:
    """Return the bytes that malloc has handed out and not taken back (uordblks), in MiB."""
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallInfo2
    return float(mallinfo2().uordblks) / 2**20


def _resident_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmRSS line; the leak check runs on Linux only")


class Growth(msgspec.Struct, kw_only=True, frozen=True):
    """The growth of each resource from the start to the end of the measured samples (medians)."""

    open_files: float
    threads: float
    tasks: float
    rss_mib: float
    # The cycles of the samples that stand for the start and for the end.
    start_cycles: tuple[int, int]
    end_cycles: tuple[int, int]


def measure_growth(samples: list[Sample]) -> Growth:
    """Compare the median of the last WINDOW samples with that of the first WINDOW after the warm-up."""
    warmup = samples[-1].cycle * WARMUP_SHARE
    measured = [sample for sample in samples if sample.cycle >= warmup]
    if len(measured) < 2 * WINDOW:
        raise ValueError(f"{len(measured)} samples after the warm-up; comparing needs {2 * WINDOW} or more")
    first, last = measured[:WINDOW], measured[-WINDOW:]

    def grown(field: str) -> float:
        start = statistics.median(getattr(sample, field) for sample in first)
        return float(statistics.median(getattr(sample, field) for sample in last) - start)

    return Growth(
        open_files=grown("open_files"),
        threads=grown("threads"),
        tasks=grown("tasks"),
        rss_mib=grown("rss_mib"),
        start_cycles=(first[0].cycle, first[-1].cycle),
        end_cycles=(last[0].cycle, last[-1].cycle),
    )


def check_flat(name: str, samples: list[Sample], margins: Margins) -> list[str]:
    """List each resource that grew past its margin from the start to the end of the measured samples."""
    growth = measure_growth(samples)
    problems = []
    for field in ("open_files", "threads", "tasks", "rss_mib"):
        grown, margin = getattr(growth, field), getattr(margins, field)
        if grown > margin:
            problems.append(
                f"{name}: {field} grew by {grown:g} from cycles {growth.start_cycles[0]}-{growth.start_cycles[1]} "
                f"to cycles {growth.end_cycles[0]}-{growth.end_cycles[1]}, more than its margin of {margin:g}"
            )
    return problems


def write_settings(root: Path, project: Path, watch_mode: str, reconcile_seconds: int) -> Settings:
    """Write root/depictio.toml for `project` and load it, ignoring DEPICTIO_ variables of the environment."""
    path = root / "depictio.toml"
    path.write_text(
        f'projects = ["{project}"]\n'
        '[server]\nhost = "127.0.0.1"\nlog_level = "WARNING"\n'
        f'[catalog]\npath = "{root / "catalog.duckdb"}"\nevent_history = {EVENT_HISTORY}\n'
        f'[auth]\nkey_file = "{root / "auth.key"}"\nadmin_email = "{ADMIN_EMAIL}"\n'
        f"[ingest]\nsettle_seconds = 0\nreconcile_seconds = {reconcile_seconds}\n"
        f'watch_mode = "{watch_mode}"\n',
        encoding="utf-8",
    )
    return load_settings(str(path), environ={})


def lifecycles(root: Path, cycles: int, report: Callable[[Sample], None] | None = None) -> list[Sample]:
    """Start and stop the service `cycles` times in this process; sample after each stop."""
    project = write_tree(root / "tree", RUNS)
    # A long reconcile interval schedules the job without running it during a lifecycle.
    settings = write_settings(root, project, "events", reconcile_seconds=3600)
    projects = load_projects(settings.projects)
    samples = [take_sample(0)]
    for cycle in range(1, cycles + 1):
        running = _serve_once(settings, projects)
        missing = [prefix for prefix in SERVICE_THREADS if not any(name.startswith(prefix) for name in running)]
        if missing:
            raise LeakCheckError(f"lifecycle {cycle}: the running service had no thread named {', '.join(missing)}")
        samples.append(take_sample(cycle))
        if report is not None:
            report(samples[-1])
    return samples


def _serve_once(settings: Settings, projects: list[Project]) -> set[str]:
    """Serve the app with uvicorn on a free port, sign in and read the projects, then stop.

    Return the names of the threads that ran while the service served.
    """
    app = create_app(settings, projects, admin_password=ADMIN_PASSWORD)
    # Port 0 lets the kernel choose a free port, and the server's socket then returns it.
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on"))
    # uvicorn installs no signal handlers outside the main thread, so it stops only on should_exit.
    thread = threading.Thread(target=server.run, name="leaks-uvicorn")
    thread.start()
    try:
        _wait_started(server, thread)
        running = {item.name for item in threading.enumerate()}
        port = server.servers[0].sockets[0].getsockname()[1]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            signed_in = client.post(f"{API}/auth/login", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
            signed_in.raise_for_status()
            token = signed_in.json()["access_token"]
            projects_read = client.get(f"{API}/projects/get/all", headers={"Authorization": f"Bearer {token}"})
            projects_read.raise_for_status()
    finally:
        server.should_exit = True
        thread.join(STOP_SECONDS)
    if thread.is_alive():
        raise LeakCheckError(f"uvicorn did not stop within {STOP_SECONDS:g} s")
    return running


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + START_SECONDS
    while not server.started:
        if not thread.is_alive():
            raise LeakCheckError("uvicorn stopped before it served; its error is logged above")
        if time.monotonic() > deadline:
            raise LeakCheckError(f"uvicorn did not start within {START_SECONDS:g} s")
        time.sleep(0.01)


def scan_cycles(root: Path, cycles: int, report: Callable[[Sample], None] | None = None) -> list[Sample]:
    """Rewrite one file and rescan its workflow `cycles` times with a running ingestor; sample every few cycles.

    Raises LeakCheckError when a cycle leaves the table without the changed file's rows.
    """
    project = write_tree(root / "tree", RUNS)
    settings = write_settings(root, project, "off", reconcile_seconds=0)
    every = max(1, cycles // 40)
    catalog = Catalog(settings.catalog.path, settings.catalog)
    ingestor = Ingestor(catalog, settings, load_projects(settings.projects))
    try:
        ingestor.start()
        collection = _metrics_collection(ingestor)
        samples = [take_sample(0)]
        version = _table_version(catalog, collection)
        for cycle in range(1, cycles + 1):
            # Two contents in turn, of the same row count, so that the table does not grow.
            write_metrics(root / "tree" / "data" / run_tag(0), 0, 1 + cycle % 2)
            ingestor.rescan_workflow(WORKFLOW_ID, "schedule")
            version = _check_updated(catalog, collection, cycle, version)
            if cycle % every == 0:
                samples.append(take_sample(cycle))
                if report is not None:
                    report(samples[-1])
    finally:
        ingestor.stop()
        catalog.close()
    return samples


def _metrics_collection(ingestor: Ingestor) -> str:
    collection = ingestor.projects[0].workflows[0].data_collections[0]
    assert collection.id is not None
    return collection.id


def _table_version(catalog: Catalog, collection: str) -> int:
    record = catalog.tables.get(collection)
    if record is None:
        raise LeakCheckError(f"collection {collection} has no table after the start-up scan")
    return record.aggregation_version


def _check_updated(catalog: Catalog, collection: str, cycle: int, version: int) -> int:
    """Return the table's new version; raise LeakCheckError unless the cycle built one with every row."""
    record = catalog.tables.get(collection)
    if record is None or record.aggregation_version <= version:
        raise LeakCheckError(f"scan cycle {cycle}: the changed file was not aggregated into collection {collection}")
    if record.row_count != RUNS * METRICS_ROWS:
        raise LeakCheckError(
            f"scan cycle {cycle}: collection {collection} has {record.row_count} rows, not {RUNS * METRICS_ROWS}"
        )
    return record.aggregation_version


def _print_sample(sample: Sample) -> None:
    heap = f"{sample.heap_mib:>10.1f}" if sample.heap_mib is not None else f"{'-':>10}"
    print(
        f"{sample.cycle:>6} {sample.open_files:>6} {sample.threads:>8} {sample.tasks:>6} {sample.rss_mib:>9.1f}{heap}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.leaks", description=__doc__)
    parser.add_argument("--lifecycles", type=int, default=50, help="service starts and stops (default: 50)")
    parser.add_argument("--scans", type=int, default=1000, help="rescans, each after a file change (default: 1000)")
    arguments = parser.parse_args(argv)
    if arguments.lifecycles < 10 or arguments.scans < 10 * WINDOW:
        parser.error(f"use 10 or more lifecycles and {10 * WINDOW} or more scans, so there are samples to compare")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    problems = []
    header = f"{'cycle':>6} {'files':>6} {'threads':>8} {'tasks':>6} {'RSS MiB':>9} {'heap MiB':>9}"
    with tempfile.TemporaryDirectory(prefix="leaks-") as folder:
        print(f"start and stop, {arguments.lifecycles} times:\n{header}", flush=True)
        samples = lifecycles(Path(folder) / "lifecycles", arguments.lifecycles, _print_sample)
        problems += check_flat("start and stop", samples, Margins())
        print(f"\nrescan after a file change, {arguments.scans} times:\n{header}", flush=True)
        samples = scan_cycles(Path(folder) / "scans", arguments.scans, _print_sample)
        problems += check_flat("scan cycles", samples, Margins())
    for problem in problems:
        print(f"python -m bench.leaks: {problem}", file=sys.stderr)
    if not problems:
        print("\nevery resource stayed within its margin", flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
