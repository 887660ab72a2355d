"""The folders a backup must stay out of: those the service writes, sweeps or scans."""

from __future__ import annotations

import os
from collections.abc import Iterable

from catalog import ProtectedFolder
from config import Project, Settings


def protected_folders(settings: Settings, projects: Iterable[Project], uploads_folder: str) -> list[ProtectedFolder]:
    """Return the catalog's folder, the uploads and spill folders, and every workflow location of `projects`."""
    catalog_folder = os.path.dirname(os.path.abspath(settings.catalog.path))
    folders = [
        ProtectedFolder(
            catalog_folder, "the catalog's folder, so deleting that folder or losing its disk would take the backup too"
        ),
        ProtectedFolder(
            uploads_folder, "the uploads folder, from which the service deletes the files it does not list"
        ),
    ]
    if settings.catalog.temp_directory:
        folders.append(
            ProtectedFolder(
                settings.catalog.temp_directory, "the spill folder (catalog.temp_directory), which DuckDB empties"
            )
        )
    for project in projects:
        for workflow in project.workflows:
            for location in workflow.data_location.locations:
                description = (
                    f"a location of workflow {workflow.name!r} of project {project.name!r}, which the service scans"
                )
                folders.append(ProtectedFolder(location, description))
    return folders
