"""The folders a backup must stay out of: those the service writes, sweeps or scans."""

from __future__ import annotations

import os
from collections.abc import Iterable

from catalog import ProtectedFolder
from config import Project, Settings


def protected_folders(settings: Settings, projects: Iterable[Project], uploads_folder: str) -> list[ProtectedFolder]:
    """Return every workflow location of `projects`, the uploads and spill folders, and the catalog's folder.

    The most specific folders come first, so an error names the uploads folder rather than
    the catalog's folder that contains it.
    """
    folders = []
    for project in projects:
        for workflow in project.workflows:
            for location in workflow.data_location.locations:
                description = (
                    f"a location of workflow {workflow.name!r} of project {project.name!r}, which the service scans"
                )
                folders.append(ProtectedFolder(location, description))
    folders.append(
        ProtectedFolder(uploads_folder, "the uploads folder, from which the service deletes the files it does not list")
    )
    if settings.catalog.temp_directory:
        folders.append(
            ProtectedFolder(
                settings.catalog.temp_directory, "the spill folder (catalog.temp_directory), which DuckDB empties"
            )
        )
    catalog_folder = os.path.dirname(os.path.abspath(settings.catalog.path))
    description = "the catalog's folder, so deleting that folder or losing its disk would take the backup too"
    folders.append(ProtectedFolder(catalog_folder, description))
    return folders
