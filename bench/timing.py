"""Timing and memory helpers shared by the cases."""

from __future__ import annotations

import math
import resource
import statistics
import time
from collections.abc import Callable

import duckdb

from bench.results import Plan, Side


def timed_runs(action: Callable[[int], None], plan: Plan, prepare: Callable[[int], None] | None = None) -> list[float]:
    """Run `action(index)` for the warm-ups, then time each of the repeats; return the timed seconds.

    The index counts every run from 0, warm-ups included, so that a run can name what it adds.
    `prepare(index)`, when given, runs before each action and is not timed.
    """
    samples = []
    for index in range(plan.warmups + plan.repeats):
        if prepare is not None:
            prepare(index)
        started = time.perf_counter()
        action(index)
        if index >= plan.warmups:
            samples.append(time.perf_counter() - started)
    return samples


def timed_side(tool: str, samples: list[float], rows: int | None, expected_rows: int | None) -> Side:
    """Return the figures of a tool timed in this process: the median of `samples`, and the peak memory so far."""
    return Side(
        tool=tool,
        figures={"seconds": median(samples)},
        peak_rss_mib=own_peak_rss_mib(),
        rows=rows,
        expected_rows=expected_rows,
        samples=samples,
    )


def count_rows(connection: duckdb.DuckDBPyConnection, table: str) -> int:
    """Return the row count of `table`, a name written by the benchmark itself."""
    found = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(found[0]) if found else 0


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def percentile(samples: list[float], fraction: float) -> float:
    """Return the `fraction` quantile of `samples` by the nearest-rank method (0.99 gives p99)."""
    ordered = sorted(samples)
    # The small tolerance keeps 0.5 * 10 at rank 5 despite rounding in the product.
    rank = max(1, math.ceil(fraction * len(ordered) - 1e-9))
    return ordered[rank - 1]


def own_peak_rss_mib() -> float:
    """Return the peak resident memory of this process so far, in MiB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def process_peak_rss_mib(pid: int) -> float:
    """Return the peak resident memory of a running process, from VmHWM in /proc (Linux), in MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmHWM line; peak memory is read on Linux only")
