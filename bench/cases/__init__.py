"""The benchmark cases, by name: each generates its data and runs depictiod and its references on it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec

from bench.cases import (
    api_throughput,
    big_file,
    event_latency,
    incremental_run,
    ingest_two_writers,
    many_files,
    rescan_unchanged,
)
from bench.results import Comparison, Plan, Side


class Case(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    # Writes the case's data under a folder, at a size of bench.results.Plan.size.
    generate: Callable[[Path, str], None]
    # The tools that run on the data, by side name; "depictiod" comes first, then the references.
    sides: dict[str, Callable[[Path, Plan], Side]]
    # Turns the figures of every side into rows of the final table.
    compare: Callable[[dict[str, Side]], list[Comparison]]
    # True when the sides start a PostgreSQL cluster (tests/postgres.py), so they need its binaries.
    needs_postgres: bool = False


CASES: dict[str, Case] = {
    "many_files": Case(
        name="many_files",
        generate=many_files.generate,
        sides={"depictiod": many_files.run_depictiod, "polars": many_files.run_polars, "duckdb": many_files.run_duckdb},
        compare=many_files.compare,
    ),
    "big_file": Case(
        name="big_file",
        generate=big_file.generate,
        sides={"depictiod": big_file.run_depictiod, "duckdb": big_file.run_duckdb},
        compare=big_file.compare,
    ),
    "rescan_unchanged": Case(
        name="rescan_unchanged",
        generate=rescan_unchanged.generate,
        sides={"depictiod": rescan_unchanged.run_depictiod, "walk": rescan_unchanged.run_walk},
        compare=rescan_unchanged.compare,
    ),
    "incremental_run": Case(
        name="incremental_run",
        generate=incremental_run.generate,
        sides={"depictiod": incremental_run.run_depictiod, "rebuild": incremental_run.run_rebuild},
        compare=incremental_run.compare,
    ),
    "event_latency": Case(
        name="event_latency",
        generate=event_latency.generate,
        sides={"depictiod": event_latency.run_depictiod, "duckdb": event_latency.run_duckdb},
        compare=event_latency.compare,
    ),
    "api_throughput": Case(
        name="api_throughput",
        generate=api_throughput.generate,
        sides={"depictiod": api_throughput.run_depictiod, "bare": api_throughput.run_bare},
        compare=api_throughput.compare,
    ),
    "ingest_two_writers": Case(
        name="ingest_two_writers",
        generate=ingest_two_writers.generate,
        sides={
            "depictiod": ingest_two_writers.run_two_lake_writers,
            "file": ingest_two_writers.run_one_file_writer,
            "lake": ingest_two_writers.run_one_lake_writer,
        },
        compare=ingest_two_writers.compare,
        needs_postgres=True,
    ),
}
