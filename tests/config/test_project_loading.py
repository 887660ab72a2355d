"""How a valid project file is resolved: paths, variables, spellings, ids and tags."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, Project, is_object_id, load_project, load_projects
from tests.config.helpers import (
    make_data_folder,
    valid_project,
    write_project,
    write_text,
)


def _ids(project: Project) -> list[str | None]:
    """Return the id of every object in `project`, parents before children."""
    workflow = project.workflows[0]
    ids = [project.id, workflow.id, workflow.data_location.id]
    if workflow.config is not None:
        ids.append(workflow.config.id)
    for collection in workflow.data_collections:
        ids.extend([collection.id, collection.config.id])
    ids.extend(join.id for join in project.joins)
    return ids


def test_yml_suffix_is_accepted(project_dir: Path) -> None:
    path = write_project(project_dir, valid_project(), name="project.yml")

    project = load_project(str(path), {})

    assert project.name == "demo"


def test_yaml_config_path_is_absolute(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_project(project_dir, valid_project())
    monkeypatch.chdir(project_dir)

    project = load_project("project.yaml", {})

    assert project.yaml_config_path == str(project_dir / "project.yaml")


def test_relative_paths_resolve_against_yaml_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project_folder = tmp_path / "projects"
    project_folder.mkdir()
    make_data_folder(project_folder)
    path = write_project(project_folder, valid_project())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    project = load_project(str(path), {})

    workflow = project.workflows[0]
    scan = workflow.data_collections[0].config.scan
    assert scan is not None
    assert workflow.data_location.locations == [str(project_folder / "data")]
    assert scan.scan_parameters["filename"] == str(project_folder / "data" / "samples.csv")


def test_relative_project_path_uses_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project_folder = tmp_path / "projects"
    project_folder.mkdir()
    make_data_folder(project_folder)
    write_project(project_folder, valid_project())
    monkeypatch.chdir(tmp_path)

    project = load_project("projects/project.yaml", {})

    assert project.workflows[0].data_location.locations == [str(project_folder / "data")]


@pytest.mark.parametrize(
    "written",
    ["{DATA_ROOT}", "$DATA_ROOT", "${DATA_ROOT}"],
    ids=["braces", "dollar", "dollar-braces"],
)
def test_variables_expand_from_environ(tmp_path: Path, written: str) -> None:
    data_root = tmp_path / "outputs"
    data_root.mkdir()
    make_data_folder(data_root)
    project = valid_project()
    project["workflows"][0]["data_location"]["locations"] = [f"{written}/data"]
    single_scan = project["workflows"][0]["data_collections"][0]["config"]["scan"]
    single_scan["scan_parameters"]["filename"] = f"{written}/data/samples.csv"
    path = write_project(tmp_path, project)

    loaded = load_project(str(path), {"DATA_ROOT": str(data_root)})

    workflow = loaded.workflows[0]
    scan = workflow.data_collections[0].config.scan
    assert scan is not None
    assert workflow.data_location.locations == [str(data_root / "data")]
    assert scan.scan_parameters["filename"] == str(data_root / "data" / "samples.csv")


def test_relative_variable_value_resolves_against_yaml_folder(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    project = valid_project()
    project["workflows"][0]["data_location"]["locations"] = ["{DATA_ROOT}"]
    path = write_project(project_dir, project)
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))

    loaded = load_project(str(path), {"DATA_ROOT": "data"})

    assert loaded.workflows[0].data_location.locations == [str(project_dir / "data")]


def test_enum_values_are_case_insensitive(project_dir: Path) -> None:
    path = write_text(
        project_dir,
        """
        name: demo
        workflows:
          - name: rnaseq
            engine: {name: nextflow}
            data_location: {structure: flat, locations: [data]}
            data_collections:
              - data_collection_tag: samples
                config:
                  type: Table
                  source: DataCollectionSource.Native
                  scan: {mode: Single, scan_parameters: {filename: data/samples.csv}}
                  dc_specific_properties: {format: CSV}
              - data_collection_tag: counts
                config:
                  type: TABLE
                  scan:
                    mode: Recursive
                    scan_parameters: {regex_config: {pattern: counts.tsv}}
                  dc_specific_properties: {format: Tsv}
        """,
    )

    project = load_project(str(path), {})

    single, recursive = project.workflows[0].data_collections
    assert single.config.type == "table"
    assert single.config.source == "native"
    assert single.config.scan is not None
    assert single.config.scan.mode == "single"
    assert single.config.dc_specific_properties["format"] == "csv"
    assert recursive.config.type == "table"
    assert recursive.config.scan is not None
    assert recursive.config.scan.mode == "recursive"
    assert recursive.config.dc_specific_properties["format"] == "tsv"


def test_written_ids_are_kept(project_dir: Path) -> None:
    project = valid_project()
    project["id"] = "646b0f3c1e4a2d7f8e5b8c9d"
    project["workflows"][0]["id"] = "646b0f3c1e4a2d7f8e5b8c9e"
    project["workflows"][0]["data_collections"][0]["id"] = "646b0f3c1e4a2d7f8e5b8c9f"
    project["joins"][0]["id"] = "646b0f3c1e4a2d7f8e5b8ca1"
    path = write_project(project_dir, project)

    loaded = load_project(str(path), {})

    assert loaded.id == "646b0f3c1e4a2d7f8e5b8c9d"
    assert loaded.workflows[0].id == "646b0f3c1e4a2d7f8e5b8c9e"
    assert loaded.workflows[0].data_collections[0].id == "646b0f3c1e4a2d7f8e5b8c9f"
    assert loaded.joins[0].id == "646b0f3c1e4a2d7f8e5b8ca1"


def test_underscore_id_is_read_as_id(project_dir: Path) -> None:
    project = valid_project()
    project["_id"] = "646b0f3c1e4a2d7f8e5b8c9d"
    path = write_project(project_dir, project)

    loaded = load_project(str(path), {})

    assert loaded.id == "646b0f3c1e4a2d7f8e5b8c9d"


def test_uppercase_id_is_stored_lowercase(project_dir: Path) -> None:
    project = valid_project()
    project["id"] = "646B0F3C1E4A2D7F8E5B8C9D"
    path = write_project(project_dir, project)

    loaded = load_project(str(path), {})

    assert loaded.id == "646b0f3c1e4a2d7f8e5b8c9d"


def test_missing_ids_are_derived(project_dir: Path) -> None:
    path = write_project(project_dir, valid_project())

    ids = _ids(load_project(str(path), {}))

    for value in ids:
        assert is_object_id(value), f"{value!r} is not a 24-hex id"
    assert len(set(ids)) == len(ids)


def test_derived_ids_are_stable_across_loads(project_dir: Path) -> None:
    path = write_project(project_dir, valid_project())

    first = _ids(load_project(str(path), {}))
    second = _ids(load_project(str(path), {}))

    assert first == second


def test_derived_ids_depend_on_project_name(project_dir: Path) -> None:
    renamed = valid_project()
    renamed["name"] = "demo-2"
    first_path = write_project(project_dir, valid_project(), name="first.yaml")
    second_path = write_project(project_dir, renamed, name="second.yaml")

    first = load_project(str(first_path), {})
    second = load_project(str(second_path), {})

    assert first.id != second.id
    assert first.workflows[0].id != second.workflows[0].id


def test_workflow_tag_defaults_to_name(project_dir: Path) -> None:
    project = valid_project()
    project["workflows"][0]["catalog"] = {"name": "nf-core", "url": "https://nf-co.re"}
    path = write_project(project_dir, project)

    loaded = load_project(str(path), {})

    assert loaded.workflows[0].workflow_tag == "rnaseq"


def test_written_workflow_tag_is_kept(project_dir: Path) -> None:
    project = valid_project()
    project["workflows"][0]["workflow_tag"] = "nf-core/rnaseq"
    path = write_project(project_dir, project)

    loaded = load_project(str(path), {})

    assert loaded.workflows[0].workflow_tag == "nf-core/rnaseq"


def test_template_block_is_ignored(project_dir: Path) -> None:
    project = {
        "template": {
            "template_id": "nf-core/rnaseq/3.14.0",
            "variables": [{"name": "DATA_ROOT", "required": True}],
            "dashboards": ["dashboards/base.yaml"],
        },
        **valid_project(),
    }
    path = write_project(project_dir, project, name="template.yaml")

    loaded = load_project(str(path), {})

    assert loaded.name == "demo"


def test_wildcard_used_twice_in_pattern_loads(project_dir: Path) -> None:
    # Depictio substitutes every `{name}` with the wildcard's regex, so a pattern may
    # repeat a wildcard, e.g. a per-sample folder that contains a per-sample file.
    project = valid_project()
    regex_config = project["workflows"][0]["data_collections"][1]["config"]["scan"]["scan_parameters"]["regex_config"]
    regex_config["pattern"] = "{sample}/{sample}_counts.tsv"
    path = write_project(project_dir, project)

    loaded = load_project(str(path), {})

    assert loaded.workflows[0].data_collections[1].data_collection_tag == "counts"


def test_load_projects_returns_every_project(project_dir: Path) -> None:
    other = valid_project()
    other["name"] = "other"
    first = write_project(project_dir, valid_project(), name="first.yaml")
    second = write_project(project_dir, other, name="second.yaml")

    projects = load_projects([str(first), str(second)], {})

    assert [project.name for project in projects] == ["demo", "other"]


def test_load_projects_reports_duplicate_name(project_dir: Path) -> None:
    first_project = valid_project()
    first_project["id"] = "646b0f3c1e4a2d7f8e5b8c9d"
    second_project = valid_project()
    second_project["id"] = "646b0f3c1e4a2d7f8e5b8ca0"
    first = write_project(project_dir, first_project, name="first.yaml")
    second = write_project(project_dir, second_project, name="second.yaml")

    with pytest.raises(ConfigError) as caught:
        load_projects([str(first), str(second)], {})

    [problem] = caught.value.problems
    assert problem.file == str(second)
    assert problem.key_path == "name"
    assert "project name 'demo' is also used by" in problem.message
    assert str(first) in problem.message


def test_load_projects_reports_duplicate_id(project_dir: Path) -> None:
    first_project = valid_project()
    first_project["id"] = "646b0f3c1e4a2d7f8e5b8c9d"
    second_project = valid_project()
    second_project.update({"id": "646b0f3c1e4a2d7f8e5b8c9d", "name": "other"})
    first = write_project(project_dir, first_project, name="first.yaml")
    second = write_project(project_dir, second_project, name="second.yaml")

    with pytest.raises(ConfigError) as caught:
        load_projects([str(first), str(second)], {})

    [problem] = caught.value.problems
    assert problem.file == str(second)
    assert problem.key_path == "id"
    assert "project id '646b0f3c1e4a2d7f8e5b8c9d' is also used by" in problem.message


def test_duplicate_name_without_ids_is_one_problem(project_dir: Path) -> None:
    # The derived id comes from the name, so renaming one project fixes both clashes.
    first = write_project(project_dir, valid_project(), name="first.yaml")
    second = write_project(project_dir, valid_project(), name="second.yaml")

    with pytest.raises(ConfigError) as caught:
        load_projects([str(first), str(second)], {})

    key_paths = [problem.key_path for problem in caught.value.problems]
    assert key_paths == ["name"]


def test_load_projects_names_files_by_absolute_path(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first_project = valid_project()
    first_project["id"] = "646b0f3c1e4a2d7f8e5b8c9d"
    second_project = valid_project()
    second_project["id"] = "646b0f3c1e4a2d7f8e5b8ca0"
    write_project(project_dir, first_project, name="first.yaml")
    write_project(project_dir, second_project, name="second.yaml")
    monkeypatch.chdir(project_dir)

    with pytest.raises(ConfigError) as caught:
        load_projects(["first.yaml", "second.yaml"], {})

    [problem] = caught.value.problems
    assert problem.file == str(project_dir / "second.yaml")
    assert str(project_dir / "first.yaml") in problem.message


def test_load_projects_collects_problems_of_every_file(project_dir: Path) -> None:
    broken = valid_project()
    broken["workflows"][0]["data_location"]["structure"] = "nested"
    first = write_project(project_dir, broken, name="first.yaml")
    second = project_dir / "second.txt"

    with pytest.raises(ConfigError) as caught:
        load_projects([str(first), str(second)], {})

    files = [problem.file for problem in caught.value.problems]
    assert files == [str(first), str(second)]
