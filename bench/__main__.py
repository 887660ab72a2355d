"""Run the benchmarks: `python -m bench` for all cases, `python -m bench NAME` for one.

Each case generates its own data under a temporary folder, runs a warm-up, then times
depictiod and a reference tool on the same files several times and prints both medians,
their ratio and the peak resident memory of this process.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.cases import CASES, Case


def _median_seconds(action: Callable[[], None], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _run_case(case: Case, repeats: int) -> None:
    with tempfile.TemporaryDirectory(prefix=f"bench-{case.name}-") as folder:
        root = Path(folder)
        case.generate(root)
        case.depictiod(root)  # Warm-up: file cache, imports.
        case.reference(root)
        ours = _median_seconds(lambda: case.depictiod(root), repeats)
        theirs = _median_seconds(lambda: case.reference(root), repeats)
    # ru_maxrss is in KiB on Linux.
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{case.name:<16} depictiod {ours:8.3f} s   {case.reference_name} {theirs:8.3f} s   "
        f"ratio {ours / theirs:5.2f}   peak RSS {peak_mib:7.1f} MiB"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"cases to run (default: all): {', '.join(CASES)}")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per tool (default 5)")
    arguments = parser.parse_args(argv)

    unknown = [name for name in arguments.names if name not in CASES]
    if unknown:
        print(f"unknown cases {unknown}; valid cases: {', '.join(CASES)}", file=sys.stderr)
        return 2
    for name in arguments.names or list(CASES):
        _run_case(CASES[name], arguments.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
