"""Run cases: generate the data, run each side in its own process, and print their figures."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from bench.cases import CASES, Case
from bench.results import Comparison, Plan, Side

# A side still running after this many seconds is stopped, so that one stuck side cannot hang the whole run.
SIDE_TIMEOUT_SECONDS = 900


class BenchError(Exception):
    """Raised when a side of a case fails or returns a wrong result."""


class CaseResult(msgspec.Struct, kw_only=True):
    name: str
    sides: dict[str, Side]
    comparisons: list[Comparison]
    # Wall time of the whole case: generation, every side, warm-ups and clean-up.
    seconds: float


def run_case(case: Case, plan: Plan) -> CaseResult:
    """Generate the case's data in a temporary folder, run every side on it, then delete the folder."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"bench-{case.name}-") as folder:
        _run_side(case, "generate", Path(folder), plan)
        sides = {}
        for name in case.sides:
            output = _run_side(case, name, Path(folder), plan)
            sides[name] = msgspec.json.decode(output.strip().splitlines()[-1], type=Side)
    for name, side in sides.items():
        if side.rows != side.expected_rows:
            raise BenchError(f"{case.name}: {name} built {side.rows} rows where {side.expected_rows} were generated")
    return CaseResult(
        name=case.name, sides=sides, comparisons=case.compare(sides), seconds=time.perf_counter() - started
    )


def _run_side(case: Case, side: str, folder: Path, plan: Plan) -> str:
    command = [
        sys.executable,
        "-m",
        "bench.side",
        case.name,
        side,
        str(folder),
        f"--size={plan.size}",
        f"--repeats={plan.repeats}",
        f"--warmups={plan.warmups}",
    ]
    # Standard error passes through, so warnings and tracebacks of the side are seen as they come.
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True, timeout=SIDE_TIMEOUT_SECONDS, check=False)
    if result.returncode != 0:
        raise BenchError(f"{case.name}: side {side} exited with {result.returncode}; its error output is above")
    return result.stdout


def format_side(side: Side) -> str:
    """Return a side's figures on one line, such as `depictiod 7.310 s, 287 MiB`."""
    parts = []
    for name, value in side.figures.items():
        if name == "seconds":
            parts.append(f"{value:.3f} s")
        elif name.endswith("_ms"):
            parts.append(f"{name.removesuffix('_ms').replace('_', ' ')} {value:.1f} ms")
        elif name == "rps" or name.endswith("_rps"):
            parts.append(f"{name.removesuffix('rps').replace('_', ' ')}{value:,.0f} req/s")
        elif name.endswith("_per_s"):
            parts.append(f"{value:,.1f} {name.removesuffix('_per_s')}/s")
        else:
            parts.append(f"{name} {value:g}")
    return f"{side.tool}: {', '.join(parts)}; peak RSS {side.peak_rss_mib:,.0f} MiB"


def print_case(result: CaseResult) -> None:
    print(f"{result.name} ({result.seconds:.0f} s in all)", flush=True)
    for side in result.sides.values():
        print(f"    {format_side(side)}", flush=True)


def print_table(comparisons: list[Comparison]) -> None:
    """Print the comparisons as a Markdown table, ready for docs/benchmarks.md."""
    print()
    print("| case | metric | depictiod | reference | ratio | target | met |")
    print("|---|---|---|---|---|---|---|")
    for row in comparisons:
        theirs = f"{row.reference} {_value(row.theirs, row.unit)}" if row.reference else "-"
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else "-"
        met = {None: "-", True: "yes", False: "no"}[row.met]
        print(
            f"| {row.case} | {row.metric} | {_value(row.ours, row.unit)} | {theirs} | {ratio} | {row.target} | {met} |"
        )


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.3f} s"
    return f"{value:,.1f} {unit}"


__all__ = ["CASES", "BenchError", "CaseResult", "format_side", "print_case", "print_table", "run_case"]
