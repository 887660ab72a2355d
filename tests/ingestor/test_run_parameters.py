"""Workflow parameters found in a run folder are stored with the run."""

from __future__ import annotations

import json
from pathlib import Path

from tests.ingestor.conftest import StartHarness
from tests.ingestor.helpers import table_collection, write_file


def test_nf_core_params_are_stored(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "a\n1\n")
    old = {"input": "old.csv"}
    new = {"input": "samplesheet.csv", "genome": "MN908947.3"}
    write_file(data_dir / "run_1" / "pipeline_info" / "params_2024-01-01_10-00-00.json", json.dumps(old))
    write_file(data_dir / "run_1" / "pipeline_info" / "params_2024-02-01_10-00-00.json", json.dumps(new))
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    [run] = harness.runs()
    assert run.parameters["values"] == new
    assert run.parameters["source"].endswith("params_2024-02-01_10-00-00.json")


def test_snakemake_config_is_stored(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "a\n1\n")
    write_file(data_dir / "run_1" / "config.yaml", "samples: [s1, s2]\nthreads: 4\n")
    harness = start([table_collection("t", r"t\.csv$")])

    harness.scan()

    [run] = harness.runs()
    assert run.parameters["values"] == {"samples": ["s1", "s2"], "threads": 4}


def test_unreadable_parameters_are_a_warning(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "a\n1\n")
    write_file(data_dir / "run_1" / "config.json", "{not json")
    harness = start([table_collection("t", r"t\.csv$")])

    result = harness.scan()

    [run] = harness.runs()
    assert run.parameters == {}
    assert any("cannot be read" in warning for warning in result.workflows[0].warnings)


def test_run_without_parameters_is_unchanged_on_rescan(start: StartHarness, data_dir: Path) -> None:
    write_file(data_dir / "run_1" / "t.csv", "a\n1\n")
    harness = start([table_collection("t", r"t\.csv$")])
    harness.scan()

    second = harness.scan()

    assert second.workflows[0].counts.runs_added == 0
    assert harness.runs()[0].parameters == {}
