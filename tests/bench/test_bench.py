"""Every benchmark case once at the tiny size, so that `make bench` keeps working.

These tests check that each case runs and that depictiod's tables hold the generated
rows (run_case raises BenchError otherwise). They do not check any time.
"""

from __future__ import annotations

import os

import pytest

from bench.cases import CASES, ingest_two_writers
from bench.results import Plan, Side
from bench.runner import run_case
from tests.postgres import REQUIRE_POSTGRES_VARIABLE, PostgresUnavailableError, find_binaries, server_account

TINY = Plan(size="tiny", repeats=1, warmups=0)


@pytest.mark.parametrize("name", list(CASES))
def test_case_runs_at_tiny_size(name: str) -> None:
    if CASES[name].needs_postgres:
        _require_postgres()
    result = run_case(CASES[name], TINY)

    assert list(result.sides) == list(CASES[name].sides)
    depictiod = result.sides["depictiod"]
    assert depictiod.rows is not None
    assert depictiod.rows == depictiod.expected_rows
    assert depictiod.figures
    assert all(value >= 0 for side in result.sides.values() for value in side.figures.values())
    assert all(side.peak_rss_mib > 0 for side in result.sides.values())
    assert result.comparisons
    assert all(row.case == name for row in result.comparisons)


def test_all_seven_cases_are_registered() -> None:
    assert list(CASES) == [
        "many_files",
        "big_file",
        "rescan_unchanged",
        "incremental_run",
        "event_latency",
        "api_throughput",
        "ingest_two_writers",
    ]


def test_two_writers_compare_with_each_reference() -> None:
    def side(tool: str, files_per_s: float) -> Side:
        return Side(tool=tool, figures={"files_per_s": files_per_s, "rows_per_s": files_per_s * 20}, peak_rss_mib=1)

    sides = {"depictiod": side("two", 30), "file": side("file", 60), "lake": side("lake", 20)}

    rows = ingest_two_writers.compare(sides)

    assert [(row.metric, row.reference) for row in rows] == [
        ("files/s", "file"),
        ("rows/s", "file"),
        ("files/s", "lake"),
        ("rows/s", "lake"),
    ]
    assert [row.ratio for row in rows] == [0.5, 0.5, 1.5, 1.5]
    assert rows[1].ours == 600
    assert rows[3].theirs == 400


def test_main_prints_ratio_table(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.__main__ import main

    assert main(["--size", "tiny", "rescan_unchanged"]) == 0

    output = capsys.readouterr().out
    assert "| case | metric | depictiod | reference | ratio | target | met |" in output
    assert "| rescan_unchanged | full reconcile |" in output


def test_main_rejects_unknown_case(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.__main__ import main

    assert main(["no_such_case"]) == 2
    assert "no_such_case" in capsys.readouterr().err


def _require_postgres() -> None:
    """Skip the test when PostgreSQL's binaries are missing, or fail it under DEPICTIOD_REQUIRE_POSTGRES=1."""
    try:
        find_binaries()
        server_account()
    except PostgresUnavailableError as error:
        if os.environ.get(REQUIRE_POSTGRES_VARIABLE) == "1":
            pytest.fail(f"{error}; {REQUIRE_POSTGRES_VARIABLE}=1 makes this a failure rather than a skip")
        pytest.skip(str(error))
