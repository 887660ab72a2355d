"""Run the benchmarks: `python -m bench` for all cases, `python -m bench NAME ...` for some.

Each case generates its own data under a temporary folder. depictiod and each reference
tool then run on the same files in their own processes: warm-ups first, then the timed
repeats. The output is one block per case with every tool's figures and peak memory,
then a table of the ratios and targets.
"""

from __future__ import annotations

import argparse
import sys

from bench.results import Plan
from bench.runner import CASES, BenchError, print_case, print_table, run_case


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"cases to run (default: all): {', '.join(CASES)}")
    parser.add_argument(
        "--size", choices=["tiny", "full"], default="full", help="tiny runs in seconds and checks that the cases work"
    )
    parser.add_argument("--repeats", type=int, help="timed runs per tool (default: 3, or 1 at --size tiny)")
    parser.add_argument("--warmups", type=int, help="untimed runs before them (default: 1, or 0 at --size tiny)")
    arguments = parser.parse_args(argv)

    unknown = [name for name in arguments.names if name not in CASES]
    if unknown:
        print(f"unknown cases {unknown}; valid cases: {', '.join(CASES)}", file=sys.stderr)
        return 2
    # At the tiny size each tool runs once, untimed warm-ups excluded, to keep the test suite quick.
    tiny = arguments.size == "tiny"
    repeats = arguments.repeats or (1 if tiny else 3)
    warmups = arguments.warmups
    if warmups is None:
        warmups = 0 if tiny else 1
    plan = Plan(size=arguments.size, repeats=repeats, warmups=warmups)
    comparisons = []
    for name in arguments.names or list(CASES):
        try:
            result = run_case(CASES[name], plan)
        except BenchError as error:
            print(f"python -m bench: {error}", file=sys.stderr)
            return 1
        print_case(result)
        comparisons.extend(result.comparisons)
    print_table(comparisons)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
