"""Dashboards: documents that lay out a project's tables, stored one row per dashboard.

A dashboard belongs to one project and goes when the project goes. Its own content
(components, sections, layout, icons) is kept as its client sent it. The catalog adds
only the fields it manages: tab family, version, import source and times.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import msgspec

from catalog.errors import ConflictError, NotFoundError
from catalog.store import Connection, Store

T = TypeVar("T")

_COLUMNS = "id, project_id, title, document, last_saved_ts"


class DashboardRecord(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    project_id: str
    title: str
    last_saved_ts: datetime
    creation_time: datetime
    # Incremented by every save or import that replaces the dashboard.
    version: int = 1
    # A main dashboard may have child tabs, and a child tab names its main dashboard in parent_id.
    is_main_tab: bool = True
    parent_id: str | None = None
    tab_order: int = 0
    # Where an imported dashboard came from (a template file), so a later import of the
    # same source finds it even after it was renamed. None for dashboards saved directly.
    source_key: str | None = None
    # The id of the user who created the dashboard.
    created_by: str | None = None
    # The dashboard's own content as its client sent it: components, sections, layout, icons.
    definition: dict[str, Any] = msgspec.field(default_factory=dict)


class _Document(msgspec.Struct, kw_only=True):
    """The fields of a DashboardRecord that have no column of their own, stored as JSON."""

    creation_time: datetime
    version: int
    is_main_tab: bool
    parent_id: str | None
    tab_order: int
    source_key: str | None
    created_by: str | None
    definition: dict[str, Any]


@dataclass
class DashboardChanges:
    """The dashboards of one project to write and to delete, in one transaction."""

    put: list[DashboardRecord] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)


class DashboardRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    def list(self, project_ids: list[str]) -> list[DashboardRecord]:
        """Return the dashboards of these projects, by project, then main dashboards before their tabs."""
        rows = self._store.query(
            f"SELECT {_COLUMNS} FROM dashboards WHERE project_id IN (SELECT unnest(?::VARCHAR[])) "
            "ORDER BY project_id, title, id",
            [project_ids],
        )
        return _family_order([_record(row) for row in rows])

    def get(self, dashboard_id: str) -> DashboardRecord | None:
        row = self._store.query_one(f"SELECT {_COLUMNS} FROM dashboards WHERE id = ?", [dashboard_id])
        return _record(row) if row else None

    def tabs(self, dashboard_id: str) -> builtins.list[DashboardRecord]:
        """Return the child tabs of a main dashboard in tab order."""
        record = self.get(dashboard_id)
        if record is None:
            return []
        return [item for item in self.list([record.project_id]) if item.parent_id == dashboard_id]

    def change_project(
        self, project_id: str, plan: Callable[[builtins.list[DashboardRecord]], tuple[DashboardChanges, T]]
    ) -> T:
        """Apply the changes that `plan` makes from the project's dashboards, in one transaction.

        `plan` runs on the writer thread with the dashboards as committed, so two changes
        to one project never plan from the same state. An exception from `plan` writes
        nothing. Raises NotFoundError when the project no longer exists.
        """

        def work(connection: Connection) -> T:
            if not connection.execute("SELECT id FROM projects WHERE id = ?", [project_id]).fetchall():
                raise NotFoundError("project", project_id)
            rows = connection.execute(
                f"SELECT {_COLUMNS} FROM dashboards WHERE project_id = ? ORDER BY title, id", [project_id]
            ).fetchall()
            changes, result = plan(_family_order([_record(row) for row in rows]))
            for dashboard_id in changes.delete:
                connection.execute("DELETE FROM dashboards WHERE id = ? AND project_id = ?", [dashboard_id, project_id])
            for record in changes.put:
                if record.project_id != project_id:
                    raise ValueError(f"dashboard {record.id} belongs to project {record.project_id}, not {project_id}")
                # Ids are unique across projects: a client-chosen id may not take another project's dashboard.
                owner = connection.execute("SELECT project_id FROM dashboards WHERE id = ?", [record.id]).fetchall()
                if owner and owner[0][0] != project_id:
                    raise ConflictError(f"dashboard id {record.id!r} is taken; save the dashboard under another id")
                connection.execute("DELETE FROM dashboards WHERE id = ?", [record.id])
                connection.execute(
                    f"INSERT INTO dashboards ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                    [record.id, record.project_id, record.title, _encode_document(record), record.last_saved_ts],
                )
            return result

        return self._store.write(work)


def _encode_document(record: DashboardRecord) -> str:
    document = _Document(
        creation_time=record.creation_time,
        version=record.version,
        is_main_tab=record.is_main_tab,
        parent_id=record.parent_id,
        tab_order=record.tab_order,
        source_key=record.source_key,
        created_by=record.created_by,
        definition=record.definition,
    )
    return msgspec.json.encode(document).decode()


def _record(row: tuple[Any, ...]) -> DashboardRecord:
    dashboard_id, project_id, title, document, last_saved_ts = row
    fields = msgspec.json.decode(str(document), type=_Document)
    return DashboardRecord(
        id=str(dashboard_id),
        project_id=str(project_id),
        title=str(title),
        last_saved_ts=last_saved_ts,
        creation_time=fields.creation_time,
        version=fields.version,
        is_main_tab=fields.is_main_tab,
        parent_id=fields.parent_id,
        tab_order=fields.tab_order,
        source_key=fields.source_key,
        created_by=fields.created_by,
        definition=fields.definition,
    )


def _family_order(records: list[DashboardRecord]) -> list[DashboardRecord]:
    """Put each main dashboard before its child tabs, tabs in tab order, keeping the given order otherwise."""
    ids = {record.id for record in records}
    tabs: dict[str, list[DashboardRecord]] = {}
    for record in records:
        if record.parent_id is not None:
            tabs.setdefault(record.parent_id, []).append(record)
    ordered: list[DashboardRecord] = []
    for record in records:
        if record.parent_id in ids:
            continue
        ordered.append(record)
        ordered.extend(sorted(tabs.get(record.id, []), key=lambda tab: (tab.tab_order, tab.title, tab.id)))
    return ordered
