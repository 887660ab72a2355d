"""Request and response bodies, with Depictio's field names.

Depictio serves two spellings of ids: model responses use `id`, raw document responses
(run and file lists, project by id) use `_id`. Each Struct below follows the route it
serves; `Document` variants rename `id` to `_id`.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from api.backup_schemas import LastBackupOut
from api.external_table_schemas import ExternalTableOut
from api.monitoring_schemas import ClientIngestionOut

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class UserRef(msgspec.Struct, kw_only=True):
    id: str
    email: str
    is_admin: bool = False


class PermissionsOut(msgspec.Struct, kw_only=True):
    owners: list[UserRef]
    editors: list[UserRef]
    viewers: list[UserRef | str]


# A project member in a permissions request: a user id, an e-mail address, or a user
# document with `id` (or `_id`) and/or `email`. The entry `"*"` among the viewers means
# every signed-in user.
Member = str | dict[str, Any]


class PermissionsIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    owners: list[Member] = msgspec.field(default_factory=list)
    editors: list[Member] = msgspec.field(default_factory=list)
    viewers: list[Member] = msgspec.field(default_factory=list)
    # Depictio 1.19 adds group roles. depictiod has no groups, so these must stay empty.
    group_owners: list[Any] = msgspec.field(default_factory=list)
    group_editors: list[Any] = msgspec.field(default_factory=list)
    group_viewers: list[Any] = msgspec.field(default_factory=list)


class ProjectPermissionRequest(msgspec.Struct, kw_only=True):
    """The body of `POST /projects/update_project_permissions`: the new roles replace the old."""

    project_id: str
    permissions: PermissionsIn


class ActionOut(msgspec.Struct, kw_only=True):
    """Depictio's response to a change: `success` and a message."""

    success: bool
    message: str


class VisibilityOut(ActionOut, kw_only=True):
    is_public: bool


class UserOut(msgspec.Struct, kw_only=True):
    """A user as `/auth/me` returns it: never with a password hash."""

    id: str
    email: str
    is_admin: bool
    is_active: bool
    registration_date: str | None
    last_login: str | None
    is_anonymous: bool = False
    is_temporary: bool = False
    expiration_time: str | None = None
    is_verified: bool = False
    description: str | None = None
    flexible_metadata: dict[str, Any] | None = None
    hash: str | None = None


class LoginForm(msgspec.Struct, kw_only=True):
    """OAuth2 password form: `username` is the e-mail address."""

    username: str
    password: str
    grant_type: str | None = None
    scope: str | None = None
    client_id: str | None = None
    client_secret: str | None = None


class TokenOut(msgspec.Struct, kw_only=True, rename={"id": "_id"}):
    id: str
    user_id: str
    access_token: str
    token_type: str
    token_lifetime: str
    expire_datetime: str
    name: str
    created_at: str
    logged_in: bool
    refresh_token: str | None = None
    refresh_expire_datetime: str | None = None
    description: str | None = None
    flexible_metadata: dict[str, Any] | None = None
    hash: str | None = None


class RegistrationIn(msgspec.Struct, kw_only=True):
    email: str
    password: str


class RegistrationOut(msgspec.Struct, kw_only=True):
    success: bool
    message: str
    user: UserOut


class EditPasswordIn(msgspec.Struct, kw_only=True):
    old_password: str
    new_password: str


class SuccessOut(msgspec.Struct, kw_only=True):
    success: bool
    message: str | None = None


class RefreshIn(msgspec.Struct, kw_only=True):
    refresh_token: str


class TokenCreateIn(msgspec.Struct, kw_only=True):
    """A long-lived token to create; `lifetime_days` defaults to the configured maximum."""

    name: str
    lifetime_days: int | None = None


class TokenInfoOut(msgspec.Struct, kw_only=True, rename={"id": "_id"}):
    """A token as `/auth/list_tokens` returns it: without the access or refresh token."""

    id: str
    user_id: str
    name: str
    token_type: str
    token_lifetime: str
    expire_datetime: str
    refresh_expire_datetime: str | None
    created_at: str
    # True for the token that made the request.
    current: bool


class TokenValidityOut(msgspec.Struct, kw_only=True):
    success: bool
    can_refresh: bool
    # valid, refresh (the access token expired but its refresh token works) or logout.
    action: Literal["valid", "refresh", "logout"]


class CLITokenIn(msgspec.Struct, kw_only=True):
    """The token of a Depictio CLI config (Depictio's TokenBase); times are strings in either format."""

    user_id: str
    access_token: str
    refresh_token: str
    expire_datetime: str
    refresh_expire_datetime: str
    id: str | None = None
    token_type: str | None = "bearer"
    token_lifetime: str | None = None
    name: str | None = None
    created_at: str | None = None
    logged_in: bool | None = None
    description: str | None = None
    flexible_metadata: dict[str, Any] | None = None
    hash: str | None = None


class CLIUserIn(msgspec.Struct, kw_only=True):
    email: str
    token: CLITokenIn
    id: str | None = None
    is_admin: bool = False
    is_anonymous: bool = False
    is_temporary: bool = False
    expiration_time: str | None = None
    description: str | None = None
    flexible_metadata: dict[str, Any] | None = None
    hash: str | None = None


class CLIConfigIn(msgspec.Struct, kw_only=True):
    """The Depictio CLI's configuration (CLI.yaml) as the CLI posts it to validate_cli_config."""

    api_base_url: str
    user: CLIUserIn
    s3_storage: dict[str, Any]
    instance_label: str | None = None
    remote_storage_options: dict[str, Any] | None = None


class CLIValidationOut(msgspec.Struct, kw_only=True):
    success: bool
    message: str
    is_admin: bool = False
    user_id: str | None = None
    email: str | None = None


class AgentTokenIn(msgspec.Struct, kw_only=True):
    """A long-lived token of the caller to put into the generated CLI config, instead of a new one."""

    access_token: str
    refresh_token: str


class CLITokenOut(msgspec.Struct, kw_only=True):
    id: str
    user_id: str
    access_token: str
    refresh_token: str
    token_type: str
    token_lifetime: str
    expire_datetime: str
    refresh_expire_datetime: str
    name: str
    created_at: str
    logged_in: bool = False
    description: str | None = None
    flexible_metadata: dict[str, Any] | None = None
    hash: str | None = None


class CLIUserOut(msgspec.Struct, kw_only=True):
    id: str
    email: str
    is_admin: bool
    token: CLITokenOut
    is_anonymous: bool = False
    is_temporary: bool = False
    expiration_time: str | None = None
    description: str | None = None
    flexible_metadata: dict[str, Any] | None = None
    hash: str | None = None


class AgentConfigOut(msgspec.Struct, kw_only=True):
    """A Depictio CLI config (CLI.yaml) for the caller. depictiod stores no S3 data, so `s3_storage` is empty."""

    api_base_url: str
    user: CLIUserOut
    s3_storage: dict[str, Any]
    instance_label: str | None = None


class _RunFields(msgspec.Struct, kw_only=True):
    id: str
    workflow_id: str
    run_tag: str
    files_id: list[str]
    workflow_config_id: str
    run_location: str
    creation_time: str
    last_modification_time: str
    registration_time: str
    run_hash: str
    scan_results: list[dict[str, Any]]
    permissions: PermissionsOut
    description: str | None = None
    flexible_metadata: dict[str, Any] | None = None
    hash: str | None = None


class RunOut(_RunFields, kw_only=True):
    """A run in model form (`id`), as `/runs/get/{run_id}` returns it."""


class RunDocument(_RunFields, kw_only=True):
    """A run in document form (`_id`), as `/runs/list/{workflow_id}` returns it."""

    id: str = msgspec.field(name="_id")


class FileDocument(msgspec.Struct, kw_only=True, rename={"id": "_id"}):
    """A file as `/files/list/{data_collection_id}` returns it; the Depictio CLI rejects extra keys."""

    id: str
    file_location: str
    filename: str
    creation_time: str
    modification_time: str
    run_id: str
    run_tag: str
    data_collection_id: str
    registration_time: str
    file_hash: str
    filesize: int
    permissions: PermissionsOut
    description: str | None = None
    flexible_metadata: dict[str, Any] | None = None
    hash: str | None = None


class FileDetails(msgspec.Struct, kw_only=True, rename={"id": "_id"}):
    """A file with depictiod's ingestion details, for `/files/list/{id}?details=true`."""

    id: str
    file_location: str
    filename: str
    run_id: str
    run_tag: str
    data_collection_id: str
    filesize: int
    modification_time: str
    content_hash: str
    wildcards: dict[str, str]
    status: str
    error: str | None
    error_line: int | None
    row_count: int | None
    # The resolved target when the file was found as a symlink.
    link_target: str | None = None
    # How the last aggregation read the file: delimiter, compression, header_line,
    # comment_lines, hash_header, short_rows, renamed_columns.
    read_details: dict[str, Any] = msgspec.field(default_factory=dict)


class ColumnSpecOut(msgspec.Struct, kw_only=True):
    name: str
    type: str
    description: str | None
    specs: dict[str, Any]


class DriftOut(msgspec.Struct, kw_only=True):
    file_id: str
    column: str
    file_type: str
    table_type: str


class AggregationOut(msgspec.Struct, kw_only=True):
    aggregation_time: str
    aggregation_by: UserRef | None
    aggregation_version: int
    aggregation_hash: str
    aggregation_columns_specs: list[ColumnSpecOut]


class DeltaTableDocument(msgspec.Struct, kw_only=True, rename={"id": "_id"}):
    id: str
    data_collection_id: str
    delta_table_location: str
    aggregation: list[AggregationOut]
    num_rows: int
    num_columns: int
    drift: list[DriftOut]
    description: str | None = None
    flexible_metadata: dict[str, Any] | None = None
    hash: str | None = None
    # The newest table that a client reported writing elsewhere (POST /deltatables/upsert).
    external_table: ExternalTableOut | None = None


class ShapeOut(msgspec.Struct, kw_only=True):
    num_rows: int
    num_columns: int


class PreviewOut(msgspec.Struct, kw_only=True):
    columns: list[str]
    rows: list[dict[str, Any]]
    total_rows: int
    total_columns: int


class UniqueValuesOut(msgspec.Struct, kw_only=True):
    column: str
    values: list[Any]


class LocationWatchOut(msgspec.Struct, kw_only=True):
    workflow_id: str
    location: str
    # events or polling.
    mode: str
    reason: str


class IngestStatusOut(msgspec.Struct, kw_only=True):
    state: str
    last_scan_started: str | None
    last_scan_finished: str | None
    scans_completed: int
    last_error: str | None
    # Workflow scans that ran past ingest.reconcile_deadline_seconds since the start.
    scans_timed_out: int
    locations: list[LocationWatchOut]
    # Why the catalog cannot be written while ingestion is paused (state `paused`), else None.
    # Administrators also see DuckDB's message, which names the file.
    write_error: str | None = None


class StatusOut(msgspec.Struct, kw_only=True):
    status: str
    version: str
    ingest: IngestStatusOut
    # Null until the first backup of the catalog (see `POST /utils/backup`).
    last_backup: LastBackupOut | None = None


class HealthOut(msgspec.Struct, kw_only=True):
    status: str
    version: str


def rename_ids(value: Any) -> Any:
    """Return `value` with every `id` key renamed to `_id`, as Depictio's raw documents have."""
    if isinstance(value, dict):
        return {("_id" if key == "id" else key): rename_ids(item) for key, item in value.items()}
    if isinstance(value, list):
        return [rename_ids(item) for item in value]
    return value


class ScanCollectionOut(msgspec.Struct, kw_only=True):
    collection_id: str
    tag: str
    files: int
    empty_files: int
    files_new: int
    files_changed: int
    files_removed: int
    files_unsettled: int
    # Set when the collection matched no file.
    warning: str | None
    # ok, waiting (only files still being written) or no_files (the pattern matched nothing).
    status: str = "ok"
    files_unchanged: int = 0
    # Files that failed to aggregate after this scan, and up to 100 of them with the reason.
    files_failed: int = 0
    failures: list[IngestionFailureOut] = msgspec.field(default_factory=list)
    # The table's outcome after this scan (built, updated, unchanged, empty, skipped or error)
    # and its rows; empty for reports written before aggregation was recorded.
    outcome: str | None = None
    rows: int | None = None


class ScanReportOut(msgspec.Struct, kw_only=True):
    """One scan of one workflow, or one ingestion that a client reported (trigger `client`)."""

    id: str
    project_id: str
    # None for a client ingestion, which covers the whole project.
    workflow_id: str | None
    # startup, schedule, event, overflow, watch-restart, resume, api, command or client.
    trigger: str
    started_at: str
    finished_at: str
    runs: int
    files_total: int
    files_new: int
    files_changed: int
    files_removed: int
    files_failed: int
    files_unsettled: int
    warnings: list[str]
    collections: list[ScanCollectionOut]
    # True when the scan stopped at its reconcile deadline; its counts are then zero.
    timed_out: bool = False
    # What the client reported, for trigger `client`.
    ingestion: ClientIngestionOut | None = None


class ScanPage(msgspec.Struct, kw_only=True):
    total: int
    limit: int
    offset: int
    scans: list[ScanReportOut]


class ScanTriggerOut(msgspec.Struct, kw_only=True):
    """The result of a scan that a client asked for."""

    project_id: str
    runs: int
    files: int
    rows: int
    files_failed: int
    files_unsettled: int
    seconds: float
    warnings: list[str]


# The state of one data collection in an ingestion report:
# - not_scanned: no scan of its workflow is recorded yet.
# - not_built: depictiod does not build the collection (source transformed, source joined without a join of
#   the project, or outside every workflow).
# - found_zero: the latest scan matched no file. `warning` names the locations, the pattern and what was there.
# - waiting: every matching file was still being written; a later scan reads them.
# - failed: files were found but none could be ingested.
# - partial: the table was built, but some files failed.
# - pending: files are registered but no table is built yet.
# - updated: the latest scan added, changed or removed files, and none failed.
# - unchanged: the latest scan found only files that were registered already, and none failed.
# - joined: the table of a persisted join is built; `warning` contains its fan-out warning, if any.
#   A join that failed is `failed`, and one that waits for a side's table is `pending`, with the reason.
CollectionStatus = Literal[
    "not_scanned",
    "not_built",
    "found_zero",
    "waiting",
    "failed",
    "partial",
    "pending",
    "updated",
    "unchanged",
    "joined",
]


class IngestionFailureOut(msgspec.Struct, kw_only=True):
    """One file that could not be ingested, with the reason and, for text formats, the line."""

    file: str
    run_tag: str
    reason: str
    line: int | None


class IngestionCollectionOut(msgspec.Struct, kw_only=True):
    """The latest scan's counts for one data collection, its failed files and the state of its table."""

    data_collection_id: str
    data_collection_tag: str
    type: str
    workflow_id: str | None
    optional: bool
    status: CollectionStatus
    warning: str | None
    files_found: int
    files_new: int
    files_changed: int
    files_removed: int
    files_failed: int
    files_unsettled: int
    # At most 100 failed files; `files_failed` counts them all.
    failures: list[IngestionFailureOut]
    # True when the collection has an aggregated table.
    ingested: bool
    table_location: str | None
    rows: int | None
    table_version: int | None
    drift: list[DriftOut]


class IngestionRunOut(msgspec.Struct, kw_only=True):
    """One registered run: `status` is ok, failed (a file failed) or empty (no file matched)."""

    run_tag: str
    run_location: str
    workflow_id: str
    scan_time: str | None
    status: str
    files_total: int
    files_failed: int


class IngestionSummaryOut(msgspec.Struct, kw_only=True):
    """Counts over the project's collections; every collection that is not `optional` is required.

    `health` is error when a collection failed, warning when a required collection matched
    nothing, is partial, pending, waiting or not scanned yet, and ok otherwise.
    """

    required_total: int
    required_identified: int
    required_missing: int
    optional_total: int
    optional_identified: int
    optional_missing: int
    # Depictio counts collections left out by a template's conditions; depictiod has none.
    gated: int = 0
    health: str
    runs: int
    files: int
    files_failed: int
    # Rows of the collections' tables, without the tables of joins, whose rows repeat the others'.
    rows: int


class IngestionReportProjectOut(msgspec.Struct, kw_only=True):
    id: str
    name: str
    project_type: str


class IngestionReportOut(msgspec.Struct, kw_only=True):
    """The latest ingestion state of a project, in the layout of Depictio's IngestionReport."""

    project: IngestionReportProjectOut
    # The trigger of the newest scan: startup, schedule, event, api or command, or client
    # when a client ingestion finished after it.
    triggered_by: str | None
    data_collections: list[IngestionCollectionOut]
    runs: list[IngestionRunOut]
    summary: IngestionSummaryOut
    # When the newest scan of the project's workflows finished.
    scanned_at: str | None
    # The newest client ingestions of the project (at most 10), newest first.
    client_ingestions: list[ClientIngestionOut] = msgspec.field(default_factory=list)
