"""Problems that stop a project file from being read at all: name, existence, YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, load_project
from tests.config.helpers import valid_project, write_project, write_text


def test_txt_suffix_is_rejected(project_dir: Path) -> None:
    path = write_project(project_dir, valid_project(), name="project.txt")

    with pytest.raises(ConfigError) as caught:
        load_project(str(path), {})

    [problem] = caught.value.problems
    assert problem.file == str(path)
    assert problem.key_path == ""
    assert ".yaml or .yml" in problem.message


def test_missing_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(ConfigError) as caught:
        load_project(str(path), {})

    [problem] = caught.value.problems
    assert problem.file == str(path)
    assert "does not exist" in problem.message
    assert "`projects` setting" in problem.message


def test_folder_instead_of_file_is_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "looks_like.yaml"
    folder.mkdir()

    with pytest.raises(ConfigError) as caught:
        load_project(str(folder), {})

    [problem] = caught.value.problems
    assert problem.file == str(folder)
    assert "not a regular file" in problem.message


def test_yaml_list_is_not_a_mapping(tmp_path: Path) -> None:
    path = write_text(tmp_path, "- name: demo\n- name: other\n")

    with pytest.raises(ConfigError) as caught:
        load_project(str(path), {})

    [problem] = caught.value.problems
    assert problem.file == str(path)
    assert problem.key_path == ""
    assert "expected a mapping" in problem.message
    assert "(list)" in problem.message


def test_empty_file_is_not_a_mapping(tmp_path: Path) -> None:
    path = write_text(tmp_path, "")

    with pytest.raises(ConfigError) as caught:
        load_project(str(path), {})

    [problem] = caught.value.problems
    assert "expected a mapping" in problem.message
    assert "(null)" in problem.message


def test_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    # A block-list item `-` inside the unclosed flow list `[` is invalid YAML at line 3.
    path = write_text(
        tmp_path,
        """
        name: demo
        workflows: [
          - name: rnaseq
        """,
    )

    with pytest.raises(ConfigError) as caught:
        load_project(str(path), {})

    [problem] = caught.value.problems
    assert problem.file == str(path)
    assert "invalid YAML at line 3, column 3" in problem.message
    assert "fix the syntax" in problem.message


def test_yaml_syntax_error_hides_parser_traceback(tmp_path: Path) -> None:
    path = write_text(tmp_path, "name: demo\n  indented: wrongly\n")

    with pytest.raises(ConfigError) as caught:
        load_project(str(path), {})

    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert "line 2, column" in str(caught.value)
