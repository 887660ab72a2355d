"""Load while ingesting: API clients on a live `depictiod serve` while runs are added to the tree it watches.

`python -m bench.load_while_ingesting --runs 200 --clients 32 --seconds 60` writes a tenth
of the runs and starts the service on 127.0.0.1. It then loads the read routes from this
process. Meanwhile a thread adds the other runs in batches over the first three quarters
of the load period, and rewrites a file of an earlier run every third batch. Once the
load ends, it waits for a scan that started after the last write settled, stops the
service and compares every table of its catalog with a DuckDB read of the files.

It prints requests/s, p50/p99 latency and errors, and exits with 1 when a check fails.
A request must get 200 without a connection failure or a timeout. Runs must be ingested
during the load, a later scan must read the last write, and every table must equal its
files. The service must log no error and stop cleanly.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec

from bench.project import PROJECT_ID, WORKFLOW_ID
from bench.route_load import RouteLoad, run_route_load
from bench.run_tree import COLLECTIONS, TableCheck, TreeGrowth, check_tables, run_tag, write_tree
from bench.servers import API, Server, sign_in, start_depictiod, stop, wait_ready

# Share of the load period over which the runs are added, so the last ones are ingested under load too.
GROWTH_SHARE = 0.75
# Seconds between two batches of new runs.
BATCH_SECONDS = 1.5
SETTLE_SECONDS = 0.5
RECONCILE_SECONDS = 5
# Seconds allowed, after the load, for a scan that reads the last write.
CATCH_UP_SECONDS = 120.0
START_SECONDS = 120.0
# Matches the times of the scan reports (api.schemas.TIME_FORMAT), which are in UTC.
_REPORT_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# Log lines that show a failure inside the service, whatever the responses were.
_LOG_FAILURE_MARKS = (" ERROR ", " CRITICAL ", "Traceback")
# The start of catalog.store's warning for a CHECKPOINT that found another transaction open.
_CHECKPOINT_FAILURE = "WARNING catalog.store: checkpoint of catalog"


class LoadWhileIngesting(msgspec.Struct, kw_only=True, frozen=True):
    """The outcome of one run: the load figures, what was ingested meanwhile, and the final checks."""

    runs: int
    runs_at_start: int
    files_rewritten: int
    # Runs that GET /runs/list returned right after the load: those ingested under load.
    runs_listed_after_load: int
    load: RouteLoad
    # Scans of the workflow after the start-up scan, by trigger (event, schedule, ...).
    scans: dict[str, int]
    # True once a scan that started after the last write settled had built the tables,
    # within CATCH_UP_SECONDS after the load. The final checks read the catalog after it.
    caught_up: bool
    tables: list[TableCheck]
    server_exit_code: int | None
    log_failures: list[str]
    # CHECKPOINT needs a moment with no open transaction, which a loaded API seldom gives, so
    # the write-ahead log grows until one succeeds. These two figures show how far it went.
    checkpoint_failures: int
    wal_mib_after_load: float
    peak_rss_mib: float

    def problems(self) -> list[str]:
        """List every requirement that this run broke; empty when it held them all."""
        problems = []
        if self.load.errors:
            problems.append(
                f"{self.load.errors} of {self.load.requests} requests failed: {self.load.bad_statuses} statuses "
                f"other than 200, {self.load.connection_failures} connection failures, {self.load.timeouts} timeouts"
            )
        if self.runs_listed_after_load <= self.runs_at_start:
            problems.append(
                f"no run was ingested under load: {self.runs_listed_after_load} runs listed after it, "
                f"{self.runs_at_start} before"
            )
        if not self.caught_up:
            problems.append(f"no scan saw the last files within {CATCH_UP_SECONDS:g} s after the load")
        problems += [f"table {table.tag} differs from its files: {table}" for table in self.tables if not table.correct]
        if self.server_exit_code != 0:
            problems.append(f"depictiod serve exited with {self.server_exit_code} after SIGINT")
        if self.log_failures:
            problems.append(f"the service logged {len(self.log_failures)} failures, first: {self.log_failures[0]}")
        return problems


def read_routes(run_ids: list[str]) -> dict[str, list[str]]:
    """Return the paths that stand for each read route, over the generated project."""
    metrics, summary = COLLECTIONS
    return {
        "projects": [f"{API}/projects/get/all", f"{API}/projects/get/from_id?project_id={PROJECT_ID}"],
        "workflows": [f"{API}/workflows/get_all_workflows", f"{API}/workflows/get/from_id?workflow_id={WORKFLOW_ID}"],
        "data collections": [f"{API}/datacollections/specs/{collection.id}" for collection in COLLECTIONS],
        "shape": [f"{API}/deltatables/shape/{collection.id}" for collection in COLLECTIONS],
        "preview": [
            f"{API}/deltatables/preview/{metrics.id}?limit=50",
            f"{API}/deltatables/preview/{summary.id}?limit=20&passed__eq=true",
        ],
        "rows": [
            f"{API}/datacollections/{metrics.id}/rows?depth__ge=250&sort=-score&limit=100",
            f"{API}/datacollections/{metrics.id}/rows?depictio_run_id__eq={run_tag(0)}&total=true",
            f"{API}/datacollections/{summary.id}/rows?limit=100",
        ],
        "runs": [f"{API}/runs/list/{WORKFLOW_ID}", *(f"{API}/runs/get/{run_id}" for run_id in run_ids)],
        "files": [f"{API}/files/list/{collection.id}" for collection in COLLECTIONS],
        "status": [f"{API}/utils/status"],
    }


def run(root: Path, runs: int, clients: int, seconds: float) -> LoadWhileIngesting:
    """Run the whole procedure in `root`, which then contains the tree, the catalog and the service's log."""
    runs_at_start = max(1, runs // 10)
    tree = root / "tree"
    project = write_tree(tree, runs_at_start)
    server = start_depictiod(
        root / "service", project, SETTLE_SECONDS, "auto", reconcile_seconds=RECONCILE_SECONDS, log_level="INFO"
    )
    growth_seconds = seconds * GROWTH_SHARE
    growth = TreeGrowth(tree, runs_at_start, runs, growth_seconds, math.ceil(growth_seconds / BATCH_SECONDS))
    try:
        wait_ready(server, "/health", START_SECONDS)
        token = sign_in(server)
        with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:
            run_ids = [str(item["_id"]) for item in _get(api, f"{API}/runs/list/{WORKFLOW_ID}")][:4]
            growth.start()
            load = run_route_load(server.port, read_routes(run_ids), token, clients, seconds)
            runs_listed = len(_get(api, f"{API}/runs/list/{WORKFLOW_ID}"))
            wal_mib = _wal_mib(root / "service" / "catalog.duckdb")
            if not growth.join(timeout=60):
                raise RuntimeError("writing the run tree did not finish within 60 s after the load")
            if growth.error is not None:
                raise RuntimeError(f"writing the run tree failed: {growth.error}") from growth.error
            caught_up = _wait_for_last_scan(api, growth.finished_at + SETTLE_SECONDS)
            scans = _scans_by_trigger(api)
    finally:
        growth.stop()
        # A service that died under load has no /proc entry left to read its peak memory from.
        peak = stop(server) if server.process.poll() is None else 0.0
    return LoadWhileIngesting(
        runs=runs,
        runs_at_start=runs_at_start,
        files_rewritten=growth.files_rewritten,
        runs_listed_after_load=runs_listed,
        load=load,
        scans=scans,
        caught_up=caught_up,
        tables=check_tables(root / "service" / "catalog.duckdb", tree),
        server_exit_code=server.process.returncode,
        log_failures=_log_lines(server, _LOG_FAILURE_MARKS),
        checkpoint_failures=len(_log_lines(server, (_CHECKPOINT_FAILURE,))),
        wal_mib_after_load=wal_mib,
        peak_rss_mib=peak,
    )


def _get(api: httpx.Client, path: str) -> list[dict[str, object]]:
    response = api.get(path)
    response.raise_for_status()
    body: list[dict[str, object]] = response.json()
    return body


def _wait_for_last_scan(api: httpx.Client, settled_at: float) -> bool:
    """Wait for a workflow scan that started after `settled_at` (a wall-clock time) and built its tables.

    Return False when none did within CATCH_UP_SECONDS. Report times have whole seconds, so
    the scan must start at the next whole second or later.
    """
    threshold = datetime.fromtimestamp(math.ceil(settled_at), tz=UTC).strftime(_REPORT_TIME_FORMAT)
    deadline = time.monotonic() + CATCH_UP_SECONDS
    while time.monotonic() < deadline:
        response = api.get(f"{API}/scans", params={"project_id": PROJECT_ID, "limit": 1})
        response.raise_for_status()
        reports = response.json()["scans"]
        if reports and _saw_everything(reports[0], threshold):
            return True
        time.sleep(0.2)
    return False


def _saw_everything(report: dict[str, object], threshold: str) -> bool:
    collections = report["collections"]
    assert isinstance(collections, list)
    return (
        str(report["started_at"]) >= threshold
        and report["files_unsettled"] == 0
        and len(collections) == len(COLLECTIONS)
        and all(item["outcome"] is not None for item in collections)
    )


def _scans_by_trigger(api: httpx.Client) -> dict[str, int]:
    response = api.get(f"{API}/scans", params={"project_id": PROJECT_ID, "limit": 500})
    response.raise_for_status()
    triggers = Counter(str(report["trigger"]) for report in response.json()["scans"])
    triggers.pop("startup", None)
    return dict(triggers.most_common())


def _log_lines(server: Server, marks: tuple[str, ...]) -> list[str]:
    """Return the lines of the service's log that contain one of `marks`."""
    lines = server.log.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line for line in lines if any(mark in line for mark in marks)]


def _wal_mib(catalog: Path) -> float:
    """Return the size of the catalog's write-ahead log in MiB, 0 when DuckDB has none open."""
    wal = catalog.with_name(catalog.name + ".wal")
    return wal.stat().st_size / 2**20 if wal.exists() else 0.0


def format_report(result: LoadWhileIngesting) -> str:
    """Return the figures as plain text: totals, one line per route, ingestion and the final checks."""
    load = result.load
    lines = [
        f"{load.clients} clients for {load.seconds:.1f} s over {len(load.routes)} read routes, while ingesting "
        f"{result.runs} runs ({result.runs_at_start} at start, {result.files_rewritten} files rewritten)",
        f"requests: {load.requests:,} ({load.requests_per_second:,.0f} req/s), p50 {load.p50_ms:.1f} ms, "
        f"p99 {load.p99_ms:.1f} ms, max {load.max_ms:.1f} ms",
        f"errors: {load.errors} (statuses other than 200: {load.bad_statuses}, connection failures: "
        f"{load.connection_failures}, timeouts: {load.timeouts})",
        "",
        f"{'route':<18} {'requests':>9} {'p50 ms':>8} {'p99 ms':>8}  statuses",
    ]
    for route in load.routes:
        statuses = ", ".join(f"{status}: {count:,}" for status, count in route.statuses.items())
        lines.append(f"{route.route:<18} {route.requests:>9,} {route.p50_ms:>8.1f} {route.p99_ms:>8.1f}  {statuses}")
    scans = ", ".join(f"{trigger} {count}" for trigger, count in result.scans.items()) or "none"
    lines += [
        "",
        f"ingestion: {result.runs_listed_after_load} of {result.runs} runs listed right after the load; "
        f"scans after start-up: {scans}; a later scan saw the last write: {'yes' if result.caught_up else 'NO'}",
    ]
    for table in result.tables:
        verdict = "correct" if table.correct else "WRONG"
        lines.append(
            f"table {table.tag}: {table.table_rows:,} rows for {table.expected_rows:,} in the files, "
            f"{table.missing_rows} missing, {table.unexpected_rows} unexpected, {table.file_ids} file ids for "
            f"{table.source_files} files: {verdict}"
        )
    lines.append(
        f"service: exit code {result.server_exit_code}, {len(result.log_failures)} ERROR lines or tracebacks "
        f"in its log, peak RSS {result.peak_rss_mib:,.0f} MiB; {result.checkpoint_failures} checkpoints failed, "
        f"write-ahead log {result.wal_mib_after_load:.1f} MiB right after the load"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load_while_ingesting", description=__doc__)
    parser.add_argument("--runs", type=int, default=200, help="runs in the tree at the end, 10 or more (default: 200)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections (default: 32)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the load in seconds (default: 60)")
    parser.add_argument("--keep", type=Path, help="work in this new folder and keep it, with the service's log")
    arguments = parser.parse_args(argv)
    if arguments.runs < 10:
        parser.error(f"--runs {arguments.runs} is too small: use 10 or more, so runs can be added under load")

    if arguments.keep is not None:
        arguments.keep.mkdir(parents=True)
        result = run(arguments.keep, arguments.runs, arguments.clients, arguments.seconds)
    else:
        with tempfile.TemporaryDirectory(prefix="load-while-ingesting-") as folder:
            result = run(Path(folder), arguments.runs, arguments.clients, arguments.seconds)
    print(format_report(result), flush=True)
    problems = result.problems()
    for problem in problems:
        print(f"python -m bench.load_while_ingesting: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
