"""Project permissions and visibility changed over the API, kept across restarts.

Projects come from YAML files that the service reads at every start. A change made over
the API is stored in `project_access` together with the YAML's value at the time of the
change. It stays in force until that YAML value changes. Then the YAML wins and the
stored change is dropped. Permissions and `is_public` are tracked apart, so editing one in the YAML file
keeps an API change of the other.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import msgspec

from catalog.errors import NotFoundError
from catalog.store import Connection
from config import Permissions, Project

logger = logging.getLogger(__name__)

_COLUMNS = "permissions, yaml_permissions, is_public, yaml_is_public, changed_by, changed_at"


class _Override(msgspec.Struct, kw_only=True, frozen=True):
    """A row of `project_access`. None in `permissions` or `is_public` means "as in the YAML"."""

    permissions: str | None = None
    yaml_permissions: str | None = None
    is_public: bool | None = None
    yaml_is_public: bool | None = None
    changed_by: str | None = None
    changed_at: datetime | None = None


def encode_permissions(permissions: Permissions | None) -> str:
    """Return the JSON form in which permissions are stored and compared."""
    return msgspec.json.encode(permissions).decode()


def apply_overrides(connection: Connection, project: Project) -> Project:
    """Return `project`, read from its YAML file, with the API changes that still apply.

    A change whose YAML value differs from the one recorded with it is dropped, because
    the YAML file was edited after the change.
    """
    assert project.id is not None, "config.load_project assigns every project an id"
    override = _read(connection, project.id)
    if override is None:
        return project

    remaining = override
    if override.permissions is not None and override.yaml_permissions != encode_permissions(project.permissions):
        logger.info(
            "project %s (%s): its YAML file changed the permissions set over the API by %s; the YAML's apply now",
            project.name,
            project.id,
            override.changed_by,
        )
        remaining = msgspec.structs.replace(remaining, permissions=None, yaml_permissions=None)
    if override.is_public is not None and override.yaml_is_public != project.is_public:
        logger.info(
            "project %s (%s): its YAML file changed is_public, set over the API by %s; the YAML's value applies now",
            project.name,
            project.id,
            override.changed_by,
        )
        remaining = msgspec.structs.replace(remaining, is_public=None, yaml_is_public=None)
    if remaining != override:
        _write(connection, project.id, remaining)

    if remaining.permissions is not None:
        project = msgspec.structs.replace(
            project, permissions=msgspec.json.decode(remaining.permissions, type=Permissions | None)
        )
    if remaining.is_public is not None:
        project = msgspec.structs.replace(project, is_public=remaining.is_public)
    return project


def set_permissions(connection: Connection, project_id: str, permissions: Permissions, changed_by: str) -> Project:
    """Replace the project's permissions, keep the change across restarts and return the project."""
    current = _stored_project(connection, project_id)
    override = _read(connection, project_id) or _Override()
    # The YAML's permissions are the stored ones, unless an earlier API change replaced them.
    if override.permissions is None:
        override = msgspec.structs.replace(override, yaml_permissions=encode_permissions(current.permissions))
    override = msgspec.structs.replace(
        override, permissions=encode_permissions(permissions), changed_by=changed_by, changed_at=_now()
    )
    _write(connection, project_id, override)
    return _store_project(connection, msgspec.structs.replace(current, permissions=permissions))


def set_public(connection: Connection, project_id: str, is_public: bool, changed_by: str) -> Project:
    """Make the project public or private, keep the change across restarts and return the project."""
    current = _stored_project(connection, project_id)
    override = _read(connection, project_id) or _Override()
    if override.is_public is None:
        override = msgspec.structs.replace(override, yaml_is_public=current.is_public)
    override = msgspec.structs.replace(override, is_public=is_public, changed_by=changed_by, changed_at=_now())
    _write(connection, project_id, override)
    return _store_project(connection, msgspec.structs.replace(current, is_public=is_public))


def delete_overrides(connection: Connection, project_id: str) -> None:
    connection.execute("DELETE FROM project_access WHERE project_id = ?", [project_id])


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _read(connection: Connection, project_id: str) -> _Override | None:
    row = connection.execute(f"SELECT {_COLUMNS} FROM project_access WHERE project_id = ?", [project_id]).fetchone()
    if row is None:
        return None
    return _Override(**dict(zip(_Override.__struct_fields__, row, strict=True)))


def _write(connection: Connection, project_id: str, override: _Override) -> None:
    """Store `override`, or delete the row when it no longer overrides anything."""
    delete_overrides(connection, project_id)
    if override.permissions is None and override.is_public is None:
        return
    values = [project_id, *(getattr(override, name) for name in _Override.__struct_fields__)]
    connection.execute(f"INSERT INTO project_access (project_id, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", values)


def _stored_project(connection: Connection, project_id: str) -> Project:
    row = connection.execute("SELECT document FROM projects WHERE id = ?", [project_id]).fetchone()
    if row is None:
        raise NotFoundError("project", project_id)
    return msgspec.json.decode(str(row[0]), type=Project)


def _store_project(connection: Connection, project: Project) -> Project:
    connection.execute(
        "UPDATE projects SET document = ?, is_public = ?, last_modified = ? WHERE id = ?",
        [msgspec.json.encode(project).decode(), project.is_public, _now(), project.id],
    )
    return project
