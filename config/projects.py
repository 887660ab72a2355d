"""Load every project file that the settings list, checking them together."""

from __future__ import annotations

import os

from config.errors import ConfigError, ConfigProblem
from config.load_project import load_project
from config.project import Project


def load_projects(
    paths: list[str], environ: dict[str, str] | None = None, allow_missing_paths: bool = False
) -> list[Project]:
    """Load each project file; raise one ConfigError with the problems of all files.

    `allow_missing_paths` logs missing locations and single files instead (see load_project).
    """
    projects: list[Project] = []
    problems: list[ConfigProblem] = []
    owners: dict[str, str] = {}
    object_ids: dict[str, str] = {}

    for given_path in paths:
        path = os.path.abspath(given_path)
        try:
            project = load_project(path, environ, allow_missing_paths)
        except ConfigError as error:
            problems.extend(error.problems)
            continue

        # Projects are looked up by id and by name, so both must be unique across files.
        # Renaming fixes a derived id too, so a clash of names is reported alone.
        name_clash = f"name:{project.name}" in owners
        clashes = 0
        for key, value in (("name", project.name), ("id", project.id)):
            label = f"{key}:{value}"
            if label in owners and not (key == "id" and name_clash):
                message = f"project {key} {value!r} is also used by {owners[label]}; give each project its own {key}"
                problems.append(ConfigProblem(path, key, message))
                clashes += 1
            owners.setdefault(label, path)
        # A project listed twice clashes on every id inside it too, so one problem is enough.
        if not clashes and not name_clash:
            _check_object_ids(project, path, object_ids, problems)
        projects.append(project)

    if problems:
        raise ConfigError(problems)
    return projects


def _check_object_ids(project: Project, path: str, seen: dict[str, str], problems: list[ConfigProblem]) -> None:
    """Report workflow, collection and join ids that another project file already uses.

    Runs, files and tables are stored by these ids, so two projects sharing one would
    overwrite each other's data.
    """
    found: list[tuple[str, str | None]] = []
    for w_index, workflow in enumerate(project.workflows):
        found.append((f"workflows[{w_index}].id", workflow.id))
        for d_index, collection in enumerate(workflow.data_collections):
            found.append((f"workflows[{w_index}].data_collections[{d_index}].id", collection.id))
    for d_index, collection in enumerate(project.data_collections):
        found.append((f"data_collections[{d_index}].id", collection.id))
    for j_index, join in enumerate(project.joins):
        found.append((f"joins[{j_index}].id", join.id))

    for key_path, object_id in found:
        if object_id is None:
            continue
        if object_id in seen:
            message = f"id {object_id!r} is also used by {seen[object_id]}; every object needs its own id"
            problems.append(ConfigProblem(path, key_path, message))
            continue
        seen[object_id] = f"{path} ({key_path})"
