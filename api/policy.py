"""The one access rule that every route applies.

A signed-in user may read a project when they are an administrator, when the project is
public, or when the project's permissions list them as owner, editor or viewer (or list
`"*"` among the viewers). Runs, files, collections and tables follow their project.
"""

from __future__ import annotations

from typing import Any

from catalog import Catalog, ProjectRecord, UserRecord, user_id_for
from config import Project


def member_ids(entries: list[str | dict[str, Any]]) -> set[str]:
    """Return the user ids named by permission entries (ids, e-mail addresses or user dicts)."""
    found: set[str] = set()
    for entry in entries:
        if isinstance(entry, dict):
            value = entry.get("id") or entry.get("_id") or entry.get("email")
        else:
            value = entry
        if not isinstance(value, str):
            continue
        found.add(user_id_for(value) if "@" in value else value)
    return found


def owner_ids(project: Project, default_owner: str) -> set[str]:
    """Return the project's owners; a project file without permissions is owned by the admin."""
    if project.permissions is None or not project.permissions.owners:
        return {default_owner}
    return member_ids(project.permissions.owners)


def can_read(user: UserRecord, record: ProjectRecord, default_owner: str) -> bool:
    if user.is_admin or record.project.is_public:
        return True
    project = record.project
    if user.id in owner_ids(project, default_owner):
        return True
    if project.permissions is None:
        return False
    viewers = project.permissions.viewers
    if "*" in viewers:
        return True
    return user.id in member_ids(project.permissions.editors) | member_ids(viewers)


def readable_projects(catalog: Catalog, user: UserRecord, default_owner: str) -> list[ProjectRecord]:
    return [record for record in catalog.projects.list() if can_read(user, record, default_owner)]


def can_manage(user: UserRecord, record: ProjectRecord, default_owner: str) -> bool:
    """Return True when the user may change the project or trigger its scans: owners and admins."""
    return user.is_admin or user.id in owner_ids(record.project, default_owner)
