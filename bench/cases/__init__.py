"""The benchmark cases, by name: each generates its data and runs depictiod and its references on it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec

from bench.cases import many_files
from bench.results import Comparison, Plan, Side


class Case(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    # Writes the case's data under a folder, at a size of bench.results.Plan.size.
    generate: Callable[[Path, str], None]
    # The tools that run on the data, by side name; "depictiod" comes first, then the references.
    sides: dict[str, Callable[[Path, Plan], Side]]
    # Turns the figures of every side into rows of the final table.
    compare: Callable[[dict[str, Side]], list[Comparison]]


CASES: dict[str, Case] = {
    "many_files": Case(
        name="many_files",
        generate=many_files.generate,
        sides={"depictiod": many_files.run_depictiod, "polars": many_files.run_polars, "duckdb": many_files.run_duckdb},
        compare=many_files.compare,
    ),
}
