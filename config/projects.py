"""Load every project file that the settings list, checking them together."""

from __future__ import annotations

import os

from config.errors import ConfigError, ConfigProblem
from config.load_project import load_project
from config.project import Project


def load_projects(paths: list[str], environ: dict[str, str] | None = None) -> list[Project]:
    """Load each project file; raise one ConfigError with the problems of all files."""
    projects: list[Project] = []
    problems: list[ConfigProblem] = []
    owners: dict[str, str] = {}

    for given_path in paths:
        path = os.path.abspath(given_path)
        try:
            project = load_project(path, environ)
        except ConfigError as error:
            problems.extend(error.problems)
            continue

        # Projects are looked up by id and by name, so both must be unique across files.
        # Renaming fixes a derived id too, so a clash of names is reported alone.
        name_clash = f"name:{project.name}" in owners
        for key, value in (("name", project.name), ("id", project.id)):
            label = f"{key}:{value}"
            if label in owners and not (key == "id" and name_clash):
                message = f"project {key} {value!r} is also used by {owners[label]}; give each project its own {key}"
                problems.append(ConfigProblem(path, key, message))
            owners.setdefault(label, path)
        projects.append(project)

    if problems:
        raise ConfigError(problems)
    return projects
