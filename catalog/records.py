"""Typed rows that the catalog returns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from config import DataCollection, Project, Workflow


class ProjectRecord(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    name: str
    source: str
    project: Project
    registration_time: datetime
    last_modified: datetime
    # For a project sent over the API: the id of the user who last set its locations. Files
    # are read anywhere in them only while that user is an administrator (ingest.client_roots).
    placed_by: str | None = None


class WorkflowRecord(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    project_id: str
    workflow: Workflow


class CollectionRecord(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    project_id: str
    workflow_id: str | None
    collection: DataCollection


class RunRecord(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    workflow_id: str
    run_tag: str
    run_location: str
    workflow_config_id: str
    creation_time: datetime
    last_modification_time: datetime
    registration_time: datetime
    run_hash: str
    # Workflow parameters found in the run folder: {"source": path, "values": {...}}, or {}.
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    # scan (found by depictiod) or client (pushed over the API, kept until a client deletes it).
    origin: str = "scan"
    # A client's fields that have no column of their own, such as scan_results.
    document: dict[str, Any] = msgspec.field(default_factory=dict)


class FileRecord(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    data_collection_id: str
    workflow_id: str
    run_id: str
    run_tag: str
    file_location: str
    filename: str
    filesize: int
    mtime_ns: int
    creation_time: datetime
    modification_time: datetime
    content_hash: str
    wildcards: dict[str, str]
    # registered (found, not yet aggregated), aggregated or failed.
    status: str
    error: str | None
    error_line: int | None
    row_count: int | None
    registration_time: datetime
    # The resolved target when the file was found as a symlink, else None.
    link_target: str | None = None
    # How the last aggregation read the file: separator, compression, header line, short
    # rows, renamed columns. Empty until the file is aggregated.
    read_details: dict[str, Any] = msgspec.field(default_factory=dict)
    # scan (found by depictiod), client (pushed over the API, kept until a client deletes it)
    # or upload (uploaded into the collection's table and stored in the uploads folder).
    origin: str = "scan"
    # A client's fields that have no column of their own, such as file_hash or sample; for
    # an upload, its format and who uploaded it.
    document: dict[str, Any] = msgspec.field(default_factory=dict)


class DriftNote(msgspec.Struct, kw_only=True, frozen=True):
    """One column of one file whose type differs from the table's column type."""

    file_id: str
    column: str
    file_type: str
    table_type: str


class TableRecord(msgspec.Struct, kw_only=True, frozen=True):
    data_collection_id: str
    table_name: str
    row_count: int
    column_count: int
    size_bytes: int
    aggregation_version: int
    aggregation_time: datetime
    aggregation_hash: str
    inputs_fingerprint: str
    # Fingerprint of the collection's reader settings; a change rebuilds the whole table.
    settings_fingerprint: str | None
    drift: list[DriftNote]


class ColumnSpec(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    duckdb_type: str
    # Depictio's type name: int64, float64, bool, datetime, object ...
    type: str
    description: str | None
    specs: dict[str, Any]


class UserRecord(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    email: str
    password_hash: str
    is_admin: bool
    is_active: bool
    registration_date: datetime
    last_login: datetime | None


class TokenRecord(msgspec.Struct, kw_only=True, frozen=True):
    """One sign-in or long-lived token: its current access token and refresh token.

    The record keeps only the `jti` claims of the two JWTs, never the JWTs themselves. A
    refresh replaces both `jti` values in place, so the record's id stays the same for the
    whole chain of tokens that one sign-in produced.
    """

    id: str
    user_id: str
    name: str
    # short-lived (a sign-in) or long-lived (created for a script or the Depictio CLI).
    token_lifetime: str
    jti: str
    expire_datetime: datetime
    created_at: datetime
    revoked: bool
    # None for tokens stored before refresh tokens existed; they cannot be refreshed.
    refresh_jti: str | None = None
    refresh_expire_datetime: datetime | None = None
    # Lifetime of each access token of this record, in seconds.
    access_seconds: int | None = None


class ScanReport(msgspec.Struct, kw_only=True, frozen=True):
    """One scan of a workflow, or one ingestion that a client reported (`details.trigger` is `client`)."""

    id: str
    # None for a client ingestion until its project exists and its starter may write it.
    project_id: str | None
    # None for a client ingestion, which covers the whole project.
    workflow_id: str | None
    started_at: datetime
    finished_at: datetime
    runs: int
    files_total: int
    files_new: int
    files_changed: int
    files_removed: int
    files_failed: int
    details: dict[str, Any]
