"""Request and response bodies of the routes that clients use to register projects, runs and files.

Field names follow Depictio's v1 models (WorkflowRun, File and their batch requests), so
the Depictio CLI's payloads decode unchanged. An unknown field is rejected with its name.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from config.ids import OBJECT_ID

# The maximum number of records one request may register or delete; the Depictio CLI sends 1,000 at a time.
MAX_BATCH = 5000

ObjectId = Annotated[str, msgspec.Meta(pattern=OBJECT_ID.pattern, description="24 hexadecimal characters")]
# Depictio's time format, YYYY-MM-DD HH:MM:SS; ISO 8601 with a T is accepted too.
Time = Annotated[str, msgspec.Meta(max_length=40)]
Text = Annotated[str, msgspec.Meta(max_length=4096)]


class RunIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One run as a client registers it (Depictio's WorkflowRun)."""

    workflow_id: ObjectId
    run_tag: Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
    run_location: Text
    creation_time: Time
    last_modification_time: Time
    id: ObjectId | None = None
    workflow_config_id: str | None = None
    files_id: list[str] = msgspec.field(default_factory=list)
    registration_time: Time | None = None
    run_hash: Annotated[str, msgspec.Meta(max_length=256)] = ""
    scan_results: Annotated[list[dict[str, Any]], msgspec.Meta(max_length=100)] = msgspec.field(default_factory=list)
    permissions: dict[str, Any] | None = None
    description: Text | None = None
    flexible_metadata: dict[str, Any] | None = None
    hash: str | None = None


class RunBatchIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The body of `POST /runs/upsert_batch`: runs of one workflow."""

    runs: Annotated[list[RunIn], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]
    update: bool = False


class FileIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One file as a client registers it (Depictio's File)."""

    file_location: Text
    filename: Annotated[str, msgspec.Meta(max_length=1024)]
    creation_time: Time
    modification_time: Time
    data_collection_id: ObjectId
    file_hash: Annotated[str, msgspec.Meta(max_length=256)]
    filesize: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
    id: ObjectId | None = None
    run_id: ObjectId | None = None
    run_tag: Annotated[str, msgspec.Meta(max_length=512)] | None = None
    registration_time: Time | None = None
    permissions: dict[str, Any] | None = None
    manifest_id: str | None = None
    sample: str | None = None
    s3_key: str | None = None
    index_s3_key: str | None = None
    index_filesize: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] | None = None
    description: Text | None = None
    flexible_metadata: dict[str, Any] | None = None
    hash: str | None = None


class FileBatchIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The body of `POST /files/upsert_batch`."""

    files: Annotated[list[FileIn], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]
    update: bool = False


class RunIdsIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    run_ids: Annotated[list[str], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class FileIdsIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    file_ids: Annotated[list[str], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class UpsertOut(msgspec.Struct, kw_only=True):
    """Counts of an upsert, in Depictio's words: records inserted, updated, and already there."""

    success: bool
    message: str
    inserted_count: int
    updated_count: int
    existing_count: int


class DeleteBatchOut(msgspec.Struct, kw_only=True):
    requested: int
    deleted: int
    not_found: int


class DeletedOut(msgspec.Struct, kw_only=True):
    message: str


class ProjectActionOut(msgspec.Struct, kw_only=True):
    """The response to a project create, update or delete: Depictio clients read `success`."""

    success: bool
    message: str
    project_id: str
