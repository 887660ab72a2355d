"""Invalid values in a readable project file: each problem names file, key path and fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from config import ConfigError, load_project
from tests.config.helpers import (
    RECURSIVE_DC,
    REGEX_CONFIG,
    SINGLE_DC,
    WORKFLOW,
    load_problems,
    problem_at,
    valid_project,
    write_project,
)

# Raw project YAML as Python data, before load_project checks it.
ProjectData = dict[str, Any]


def _single_dc(project: ProjectData) -> dict[str, Any]:
    return project["workflows"][0]["data_collections"][0]


def _recursive_dc(project: ProjectData) -> dict[str, Any]:
    return project["workflows"][0]["data_collections"][1]


def _regex_config(project: ProjectData) -> dict[str, Any]:
    return _recursive_dc(project)["config"]["scan"]["scan_parameters"]["regex_config"]


def _location(project: ProjectData) -> dict[str, Any]:
    return project["workflows"][0]["data_location"]


def _join(project: ProjectData) -> dict[str, Any]:
    return project["joins"][0]


def test_valid_project_loads(project_dir: Path) -> None:
    path = write_project(project_dir, valid_project())

    project = load_project(str(path), {})

    assert project.name == "demo"


def test_unknown_key_suggests_close_match(project_dir: Path) -> None:
    project = valid_project()
    _single_dc(project)["descripton"] = "sample sheet"
    path = write_project(project_dir, project)

    problem = problem_at(load_problems(path), f"{SINGLE_DC}.descripton")

    assert problem.file == str(path)
    assert "unknown key 'descripton'" in problem.message
    assert "did you mean 'description'?" in problem.message
    assert "Valid keys here:" in problem.message


def test_missing_required_key_is_named(project_dir: Path) -> None:
    project = valid_project()
    del project["workflows"][0]["engine"]
    path = write_project(project_dir, project)

    problem = problem_at(load_problems(path), f"{WORKFLOW}.engine")

    assert problem.file == str(path)
    assert "required key 'engine' is missing" in problem.message


def _set_structure(project: ProjectData) -> None:
    _location(project)["structure"] = "nested"


def _set_type(project: ProjectData) -> None:
    _single_dc(project)["config"]["type"] = "spreadsheet"


def _set_format(project: ProjectData) -> None:
    _single_dc(project)["config"]["dc_specific_properties"]["format"] = "txt"


def _set_mode(project: ProjectData) -> None:
    _recursive_dc(project)["config"]["scan"]["mode"] = "deep"


def _set_source(project: ProjectData) -> None:
    _single_dc(project)["config"]["source"] = "imported"


@pytest.mark.parametrize(
    ("change", "key_path", "bad_value", "choices"),
    [
        (
            _set_structure,
            f"{WORKFLOW}.data_location.structure",
            "'nested'",
            "valid choices: flat, sequencing-runs",
        ),
        (
            _set_type,
            f"{SINGLE_DC}.config.type",
            "'spreadsheet'",
            "valid choices: geojson, image, jbrowse2, multiqc, phylogeny, table",
        ),
        (
            _set_format,
            f"{SINGLE_DC}.config.dc_specific_properties.format",
            "'txt'",
            "valid choices: csv, feather, parquet, tsv, xls, xlsx",
        ),
        (
            _set_mode,
            f"{RECURSIVE_DC}.config.scan.mode",
            "'deep'",
            "valid choices: recursive, single",
        ),
        (
            _set_source,
            f"{SINGLE_DC}.config.source",
            "'imported'",
            "valid choices: aggregated, joined, native, transformed",
        ),
    ],
    ids=["structure", "type", "format", "mode", "source"],
)
def test_bad_enum_lists_valid_choices(
    project_dir: Path,
    change: Callable[[ProjectData], None],
    key_path: str,
    bad_value: str,
    choices: str,
) -> None:
    project = valid_project()
    change(project)
    path = write_project(project_dir, project)

    problem = problem_at(load_problems(path), key_path)

    assert problem.file == str(path)
    assert bad_value in problem.message
    assert choices in problem.message


def test_sequencing_runs_requires_runs_regex(project_dir: Path) -> None:
    project = valid_project()
    _location(project)["structure"] = "sequencing-runs"
    path = write_project(project_dir, project)

    problem = problem_at(load_problems(path), f"{WORKFLOW}.data_location.runs_regex")

    assert problem.file == str(path)
    assert "required when structure is 'sequencing-runs'" in problem.message
    assert 'runs_regex: "run_.*"' in problem.message


def test_invalid_runs_regex_is_reported(project_dir: Path) -> None:
    project = valid_project()
    _location(project).update({"structure": "sequencing-runs", "runs_regex": "run_(["})
    path = write_project(project_dir, project)

    problem = problem_at(load_problems(path), f"{WORKFLOW}.data_location.runs_regex")

    assert problem.file == str(path)
    assert "invalid regular expression 'run_(['" in problem.message
    assert "escape special characters" in problem.message


def test_invalid_scan_pattern_is_reported(project_dir: Path) -> None:
    project = valid_project()
    _regex_config(project)["pattern"] = "{sample}_counts(.tsv"
    path = write_project(project_dir, project)

    problem = problem_at(load_problems(path), f"{REGEX_CONFIG}.pattern")

    assert problem.file == str(path)
    assert "invalid regular expression '{sample}_counts(.tsv'" in problem.message
    assert "escape special characters" in problem.message


def test_invalid_wildcard_regex_is_reported(project_dir: Path) -> None:
    project = valid_project()
    _regex_config(project)["wildcards"][0]["wildcard_regex"] = "[A-Z"
    path = write_project(project_dir, project)

    problem = problem_at(load_problems(path), f"{REGEX_CONFIG}.wildcards[0].wildcard_regex")

    assert problem.file == str(path)
    assert "invalid regular expression '[A-Z'" in problem.message


def test_duplicate_wildcard_names_are_reported(project_dir: Path) -> None:
    project = valid_project()
    _regex_config(project)["wildcards"].append({"name": "sample", "wildcard_regex": "S[0-9]+"})
    path = write_project(project_dir, project)

    problem = problem_at(load_problems(path), f"{REGEX_CONFIG}.wildcards[1].name")

    assert problem.file == str(path)
    assert "duplicate wildcard name 'sample'" in problem.message
    assert "its own name" in problem.message


@pytest.mark.parametrize(
    "location",
    ["{DATA_ROOT}/runs", "$DATA_ROOT/runs", "${DATA_ROOT}/runs"],
    ids=["braces", "dollar", "dollar-braces"],
)
def test_unset_variable_in_location_is_named(project_dir: Path, location: str) -> None:
    project = valid_project()
    _location(project)["locations"] = [location]
    path = write_project(project_dir, project)

    problem = problem_at(load_problems(path, {}), f"{WORKFLOW}.data_location.locations[0]")

    assert problem.file == str(path)
    assert "environment variable 'DATA_ROOT'" in problem.message
    assert f"in path {location!r} is not set" in problem.message
    assert "export DATA_ROOT=" in problem.message


def test_missing_location_folder_is_reported(project_dir: Path) -> None:
    project = valid_project()
    _location(project)["locations"] = ["data", "results"]
    path = write_project(project_dir, project)

    problem = problem_at(load_problems(path), f"{WORKFLOW}.data_location.locations[1]")

    assert problem.file == str(path)
    assert f"the folder {str(project_dir / 'results')!r} does not exist" in problem.message
    assert "relative paths start at the YAML file's folder" in problem.message


def test_location_that_is_a_file_is_reported(project_dir: Path) -> None:
    project = valid_project()
    _location(project)["locations"] = ["data/samples.csv"]
    path = write_project(project_dir, project)

    problem = problem_at(load_problems(path), f"{WORKFLOW}.data_location.locations[0]")

    assert problem.file == str(path)
    assert f"{str(project_dir / 'data' / 'samples.csv')!r} is not a folder" in problem.message


def test_empty_locations_list_is_reported(project_dir: Path) -> None:
    project = valid_project()
    _location(project)["locations"] = []
    path = write_project(project_dir, project)

    problem = problem_at(load_problems(path), f"{WORKFLOW}.data_location.locations")

    assert problem.file == str(path)
    assert "no locations are listed" in problem.message


def test_missing_single_file_is_reported(project_dir: Path) -> None:
    project = valid_project()
    _single_dc(project)["config"]["scan"]["scan_parameters"]["filename"] = "data/absent.csv"
    path = write_project(project_dir, project)

    key_path = f"{SINGLE_DC}.config.scan.scan_parameters.filename"
    problem = problem_at(load_problems(path), key_path)

    assert problem.file == str(path)
    assert f"the file {str(project_dir / 'data' / 'absent.csv')!r} does not exist" in problem.message
    assert "relative paths start at the YAML file's folder" in problem.message


def test_native_collection_requires_scan(project_dir: Path) -> None:
    project = valid_project()
    del _single_dc(project)["config"]["scan"]
    path = write_project(project_dir, project)

    problem = problem_at(load_problems(path), f"{SINGLE_DC}.config.scan")

    assert problem.file == str(path)
    assert "scan is required for native data collections" in problem.message
    assert "set source: joined or transformed" in problem.message


def test_transformed_collection_needs_no_scan(project_dir: Path) -> None:
    project = valid_project()
    config = _single_dc(project)["config"]
    del config["scan"]
    config.update({"source": "transformed", "transform": {"recipe": "recipes/samples.py"}})
    path = write_project(project_dir, project)

    loaded = load_project(str(path), {})

    assert loaded.workflows[0].data_collections[0].config.scan is None


def test_invalid_join_name_is_reported(project_dir: Path) -> None:
    project = valid_project()
    _join(project)["name"] = "samples and counts"
    path = write_project(project_dir, project)

    problem = problem_at(load_problems(path), "joins[0].name")

    assert problem.file == str(path)
    assert "invalid join name 'samples and counts'" in problem.message
    assert "letters, digits, '_' or '-'" in problem.message


def test_duplicate_join_columns_are_reported(project_dir: Path) -> None:
    project = valid_project()
    _join(project)["on_columns"] = ["sample", "sample"]
    path = write_project(project_dir, project)

    problem = problem_at(load_problems(path), "joins[0].on_columns")

    assert problem.file == str(path)
    assert "contains duplicates" in problem.message
    assert "list each column once" in problem.message


def test_empty_join_columns_are_reported(project_dir: Path) -> None:
    project = valid_project()
    _join(project)["on_columns"] = []
    path = write_project(project_dir, project)

    problem = problem_at(load_problems(path), "joins[0].on_columns")

    assert problem.file == str(path)
    assert "on_columns is empty" in problem.message
    assert "at least one column" in problem.message


def test_join_of_collection_with_itself_is_reported(project_dir: Path) -> None:
    project = valid_project()
    _join(project)["right_dc"] = "samples"
    path = write_project(project_dir, project)

    problem = problem_at(load_problems(path), "joins[0].right_dc")

    assert problem.file == str(path)
    assert "left_dc and right_dc are both 'samples'" in problem.message
    assert "two different data collections" in problem.message


def test_join_with_unknown_tag_lists_known_tags(project_dir: Path) -> None:
    project = valid_project()
    _join(project)["right_dc"] = "cuonts"
    path = write_project(project_dir, project)

    problem = problem_at(load_problems(path), "joins[0].right_dc")

    assert problem.file == str(path)
    assert "data collection 'cuonts' is not in this project" in problem.message
    assert "known tags: counts, samples" in problem.message


def test_join_taking_collection_tag_is_reported(project_dir: Path) -> None:
    project = valid_project()
    _join(project)["name"] = "counts"
    _single_dc(project)["data_collection_tag"] = "joined_counts"
    _join(project)["left_dc"] = "joined_counts"
    path = write_project(project_dir, project)

    problem = problem_at(load_problems(path), "joins[0].name")

    assert problem.file == str(path)
    assert "would take the tag 'joined_counts'" in problem.message
    assert "rename the join or the collection" in problem.message


def test_join_accepts_workflow_qualified_tag(project_dir: Path) -> None:
    project = valid_project()
    _join(project)["right_dc"] = "rnaseq.counts"
    path = write_project(project_dir, project)

    loaded = load_project(str(path), {})

    assert loaded.joins[0].right_dc == "rnaseq.counts"


def test_duplicate_tag_in_workflow_is_reported(project_dir: Path) -> None:
    project = valid_project()
    _recursive_dc(project)["data_collection_tag"] = "samples"
    path = write_project(project_dir, project)

    key_path = f"{RECURSIVE_DC}.data_collection_tag"
    problem = problem_at(load_problems(path), key_path)

    assert problem.file == str(path)
    assert "tag 'samples' is already used by data_collections[0]" in problem.message
    assert "unique in a workflow" in problem.message


def test_unsupported_polars_kwarg_is_reported(project_dir: Path) -> None:
    project = valid_project()
    _single_dc(project)["config"]["dc_specific_properties"]["polars_kwargs"] = {"sep": ","}
    path = write_project(project_dir, project)

    key_path = f"{SINGLE_DC}.config.dc_specific_properties.polars_kwargs.sep"
    problem = problem_at(load_problems(path), key_path)

    assert problem.file == str(path)
    assert "polars_kwargs key 'sep' is not supported" in problem.message
    assert "supported keys: separator" in problem.message


def test_unknown_polars_dtype_lists_valid_types(project_dir: Path) -> None:
    project = valid_project()
    properties = _single_dc(project)["config"]["dc_specific_properties"]
    properties["polars_kwargs"] = {"schema_overrides": {"sample": "Text"}}
    path = write_project(project_dir, project)

    key_path = f"{SINGLE_DC}.config.dc_specific_properties.polars_kwargs.schema_overrides"
    problem = problem_at(load_problems(path), key_path)

    assert problem.file == str(path)
    assert "unknown type 'Text'" in problem.message
    assert "valid types: Int8" in problem.message


def test_list_as_polars_dtype_is_config_error(project_dir: Path) -> None:
    project = valid_project()
    properties = _single_dc(project)["config"]["dc_specific_properties"]
    properties["polars_kwargs"] = {"schema_overrides": {"sample": ["Utf8"]}}
    path = write_project(project_dir, project)

    key_path = f"{SINGLE_DC}.config.dc_specific_properties.polars_kwargs.schema_overrides"
    problem = problem_at(load_problems(path), key_path)

    assert problem.file == str(path)
    assert "['Utf8']" in problem.message


def test_supported_polars_kwargs_load(project_dir: Path) -> None:
    project = valid_project()
    properties = _single_dc(project)["config"]["dc_specific_properties"]
    properties["polars_kwargs"] = {"separator": "\t", "schema_overrides": {"sample": "Utf8"}}
    path = write_project(project_dir, project)

    loaded = load_project(str(path), {})

    loaded_properties = loaded.workflows[0].data_collections[0].config.dc_specific_properties
    assert loaded_properties["polars_kwargs"]["separator"] == "\t"


@pytest.mark.parametrize("bad_type", [["table"], {"name": "table"}], ids=["list", "mapping"])
def test_non_text_type_is_config_error(project_dir: Path, bad_type: object) -> None:
    project = valid_project()
    _single_dc(project)["config"]["type"] = bad_type
    path = write_project(project_dir, project)

    problem = problem_at(load_problems(path), f"{SINGLE_DC}.config.type")

    assert problem.file == str(path)
    assert "valid choices: geojson, image, jbrowse2, multiqc, phylogeny, table" in problem.message


@pytest.mark.parametrize(
    ("key_path", "target"),
    [
        ("id", lambda project: project),
        (f"{WORKFLOW}.id", lambda project: project["workflows"][0]),
        (f"{SINGLE_DC}.id", _single_dc),
        ("joins[0].id", _join),
    ],
    ids=["project", "workflow", "data-collection", "join"],
)
def test_invalid_id_is_reported(
    project_dir: Path, key_path: str, target: Callable[[ProjectData], dict[str, Any]]
) -> None:
    project = valid_project()
    target(project)["id"] = "646b0f3c1e4a2d7f8e5b8c9z"
    path = write_project(project_dir, project)

    problem = problem_at(load_problems(path), key_path)

    assert problem.file == str(path)
    assert "invalid id '646b0f3c1e4a2d7f8e5b8c9z'" in problem.message
    assert "24 hexadecimal characters" in problem.message
    assert "remove the line" in problem.message


def test_same_id_on_two_objects_is_reported(project_dir: Path) -> None:
    project = valid_project()
    project["id"] = "646b0f3c1e4a2d7f8e5b8c9d"
    project["workflows"][0]["id"] = "646b0f3c1e4a2d7f8e5b8c9d"
    path = write_project(project_dir, project)

    problem = problem_at(load_problems(path), f"{WORKFLOW}.id")

    assert problem.file == str(path)
    assert "is also used by project" in problem.message


@pytest.mark.parametrize(
    ("key_path", "target"),
    [
        (f"{WORKFLOW}.version", lambda project: project["workflows"][0]),
        (f"{WORKFLOW}.engine.version", lambda project: project["workflows"][0]["engine"]),
    ],
    ids=["workflow", "engine"],
)
def test_float_version_asks_for_quotes(
    project_dir: Path, key_path: str, target: Callable[[ProjectData], dict[str, Any]]
) -> None:
    # YAML reads an unquoted 3.10 as the number 3.1, so only a quoted version survives.
    project = valid_project()
    target(project)["version"] = "VERSION"
    path = write_project(project_dir, project)
    path.write_text(path.read_text().replace("VERSION", "3.10"), encoding="utf-8")

    problem = problem_at(load_problems(path), key_path)

    assert problem.file == str(path)
    assert "expected a string, got 3.1 (number)" in problem.message
    assert "quote it" in problem.message


def test_all_problems_are_reported_at_once(project_dir: Path) -> None:
    project = valid_project()
    _single_dc(project)["descripton"] = "sample sheet"
    _single_dc(project)["config"]["dc_specific_properties"]["format"] = "txt"
    _location(project)["locations"] = ["{DATA_ROOT}"]
    _join(project)["on_columns"] = []
    path = write_project(project_dir, project)

    with pytest.raises(ConfigError) as caught:
        load_project(str(path), {})

    key_paths = {problem.key_path for problem in caught.value.problems}
    assert f"{SINGLE_DC}.descripton" in key_paths
    assert f"{SINGLE_DC}.config.dc_specific_properties.format" in key_paths
    assert f"{WORKFLOW}.data_location.locations[0]" in key_paths
    assert "joins[0].on_columns" in key_paths
    assert len(caught.value.problems) == 4
    assert "invalid configuration, 4 problems:" in str(caught.value)
