"""Request and response bodies of `POST /deltatables/upsert` and `DELETE /deltatables/delete/{id}`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from api.monitoring_schemas import Name, ObjectId, Path

# A count stored in a BIGINT column.
Count = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class UpsertDeltaTableIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A table that a client wrote elsewhere, with Depictio 1.19.2's UpsertDeltaTableAggregated fields.

    With `update` false, only the first report of the collection is recorded.
    `async_mode` is accepted and ignored: depictiod records the report at once.
    """

    data_collection_id: ObjectId
    delta_table_location: Path
    update: bool = False
    deltatable_size_bytes: Count | None = None
    delta_version: Count | None = None
    delta_commit_timestamp: datetime | None = None
    write_mode: Name | None = None
    rows_total: Count | None = None
    rows_added: Count | None = None
    files_added: Count | None = None
    run_tags: Annotated[list[Name], msgspec.Meta(max_length=100_000)] = msgspec.field(default_factory=list)
    ingestion_run_id: Name | None = None
    trigger: Name | None = None
    async_mode: bool = False


class UpsertDeltaTableOut(msgspec.Struct, kw_only=True):
    """The response to an upsert, as Depictio sends it: the client reads `result`. depictiod sends no `job_id`."""

    result: str
    message: str


class DeleteDeltaTableOut(msgspec.Struct, kw_only=True):
    message: str
    # True when depictiod's own aggregated table of the collection was dropped.
    table_dropped: bool
    external_reports_deleted: int
    # True when a scan of the collection's workflow was requested to rebuild the table.
    rescan_requested: bool


class ExternalTableOut(msgspec.Struct, kw_only=True):
    """The newest report of a table that a client wrote outside depictiod."""

    location: str
    size_bytes: int | None
    delta_version: int | None
    delta_commit_timestamp: str | None
    write_mode: str | None
    rows_total: int | None
    rows_added: int | None
    run_tags: list[str]
    ingestion_run_id: str | None
    trigger: str | None
    recorded_by: str
    recorded_at: str
