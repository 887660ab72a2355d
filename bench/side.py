"""Run one side of one case in its own process, so that its peak memory is its own.

`python -m bench.side CASE SIDE FOLDER --size SIZE --repeats N --warmups N` prints the
side's figures as one line of JSON on standard output. SIDE `generate` writes the data.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import msgspec

from bench.cases import CASES
from bench.results import Plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.side", description=__doc__)
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("side", help="generate, depictiod, or the name of a reference")
    parser.add_argument("folder", type=Path, help="the folder with the case's data")
    parser.add_argument("--size", choices=["tiny", "full"], default="full")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmups", type=int, default=1)
    arguments = parser.parse_args(argv)
    # depictiod logs one INFO line per scan; the benchmark prints its own lines instead.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    case = CASES[arguments.case]
    if arguments.side == "generate":
        case.generate(arguments.folder, arguments.size)
        return 0
    if arguments.side not in case.sides:
        parser.error(f"case {case.name} has no side {arguments.side!r}; use generate or one of {', '.join(case.sides)}")
    plan = Plan(size=arguments.size, repeats=arguments.repeats, warmups=arguments.warmups)
    side = case.sides[arguments.side](arguments.folder, plan)
    sys.stdout.write(msgspec.json.encode(side).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
