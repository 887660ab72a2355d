"""Depictio's own example project files load unchanged apart from their data paths.

The examples are copies of depictio/depictio v1.5.1 `depictio/projects/` kept outside this
repository, next to it. Each test copies one example into tmp_path, because the copies
must never be changed in place.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from config import load_project
from tests.config.helpers import load_problems, problem_at

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "depictio-examples"

pytestmark = pytest.mark.skipif(
    not EXAMPLES.is_dir(),
    reason=f"Depictio example files not found at {EXAMPLES}; these tests need that copy",
)


def _copy_example(name: str, tmp_path: Path) -> Path:
    copy = tmp_path / name
    shutil.copytree(EXAMPLES / name, copy)
    return copy


def _rewrite_paths(project_file: Path, old_prefix: str, new_prefix: Path) -> None:
    """Point the example's hard-coded data paths at the copy, leaving the rest unchanged."""
    text = project_file.read_text(encoding="utf-8")
    assert old_prefix in text, f"{project_file} no longer contains {old_prefix!r}"
    project_file.write_text(text.replace(old_prefix, str(new_prefix)), encoding="utf-8")


def test_penguins_loads_with_written_ids(tmp_path: Path) -> None:
    copy = _copy_example("penguins", tmp_path)
    _rewrite_paths(copy / "project.yaml", "/app/depictio/projects/init/penguins", copy)

    project = load_project(str(copy / "project.yaml"), {})

    workflow = project.workflows[0]
    physical, demographic = workflow.data_collections
    assert project.id == "646b0f3c1e4a2d7f8e5b8c9d"
    assert project.project_type == "advanced"
    assert workflow.id == "646b0f3c1e4a2d7f8e5b8c9e"
    assert workflow.workflow_tag == "penguin_species_analysis"
    assert workflow.data_location.structure == "sequencing-runs"
    assert workflow.data_location.runs_regex == "run_*"
    assert workflow.data_location.locations == [str(copy / "data")]
    assert physical.id == "646b0f3c1e4a2d7f8e5b8c9f"
    assert physical.config.type == "table"
    assert physical.config.dc_specific_properties["format"] == "csv"
    assert demographic.id == "646b0f3c1e4a2d7f8e5b8ca0"
    assert project.joins[0].id == "646b0f3c1e4a2d7f8e5b8ca1"
    assert project.joins[0].on_columns == ["individual_id"]


def test_iris_loads_single_file_collection(tmp_path: Path) -> None:
    copy = _copy_example("iris", tmp_path)
    _rewrite_paths(copy / "project.yaml", "/app/depictio/projects/init/iris", copy)

    project = load_project(str(copy / "project.yaml"), {})

    workflow = project.workflows[0]
    [collection] = workflow.data_collections
    assert collection.config.scan is not None
    assert project.id == "646b0f3c1e4a2d7f8e5b8c9a"
    assert workflow.id == "646b0f3c1e4a2d7f8e5b8c9b"
    assert collection.id == "646b0f3c1e4a2d7f8e5b8c9c"
    assert workflow.data_location.locations == [str(copy)]
    assert collection.config.scan.mode == "single"
    assert collection.config.scan.scan_parameters["filename"] == str(copy / "data" / "iris.csv")


def test_viralrecon_template_loads_with_data_root(tmp_path: Path) -> None:
    copy = _copy_example("viralrecon", tmp_path)

    project = load_project(str(copy / "template.yaml"), {"DATA_ROOT": str(copy)})

    workflow = project.workflows[0]
    assert len(workflow.data_collections) == 14
    assert workflow.data_location.locations == [str(copy)]
    assert workflow.workflow_tag == "viralrecon"
    assert len(project.links) == 7


def test_viralrecon_template_needs_data_root(tmp_path: Path) -> None:
    copy = _copy_example("viralrecon", tmp_path)

    problems = load_problems(copy / "template.yaml", {})

    problem = problem_at(problems, "workflows[0].data_location.locations[0]")
    assert "environment variable 'DATA_ROOT'" in problem.message


def test_map_demo_reports_missing_files(tmp_path: Path) -> None:
    # regional_summary.csv is missing from Depictio v1.5.1 itself, and the copy here also
    # leaves out europe_regions.geojson.
    copy = _copy_example("map_demo", tmp_path)
    _rewrite_paths(copy / "project.yaml", "depictio/projects/test/map_demo", copy)

    problems = load_problems(copy / "project.yaml", {})

    parameters = "config.scan.scan_parameters.filename"
    geojson = problem_at(problems, f"workflows[0].data_collections[1].{parameters}")
    summary = problem_at(problems, f"workflows[0].data_collections[2].{parameters}")
    assert len(problems) == 2
    assert "europe_regions.geojson' does not exist" in geojson.message
    assert "regional_summary.csv' does not exist" in summary.message
