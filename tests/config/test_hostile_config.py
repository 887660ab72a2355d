"""Configuration files that are valid YAML or TOML but hostile or ambiguous."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, load_projects, load_settings
from tests.config.helpers import load_problems, problem_at, valid_project, write_project, write_text


def test_duplicate_key_is_reported_with_line(project_dir: Path) -> None:
    path = write_text(project_dir, "name: first\nname: second\nworkflows: []\n")

    problem = problem_at(load_problems(path), "")

    assert "line 2" in problem.message
    assert "'name' appears twice" in problem.message


def test_alias_expansion_is_bounded(project_dir: Path) -> None:
    levels = ["name: bomb", 'a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for index, letter in enumerate("bcdefghi"):
        previous = "abcdefghi"[index]
        levels.append(f"{letter}: &{letter} [{', '.join(['*' + previous] * 9)}]")
    path = write_text(project_dir, "\n".join(levels) + "\n")

    problem = problem_at(load_problems(path), "")

    assert "expands to more than" in problem.message


def test_deeply_nested_yaml_is_reported(project_dir: Path) -> None:
    path = write_text(project_dir, "name: deep\nflexible_metadata: " + "[" * 5000 + "]" * 5000 + "\n")

    problems = load_problems(path)

    assert problems
    assert all("Traceback" not in problem.message for problem in problems)


def test_workflow_id_shared_by_two_projects(project_dir: Path) -> None:
    first_project = valid_project()
    first_project["workflows"][0]["id"] = "cccccccccccccccccccccccc"
    second_project = valid_project()
    second_project["name"] = "other"
    second_project["workflows"][0]["id"] = "cccccccccccccccccccccccc"
    first = write_project(project_dir, first_project, name="first.yaml")
    second = write_project(project_dir, second_project, name="second.yaml")

    with pytest.raises(ConfigError) as caught:
        load_projects([str(first), str(second)], {})

    problem = problem_at(caught.value.problems, "workflows[0].id")
    assert problem.file == str(second)
    assert "'cccccccccccccccccccccccc' is also used by" in problem.message


def test_environment_variable_is_named_in_problem(tmp_path: Path) -> None:
    path = tmp_path / "depictio.toml"
    path.write_text("")

    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), {"DEPICTIO_AUTH_ACCESS_TOKEN_MINUTES": "-3"})

    problem = problem_at(caught.value.problems, "auth.access_token_minutes")
    assert "DEPICTIO_AUTH_ACCESS_TOKEN_MINUTES" in problem.message


def test_deeply_nested_toml_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "depictio.toml"
    path.write_text("projects = " + "[" * 3000 + "]" * 3000 + "\n")

    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), {})

    assert caught.value.problems
