"""Load every project file that the settings list, checking them together."""

from __future__ import annotations

from config.errors import ConfigError, ConfigProblem
from config.load_project import load_project
from config.project import Project


def load_projects(paths: list[str], environ: dict[str, str] | None = None) -> list[Project]:
    """Load each project file; raise one ConfigError with the problems of all files."""
    projects: list[Project] = []
    problems: list[ConfigProblem] = []
    owners: dict[str, str] = {}

    for path in paths:
        try:
            project = load_project(path, environ)
        except ConfigError as error:
            problems.extend(error.problems)
            continue

        # Projects are looked up by id and by name, so both must be unique across files.
        for key, value in (("id", project.id), ("name", project.name)):
            label = f"{key}:{value}"
            if label in owners:
                problems.append(
                    ConfigProblem(
                        path,
                        key,
                        f"project {key} {value!r} is also used by {owners[label]}; give each project its own {key}",
                    )
                )
            owners.setdefault(label, path)
        projects.append(project)

    if problems:
        raise ConfigError(problems)
    return projects
