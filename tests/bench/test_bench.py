"""Every benchmark case once at the tiny size, so that `make bench` keeps working.

These tests check that each case runs and that depictiod's tables hold the generated
rows (run_case raises BenchError otherwise). They do not check any time.
"""

from __future__ import annotations

import pytest

from bench.cases import CASES
from bench.results import Plan
from bench.runner import run_case

TINY = Plan(size="tiny", repeats=1, warmups=0)


@pytest.mark.parametrize("name", list(CASES))
def test_case_runs_at_tiny_size(name: str) -> None:
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


def test_all_six_cases_are_registered() -> None:
    assert list(CASES) == [
        "many_files",
        "big_file",
        "rescan_unchanged",
        "incremental_run",
        "event_latency",
        "api_throughput",
    ]


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
