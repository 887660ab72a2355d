"""Request and response bodies of the `/dashboards` routes, with Depictio's field names.

A dashboard's own content (components, sections, layout) has no fixed schema: Depictio's
viewer adds fields release by release. Routes that carry it use `dict[str, Any]`; the
fields that depictiod manages are listed in `api.dashboard_documents.MANAGED_FIELDS`.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

ImportStatus = Literal["created", "replaced", "kept"]


class DashboardSummaryOut(msgspec.Struct, kw_only=True):
    """One dashboard in `GET /dashboards/list`."""

    dashboard_id: str
    title: str
    project_id: str
    subtitle: str
    version: int
    # The project's visibility: a dashboard is public exactly when its project is.
    is_public: bool
    is_main_tab: bool
    parent_dashboard_id: str | None
    tab_order: int
    creation_time: str
    last_saved_ts: str


class TabOut(msgspec.Struct, kw_only=True):
    title: str
    dashboard_id: str


class ImportOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The outcome of `POST /dashboards/import/yaml`."""

    success: bool
    # True when the import replaced a dashboard the project had.
    updated: bool
    status: ImportStatus
    message: str
    dashboard_id: str
    title: str
    project_id: str
    # The address of a dashboard viewer; depictiod has none, so this is always null.
    dash_url: str | None
    # The child tabs of a multi-tab file, after the import.
    tabs: list[TabOut] | None = None
    # For a multi-tab dashboard that was kept: the tabs of the file that it lacked and gained.
    tabs_added: int | None = None


class SaveOut(msgspec.Struct, kw_only=True):
    message: str
    dashboard_id: str


class DeleteOut(msgspec.Struct, kw_only=True):
    message: str
    child_tabs_deleted: int


class PublicStatusIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    is_public: bool


class PublicStatusOut(msgspec.Struct, kw_only=True):
    success: bool
    message: str
    is_public: bool
    # Every dashboard of the project takes the project's visibility.
    dashboards_updated: int
    child_tabs_updated: int


class ExportSourceOut(msgspec.Struct, kw_only=True):
    dashboard_id: str
    project_tag: str


class CollectionRefOut(msgspec.Struct, kw_only=True):
    """A data collection that a dashboard reads, by its tags and its id in the source project."""

    workflow_tag: str | None
    data_collection_tag: str
    data_collection_id: str


class DataIntegrityOut(msgspec.Struct, kw_only=True):
    data_collections: list[CollectionRefOut]


class JsonExportOut(msgspec.Struct, kw_only=True):
    """A dashboard as `GET /dashboards/{dashboard_id}/json` exports it, for `POST /dashboards/import/json`."""

    export_version: str = msgspec.field(name="_depictio_export_version")
    export_timestamp: str = msgspec.field(name="_export_timestamp")
    export_source: ExportSourceOut = msgspec.field(name="_export_source")
    dashboard: dict[str, Any]
    data_integrity: DataIntegrityOut = msgspec.field(name="_data_integrity")


class JsonImportOut(msgspec.Struct, kw_only=True):
    success: bool
    message: str
    dashboard_id: str
    title: str
    project_id: str
    warnings: list[str] | None = None
