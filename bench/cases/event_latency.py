"""event_latency: a 1 MB CSV written into a new run of a running service, until the API returns its rows.

Each sample is the time from the close of the file to the first response of
GET /deltatables/preview/{id} that contains the run's rows, minus the configured settle
window. Reference, for scale: DuckDB loading the same file into an on-disk table right
after its close; the target is absolute.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import httpx
import msgspec

from bench.project import Collection, collection_id, write_project
from bench.results import Comparison, Plan, Side, limit_row
from bench.servers import API, sign_in, start_depictiod, stop, wait_ready
from bench.timing import count_rows, own_peak_rss_mib, percentile


class Size(msgspec.Struct, frozen=True):
    # Timed files; p99 of 20 samples is their maximum.
    samples: int
    settle_seconds: float


SIZES = {"tiny": Size(samples=2, settle_seconds=0.2), "full": Size(samples=20, settle_seconds=1.0)}
COLLECTION = Collection(id=collection_id(1), tag="events", pattern=r"events\.csv$")
# About 1 MB: 26,000 rows of about 40 bytes.
ROWS_PER_FILE = 26_000
FIRST_RUNS = 3
POLL_SECONDS = 0.01
# A file whose rows do not show within this time fails the case.
SAMPLE_DEADLINE_SECONDS = 60.0
P50_LIMIT_MS = 250.0
P99_LIMIT_MS = 1000.0


def _payload(root: Path) -> bytes:
    return (root / "payload.csv").read_bytes()


def generate(root: Path, size: str) -> None:
    """Write the 1 MB file once as root/payload.csv, and copy it into the first runs."""
    lines = [f"s{i % 48},gene_{i},{(i * 7919) % 100_000},{(i % 1000) / 8}" for i in range(ROWS_PER_FILE)]
    payload = ("sample,gene,count,score\n" + "\n".join(lines) + "\n").encode("ascii")
    (root / "payload.csv").write_bytes(payload)
    for run in range(FIRST_RUNS):
        folder = root / "data" / f"run_{run:04d}"
        folder.mkdir(parents=True)
        (folder / "events.csv").write_bytes(payload)
    write_project(root, [COLLECTION])


def _write_run(root: Path, name: str, payload: bytes) -> float:
    """Write the payload as the events.csv of a new run; return the time of its close."""
    folder = root / "data" / name
    folder.mkdir()
    with (folder / "events.csv").open("wb") as output:
        output.write(payload)
    return time.perf_counter()


def run_depictiod(root: Path, plan: Plan) -> Side:
    """Start the service with file system events, then time each new run's file until its rows are served."""
    params = SIZES[plan.size]
    payload = _payload(root)
    server = start_depictiod(root / "service", root / "project.yaml", params.settle_seconds, "events")
    try:
        wait_ready(server, "/health/ready", 120)
        headers = {"Authorization": f"Bearer {sign_in(server)}"}
        latencies = []
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as client:
            for index in range(plan.warmups + params.samples):
                name = f"run_new_{index:03d}"
                closed = _write_run(root, name, payload)
                seen = _wait_for_rows(client, name)
                if index >= plan.warmups:
                    latencies.append(seen - closed - params.settle_seconds)
            preview = client.get(f"{API}/deltatables/preview/{COLLECTION.id}", params={"limit": 1})
            rows = int(preview.json()["total_rows"])
    finally:
        peak = stop(server)
    return Side(
        tool="depictiod serve",
        figures={
            "p50_ms": percentile(latencies, 0.5) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
            "settle_seconds": params.settle_seconds,
        },
        peak_rss_mib=peak,
        rows=rows,
        expected_rows=(FIRST_RUNS + plan.warmups + params.samples) * ROWS_PER_FILE,
        samples=latencies,
    )


def _wait_for_rows(client: httpx.Client, run_tag: str) -> float:
    """Poll the preview of the run's rows until one comes back; return the time of that response."""
    deadline = time.perf_counter() + SAMPLE_DEADLINE_SECONDS
    while time.perf_counter() < deadline:
        response = client.get(
            f"{API}/deltatables/preview/{COLLECTION.id}", params={"depictio_run_id__eq": run_tag, "limit": 1}
        )
        arrived = time.perf_counter()
        response.raise_for_status()
        if response.json()["rows"]:
            return arrived
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"the rows of {run_tag} were not served within {SAMPLE_DEADLINE_SECONDS:g} s")


def run_duckdb(root: Path, plan: Plan) -> Side:
    """Write each file the same way, then load it with DuckDB read_csv into an on-disk table at once."""
    params = SIZES[plan.size]
    payload = _payload(root)
    latencies = []
    rows = 0
    connection = duckdb.connect(str(root / "reference.duckdb"))
    try:
        for index in range(plan.warmups + params.samples):
            name = f"reference_{index:03d}"
            closed = _write_run(root, name, payload)
            connection.execute(
                f"CREATE TABLE {name} AS SELECT * FROM read_csv(?)", [str(root / "data" / name / "events.csv")]
            )
            rows = count_rows(connection, name)
            if index >= plan.warmups:
                latencies.append(time.perf_counter() - closed)
    finally:
        connection.close()
    return Side(
        tool="duckdb read_csv",
        figures={"p50_ms": percentile(latencies, 0.5) * 1000, "p99_ms": percentile(latencies, 0.99) * 1000},
        peak_rss_mib=own_peak_rss_mib(),
        rows=rows,
        expected_rows=ROWS_PER_FILE,
        samples=latencies,
    )


def compare(sides: dict[str, Side]) -> list[Comparison]:
    ours, duckdb_side = sides["depictiod"], sides["duckdb"]
    return [
        limit_row(
            "event_latency",
            f"p{percent} over settle",
            "ms",
            ours.figures[f"p{percent}_ms"],
            limit,
            reference=duckdb_side.tool,
            theirs=duckdb_side.figures[f"p{percent}_ms"],
        )
        for percent, limit in ((50, P50_LIMIT_MS), (99, P99_LIMIT_MS))
    ]
