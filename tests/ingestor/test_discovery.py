"""Which folders become runs and which files a data collection registers."""

from __future__ import annotations

import os
from pathlib import Path

import config
from tests.ingestor.conftest import StartHarness
from tests.ingestor.helpers import table_collection, write_file


def _touch(folder: Path, *relative_paths: str) -> None:
    """Write a one-column CSV at each path under `folder`."""
    for relative_path in relative_paths:
        write_file(folder / relative_path, "value\n1\n")


def test_runs_are_matching_subfolders(start: StartHarness, data_dir: Path) -> None:
    _touch(data_dir, "run_1/a.csv", "run_2/a.csv", "other/a.csv", "xrun_3/a.csv")
    harness = start([table_collection("a", r"a\.csv$")], runs_regex="run_.*")

    harness.scan()

    assert harness.run_tags() == ["run_1", "run_2"]


def test_runs_regex_matches_start_of_name(start: StartHarness, data_dir: Path) -> None:
    _touch(data_dir, "run_1_adelie/a.csv", "run_x/a.csv")
    harness = start([table_collection("a", r"a\.csv$")], runs_regex=r"run_\d")

    harness.scan()

    assert harness.run_tags() == ["run_1_adelie"]


def test_loose_files_are_not_runs(start: StartHarness, data_dir: Path) -> None:
    _touch(data_dir, "run_1/a.csv", "run_loose.csv")
    harness = start([table_collection("a", r"a\.csv$"), table_collection("loose", r"run_loose\.csv$")])

    harness.scan()

    assert harness.run_tags() == ["run_1"]
    assert harness.files("loose") == []


def test_nested_run_folders_are_not_runs(start: StartHarness, data_dir: Path) -> None:
    _touch(data_dir, "run_1/a.csv", "batch/run_9/a.csv")
    harness = start([table_collection("a", r"a\.csv$")])

    harness.scan()

    assert harness.run_tags() == ["run_1"]
    assert harness.file_names("a") == ["run_1/a.csv"]


def test_flat_location_is_one_run(start: StartHarness, data_dir: Path) -> None:
    _touch(data_dir, "a.csv", "results/a.csv")
    harness = start([table_collection("a", r"a\.csv$")], structure="flat", runs_regex=None)

    harness.scan()

    assert harness.run_tags() == ["data"]
    assert harness.file_names("a") == ["a.csv", "results/a.csv"]
    assert {record.run_tag for record in harness.files("a")} == {"data"}


def test_files_name_their_run(start: StartHarness, data_dir: Path) -> None:
    _touch(data_dir, "run_1/a.csv", "run_2/a.csv")
    harness = start([table_collection("a", r"a\.csv$")])

    harness.scan()

    run_ids = {run.run_tag: run.id for run in harness.runs()}
    for record in harness.files("a"):
        assert record.run_id == run_ids[record.run_tag]


def test_pattern_matches_start_of_basename(start: StartHarness, data_dir: Path) -> None:
    _touch(data_dir, "run_1/stats.tsv", "run_1/sample_stats.tsv", "run_1/stats.tsv.bak")
    harness = start([table_collection("stats", r"stats\.tsv", "tsv")])

    harness.scan()

    # re.match anchors at the start only, as Depictio's scanner does.
    assert harness.file_names("stats") == ["run_1/stats.tsv", "run_1/stats.tsv.bak"]


def test_pattern_without_slash_matches_any_depth(start: StartHarness, data_dir: Path) -> None:
    _touch(data_dir, "run_1/stats.tsv", "run_1/qc/per_sample/stats.tsv")
    harness = start([table_collection("stats", r"stats\.tsv$", "tsv")])

    harness.scan()

    assert harness.file_names("stats") == ["run_1/qc/per_sample/stats.tsv", "run_1/stats.tsv"]


def test_path_pattern_matches_run_relative_path(start: StartHarness, data_dir: Path) -> None:
    _touch(
        data_dir,
        "run_1/reports/summary.csv",
        "run_1/summary.csv",
        "run_1/old/reports/summary.csv",
        "run_2/reports/summary.csv",
    )
    harness = start([table_collection("summary", r"reports/summary\.csv$")])

    harness.scan()

    assert harness.file_names("summary") == ["run_1/reports/summary.csv", "run_2/reports/summary.csv"]


def test_pattern_is_case_sensitive(start: StartHarness, data_dir: Path) -> None:
    _touch(data_dir, "run_1/stats.tsv", "run_1/qc/Stats.tsv")
    harness = start([table_collection("stats", r"stats\.tsv$", "tsv")])

    harness.scan()

    assert harness.file_names("stats") == ["run_1/stats.tsv"]


def test_wildcards_are_captured(start: StartHarness, data_dir: Path) -> None:
    _touch(data_dir, "run_1/S1_L002_counts.tsv", "run_1/S2_L001_counts.tsv")
    collection = table_collection(
        "counts", r"{sample}_L{lane}_counts\.tsv$", "tsv", wildcards={"sample": "[A-Za-z0-9]+", "lane": r"\d+"}
    )
    harness = start([collection])

    harness.scan()

    assert harness.file("counts", "S1_L002_counts.tsv").wildcards == {"sample": "S1", "lane": "002"}
    assert harness.file("counts", "S2_L001_counts.tsv").wildcards == {"sample": "S2", "lane": "001"}


def test_wildcard_regex_limits_match(start: StartHarness, data_dir: Path) -> None:
    _touch(data_dir, "run_1/S1_counts.tsv", "run_1/S-1_counts.tsv")
    harness = start([table_collection("counts", r"{sample}_counts\.tsv$", "tsv", wildcards={"sample": "[A-Za-z0-9]+"})])

    harness.scan()

    assert harness.file_names("counts") == ["run_1/S1_counts.tsv"]


def test_files_without_wildcards_have_none(start: StartHarness, data_dir: Path) -> None:
    _touch(data_dir, "run_1/a.csv")
    harness = start([table_collection("a", r"a\.csv$")])

    harness.scan()

    assert harness.file("a", "a.csv").wildcards == {}


def test_max_depth_limits_subfolders(start: StartHarness, data_dir: Path) -> None:
    _touch(data_dir, "run_1/a.csv", "run_1/x/a.csv", "run_1/x/y/a.csv")
    harness = start([table_collection("a", r"a\.csv$", max_depth=1)])

    harness.scan()

    assert harness.file_names("a") == ["run_1/a.csv", "run_1/x/a.csv"]


def test_max_depth_zero_keeps_top_files(start: StartHarness, data_dir: Path) -> None:
    _touch(data_dir, "run_1/a.csv", "run_1/x/a.csv")
    harness = start([table_collection("a", r"a\.csv$", max_depth=0)])

    harness.scan()

    assert harness.file_names("a") == ["run_1/a.csv"]


def test_ignore_matches_file_name(start: StartHarness, data_dir: Path) -> None:
    _touch(data_dir, "run_1/a.csv", "run_1/a_old.csv", "run_1/x/a_old.csv")
    harness = start([table_collection("a", r"a", ignore=["*_old.csv"])])

    harness.scan()

    assert harness.file_names("a") == ["run_1/a.csv"]


def test_ignore_matches_relative_path(start: StartHarness, data_dir: Path) -> None:
    _touch(data_dir, "run_1/a.csv", "run_1/archive/a.csv", "run_1/x/archive/a.csv")
    harness = start([table_collection("a", r"a\.csv$", ignore=["archive/*"])])

    harness.scan()

    assert harness.file_names("a") == ["run_1/a.csv", "run_1/x/archive/a.csv"]


def test_ignore_applies_per_collection(start: StartHarness, data_dir: Path) -> None:
    _touch(data_dir, "run_1/a.csv", "run_1/archive/a.csv")
    harness = start([table_collection("kept", r"a\.csv$", ignore=["archive/*"]), table_collection("all", r"a\.csv$")])

    harness.scan()

    assert harness.file_names("kept") == ["run_1/a.csv"]
    assert harness.file_names("all") == ["run_1/a.csv", "run_1/archive/a.csv"]


def test_hidden_files_are_not_registered(start: StartHarness, data_dir: Path) -> None:
    _touch(data_dir, "run_1/a.csv", "run_1/.a.csv", "run_1/.snakemake/a.csv")
    harness = start([table_collection("a", r"\.?a\.csv$")])

    harness.scan()

    assert harness.file_names("a") == ["run_1/a.csv"]


def test_partial_files_are_not_registered(start: StartHarness, data_dir: Path) -> None:
    _touch(data_dir, "run_1/a.csv", "run_1/a.csv.tmp", "run_1/a.csv.part", "run_1/a.csv~")
    # Without `$` the pattern would match every one of these names.
    harness = start([table_collection("a", r"a\.csv")])

    harness.scan()

    assert harness.file_names("a") == ["run_1/a.csv"]


def test_ignore_list_skips_matching_files(start: StartHarness, data_dir: Path) -> None:
    _touch(data_dir, "run_1/a.csv", "run_1/a.csv.bak", "run_1/logs/a.csv", "run_1/sub/logs/a.csv")
    harness = start([table_collection("a", r"a\.csv")], ingest={"ignore": ["*.bak", "logs/*"]})

    harness.scan()

    # `logs/*` is matched against the path inside the run folder, so it skips only run_1/logs.
    assert harness.file_names("a") == ["run_1/a.csv", "run_1/sub/logs/a.csv"]


def test_ignore_list_applies_to_flat_locations(start: StartHarness, data_dir: Path) -> None:
    _touch(data_dir, "a.csv", "scratch/a.csv", "results/a.csv")
    harness = start(
        [table_collection("a", r"a\.csv$")], ingest={"ignore": ["scratch/*"]}, structure="flat", runs_regex=None
    )

    harness.scan()

    assert harness.file_names("a") == ["a.csv", "results/a.csv"]


def test_ignored_file_leaves_catalog(start: StartHarness, data_dir: Path) -> None:
    _touch(data_dir, "run_1/a.csv", "run_1/b.csv")
    harness = start([table_collection("a", r"[ab]\.csv$")])
    harness.scan()
    harness.ingest_settings = config.settings.IngestSettings(settle_seconds=0, ignore=["b.*"])
    harness.reopen()

    harness.scan()

    assert harness.file_names("a") == ["run_1/a.csv"]
    assert harness.row_count_by_run("a") == {"run_1": 1}


def test_symlinked_folders_are_not_followed(start: StartHarness, data_dir: Path, tmp_path: Path) -> None:
    _touch(data_dir, "run_1/a.csv")
    _touch(tmp_path, "elsewhere/a.csv")
    os.symlink(tmp_path / "elsewhere", data_dir / "run_1" / "linked")
    harness = start([table_collection("a", r"a\.csv$")])

    harness.scan()

    locations = [record.file_location for record in harness.files("a")]
    assert locations == [str(data_dir.resolve() / "run_1" / "a.csv")]


def test_shared_file_registers_per_collection(start: StartHarness, data_dir: Path) -> None:
    _touch(data_dir, "run_1/a.csv")
    harness = start([table_collection("first", r"a\.csv$"), table_collection("second", r"a\.csv$")])

    harness.scan()

    first, second = harness.file("first", "a.csv"), harness.file("second", "a.csv")
    assert first.file_location == second.file_location
    assert first.id != second.id
