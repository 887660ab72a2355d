"""Request and response bodies of `/monitoring/ingestion`: ingestions that a client reports.

Field names follow Depictio 1.19.2's monitoring models (IngestionStep,
IngestionDataCollection, IngestionProgress), which reject unknown fields as these Structs
do. Lists, maps and names have a maximum size, so one client cannot grow the catalog
without limit. Free text (`detail`, `error`, `command_line`) is cut to MAX_TEXT_CHARS when
stored instead of being rejected, because a long error message must not cost the client
its whole step.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

# Characters of free text kept per field. The rest is replaced by TRUNCATION_MARK.
MAX_TEXT_CHARS = 4000
TRUNCATION_MARK = " [truncated]"
# Distinct step names per ingestion. A step sent again under its name replaces the old one.
MAX_STEPS = 100
MAX_DATA_COLLECTIONS = 500

ObjectId = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-fA-F]{24}$", description="24 hexadecimal characters")]
# An ingestion id that the client chose: letters, digits, '_', '-' and '.', as in a UUID.
IngestionId = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Za-z][0-9A-Za-z_.-]{0,63}$")]
Name = Annotated[str, msgspec.Meta(max_length=200)]
Path = Annotated[str, msgspec.Meta(max_length=4096)]
Counters = Annotated[dict[Name, int], msgspec.Meta(max_length=50)]


class IngestionStartIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The body of `POST /monitoring/ingestion/start`.

    `project_id` may name a project that does not exist yet: a first `depictio ingest`
    opens its record before it creates the project.
    """

    run_id: IngestionId | None = None
    command: Name = "run"
    project_id: ObjectId | None = None
    project_name: Name | None = None
    cli_version: Name | None = None
    command_line: str | None = None
    cli_config_path: Path | None = None
    project_config_path: Path | None = None
    data_root: Path | None = None
    # manual (a person ran the command), watch, schedule or ui; None means manual.
    trigger: Name | None = None
    trigger_reason: str | None = None


class IngestionStep(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One step of a client ingestion (sync, scan, process, ...), stored and returned as sent."""

    name: Name
    status: Name = "running"
    detail: str | None = None
    # Scan outcomes by data collection id: None for a scan that succeeded, else its error.
    scans: Annotated[dict[Name, str | None], msgspec.Meta(max_length=MAX_DATA_COLLECTIONS)] | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: float | None = None
    index: int | None = None
    total: int | None = None
    # Fraction done, 0 to 1, when the client knows the total.
    progress: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    counters: Counters = msgspec.field(default_factory=dict)
    data_collection_tag: Name | None = None
    job_id: Name | None = None
    error: str | None = None


class IngestionProgress(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    percent: Annotated[float, msgspec.Meta(ge=0.0, le=100.0)] | None = None
    steps_done: int | None = None
    steps_total: int | None = None
    dcs_done: int | None = None
    dcs_total: int | None = None
    files_done: int | None = None
    files_total: int | None = None


class IngestionStepIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The body of `POST /monitoring/ingestion/{run_id}/step`."""

    step: IngestionStep
    # The step running now; None once the step has a final status.
    current_step: Name | None = None
    counters: Counters | None = None
    progress: IngestionProgress | None = None


class IngestionError(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    stage: Name
    kind: Name
    message: str
    dc_tag: Name | None = None
    file_path: Path | None = None


class IngestionDataCollection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The outcome of a client ingestion for one data collection: the locations it scanned and what it found."""

    tag: Name
    type: Name | None = None
    format: Name | None = None
    scan_mode: Name | None = None
    scan_pattern: Path | None = None
    locations: Annotated[list[Path], msgspec.Meta(max_length=100)] = msgspec.field(default_factory=list)
    file_count: int | None = None
    status: Name | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: float | None = None
    files_matched: int | None = None
    files_new: int | None = None
    files_changed: int | None = None
    files_updated: int | None = None
    files_skipped: int | None = None
    files_deleted: int | None = None
    files_failed: int | None = None
    rows_written: int | None = None
    delta_version: int | None = None
    write_mode: Name | None = None
    dirs_walked: int | None = None
    files_seen: int | None = None
    regex_rejected: int | None = None
    skip_reasons: Counters = msgspec.field(default_factory=dict)
    sample_rejected: Annotated[list[Path], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)
    errors: Annotated[list[IngestionError], msgspec.Meta(max_length=100)] = msgspec.field(default_factory=list)


class IngestionFinishIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The body of `POST /monitoring/ingestion/{run_id}/finish`: the outcome and every step."""

    # running, success, partial, failed or interrupted.
    status: Name = "success"
    steps: Annotated[list[IngestionStep], msgspec.Meta(max_length=MAX_STEPS)] = msgspec.field(default_factory=list)
    error: str | None = None
    # The project's id, which the client often learns only after it created the project.
    project_id: ObjectId | None = None
    data_collections: Annotated[list[IngestionDataCollection], msgspec.Meta(max_length=MAX_DATA_COLLECTIONS)] = (
        msgspec.field(default_factory=list)
    )


class IngestionStartOut(msgspec.Struct, kw_only=True):
    run_id: str


class IngestionStepOut(msgspec.Struct, kw_only=True):
    run_id: str
    step: str


class IngestionFinishOut(msgspec.Struct, kw_only=True):
    run_id: str
    status: str


class ClientIngestionOut(msgspec.Struct, kw_only=True):
    """A client ingestion as `GET /scans` and the ingestion report show it."""

    run_id: str
    # The user who started it; only they and administrators may add steps or finish it.
    user_id: str
    # running, success, partial, failed, interrupted, or abandoned: still running without
    # an update for STALE_AFTER_HOURS (see api.monitoring).
    status: str
    command: str
    project_name: str | None
    cli_version: str | None
    cli_host: str | None
    command_line: str | None
    cli_config_path: str | None
    project_config_path: str | None
    data_root: str | None
    # The client's trigger: manual, watch, schedule or ui.
    trigger: str
    trigger_reason: str | None
    started_at: str
    updated_at: str
    # None while it runs.
    finished_at: str | None
    current_step: str | None
    steps: list[IngestionStep]
    counters: dict[str, int]
    progress: IngestionProgress | None
    error: str | None
    data_collections: list[IngestionDataCollection]
