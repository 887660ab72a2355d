"""api_throughput: requests per second and latency of three routes under 32 concurrent clients.

The routes are GET /projects/get/all, GET /deltatables/preview/{id} and a page of
GET /datacollections/{id}/rows (a filter, a sort and a limit) on a table of 1,000,000
rows. The clients run in the benchmark's process, the server in its own. Reference: a
bare Litestar and msgspec app with the same JWT check that returns a constant list (the
body of depictiod's /projects/get/all), served by uvicorn with the same options.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import duckdb
import httpx
import jwt

from bench.bare_app import ALGORITHM, ROUTE, load_private_key
from bench.load import LoadFigures, run_load
from bench.project import Collection, collection_id, write_project
from bench.results import Comparison, Plan, Side, limit_row, ratio_row
from bench.servers import API, sign_in, start_bare_app, start_depictiod, stop, wait_ready

ROWS = {"tiny": 10_000, "full": 1_000_000}
# Seconds of load per route; the warm-up loads for a fifth of that.
LOAD_SECONDS = {"tiny": 1.0, "full": 8.0}
CLIENTS = 32
COLLECTION = Collection(id=collection_id(1), tag="variants", pattern=r"variants\.csv$")
RATIO_LIMIT = 0.7
ROWS_P99_LIMIT_MS = 50.0


def _routes() -> dict[str, list[str]]:
    """Return the paths that the clients request in turn, by route name."""
    rows = [
        f"{API}/datacollections/{COLLECTION.id}/rows?score__ge={threshold}&sort=-score,position&limit=100"
        for threshold in (10, 250, 500, 750, 900)
    ]
    return {
        "projects": [f"{API}/projects/get/all"],
        "preview": [f"{API}/deltatables/preview/{COLLECTION.id}?limit=100"],
        "rows": rows,
    }


def generate(root: Path, size: str) -> None:
    """Write the table's one file with DuckDB COPY."""
    path = root / "data" / "run_0001" / "variants.csv"
    path.parent.mkdir(parents=True)
    connection = duckdb.connect()
    try:
        connection.execute(
            f"""COPY (
                SELECT 'chr' || (i % 22 + 1) AS chromosome, i AS position, 's' || (i % 96) AS sample,
                       round((i * 7919 % 1000000) / 1000.0, 3) AS score, i % 5 = 0 AS passed
                FROM range({ROWS[size]}) AS rows(i)
            ) TO '{path}' (FORMAT csv, HEADER true)"""
        )
    finally:
        connection.close()
    write_project(root, [COLLECTION])


def _load(port: int, paths: list[str], token: str, plan: Plan) -> LoadFigures:
    seconds = LOAD_SECONDS[plan.size]
    if plan.warmups:
        run_load(port, paths, token, CLIENTS, seconds / 5)
    figures = run_load(port, paths, token, CLIENTS, seconds)
    if figures.errors:
        raise RuntimeError(f"{figures.errors} of {figures.requests} requests to {paths[0]} got a status other than 200")
    return figures


def run_depictiod(root: Path, plan: Plan) -> Side:
    """Serve the table with `depictiod serve` and load each route in turn; leave its projects body for the bare app."""
    server = start_depictiod(root / "service", root / "project.yaml", 0, "off")
    figures: dict[str, float] = {}
    try:
        wait_ready(server, "/health/ready", 600)
        token = sign_in(server)
        headers = {"Authorization": f"Bearer {token}"}
        projects = httpx.get(f"{server.base_url}{API}/projects/get/all", headers=headers, timeout=30)
        projects.raise_for_status()
        (root / "projects.json").write_bytes(projects.content)
        preview = httpx.get(f"{server.base_url}{API}/deltatables/preview/{COLLECTION.id}", headers=headers, timeout=30)
        rows = int(preview.json()["total_rows"])
        for name, paths in _routes().items():
            load = _load(server.port, paths, token, plan)
            figures |= {
                f"{name}_rps": load.requests_per_second,
                f"{name}_p50_ms": load.p50_ms,
                f"{name}_p99_ms": load.p99_ms,
            }
    finally:
        peak = stop(server)
    return Side(tool="depictiod serve", figures=figures, peak_rss_mib=peak, rows=rows, expected_rows=ROWS[plan.size])


def run_bare(root: Path, plan: Plan) -> Side:
    """Serve depictiod's projects body from the bare app, with a token signed by depictiod's key."""
    key_file = root / "service" / "auth.key"
    now = int(time.time())
    claims = {"sub": "bench", "jti": secrets.token_hex(16), "iat": now, "exp": now + 3600, "type": "access"}
    token = jwt.encode(claims, load_private_key(key_file), algorithm=ALGORITHM)
    server = start_bare_app(root, key_file, root / "projects.json")
    try:
        wait_ready(server, ROUTE, 60)
        load = _load(server.port, [ROUTE], token, plan)
    finally:
        peak = stop(server)
    return Side(
        tool="bare litestar",
        figures={"rps": load.requests_per_second, "p50_ms": load.p50_ms, "p99_ms": load.p99_ms},
        peak_rss_mib=peak,
    )


def compare(sides: dict[str, Side]) -> list[Comparison]:
    ours, bare = sides["depictiod"], sides["bare"]
    rows = [
        ratio_row(
            "api_throughput",
            f"{name} req/s",
            "req/s",
            ours.figures[f"{name}_rps"],
            bare.tool,
            bare.figures["rps"],
            RATIO_LIMIT,
            higher_is_better=True,
        )
        for name in ("projects", "preview")
    ]
    rows.append(
        Comparison(
            case="api_throughput",
            metric="rows req/s",
            unit="req/s",
            ours=ours.figures["rows_rps"],
            reference=bare.tool,
            theirs=bare.figures["rps"],
            ratio=ours.figures["rows_rps"] / bare.figures["rps"],
        )
    )
    rows.append(limit_row("api_throughput", "rows p99", "ms", ours.figures["rows_p99_ms"], ROWS_P99_LIMIT_MS))
    return rows
