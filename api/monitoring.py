"""Client ingestions: what a client such as `depictio ingest` reports, kept as scan reports.

A client ingestion is a scan report whose `details.trigger` is `client`. It covers a whole
project, so its `workflow_id` is None, and its `project_id` stays None until the project
exists and its starter may write it (see api.controllers.monitoring). The client's own
fields live in `details.ingestion`. `finished_at` of the report is the time of the last
update while the ingestion runs, so lists ordered by it show active ingestions first.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec
from litestar.exceptions import ClientException

from api.access import format_time
from api.monitoring_schemas import (
    MAX_STEPS,
    MAX_TEXT_CHARS,
    TRUNCATION_MARK,
    ClientIngestionOut,
    IngestionDataCollection,
    IngestionFinishIn,
    IngestionProgress,
    IngestionStartIn,
    IngestionStep,
    IngestionStepIn,
)
from catalog import ScanReport

CLIENT_TRIGGER = "client"
# Maximum encoded size of one ingestion's details. A step or finish that would pass it gets 400.
MAX_INGESTION_BYTES = 1024 * 1024
# A running ingestion without an update for this long is shown as abandoned: its client
# was killed or lost its connection. A late update or finish still applies.
STALE_AFTER_HOURS = 24

# Counts of a report, and the keys of the collection summaries and client counters they sum.
_COUNT_KEYS = {
    "files_total": ("files_matched", "files_scanned"),
    "files_new": ("files_new", "files_new"),
    "files_changed": ("files_changed", "files_changed"),
    "files_removed": ("files_deleted", "files_deleted"),
    "files_failed": ("files_failed", "files_failed"),
}


class StoredIngestion(msgspec.Struct, kw_only=True):
    """`details.ingestion` of a client ingestion's scan report."""

    user_id: str
    status: str
    command: str
    project_name: str | None
    # The project id that the start request named, until that project exists.
    requested_project_id: str | None
    cli_version: str | None
    cli_host: str | None
    command_line: str | None
    cli_config_path: str | None
    project_config_path: str | None
    data_root: str | None
    trigger: str
    trigger_reason: str | None
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    current_step: str | None = None
    steps: list[IngestionStep] = msgspec.field(default_factory=list)
    counters: dict[str, int] = msgspec.field(default_factory=dict)
    progress: IngestionProgress | None = None
    error: str | None = None
    data_collections: list[IngestionDataCollection] = msgspec.field(default_factory=list)


def is_client_ingestion(report: ScanReport) -> bool:
    return report.details.get("trigger") == CLIENT_TRIGGER


def cut(text: str | None) -> str | None:
    """Return free text cut to MAX_TEXT_CHARS, marked when something was cut."""
    if text is None or len(text) <= MAX_TEXT_CHARS:
        return text
    return text[: MAX_TEXT_CHARS - len(TRUNCATION_MARK)] + TRUNCATION_MARK


def new_ingestion(
    run_id: str, user_id: str, body: IngestionStartIn, project_id: str | None, cli_host: str | None, now: datetime
) -> ScanReport:
    """Return the scan report that opens a client ingestion."""
    stored = StoredIngestion(
        user_id=user_id,
        status="running",
        command=body.command,
        project_name=body.project_name,
        requested_project_id=body.project_id if project_id is None else None,
        cli_version=body.cli_version,
        cli_host=cli_host[:200] if cli_host else None,
        command_line=cut(body.command_line),
        cli_config_path=body.cli_config_path,
        project_config_path=body.project_config_path,
        data_root=body.data_root,
        trigger=body.trigger or "manual",
        trigger_reason=cut(body.trigger_reason),
        started_at=now,
        updated_at=now,
    )
    return _report(run_id, project_id, now, stored)


def stored_ingestion(report: ScanReport) -> StoredIngestion:
    return msgspec.convert(report.details["ingestion"], StoredIngestion)


def with_step(report: ScanReport, body: IngestionStepIn, project_id: str | None, now: datetime) -> ScanReport:
    """Return the report with the step added, or replacing the step of the same name.

    Raises ClientException (400) when the ingestion has MAX_STEPS steps already.
    """
    stored = stored_ingestion(report)
    step = _cut_step(body.step)
    steps = list(stored.steps)
    names = [existing.name for existing in steps]
    if step.name in names:
        steps[names.index(step.name)] = step
    elif len(steps) >= MAX_STEPS:
        raise ClientException(
            f"step: ingestion {report.id!r} has {MAX_STEPS} steps already, the maximum; "
            f"send step {step.name!r} under the name of an existing step or finish the ingestion"
        )
    else:
        steps.append(step)

    changed = msgspec.structs.replace(
        stored,
        steps=steps,
        current_step=body.current_step,
        counters=body.counters if body.counters is not None else stored.counters,
        progress=body.progress if body.progress is not None else stored.progress,
        updated_at=now,
    )
    return _report(report.id, project_id, report.started_at, changed)


def finished(report: ScanReport, body: IngestionFinishIn, project_id: str | None, now: datetime) -> ScanReport:
    """Return the report closed with the client's final status, steps and collection summaries.

    A finish without steps keeps the steps sent one by one.
    """
    stored = stored_ingestion(report)
    data_collections = [_cut_collection(item) for item in body.data_collections]
    changed = msgspec.structs.replace(
        stored,
        status=body.status,
        steps=[_cut_step(step) for step in body.steps] if body.steps else stored.steps,
        error=cut(body.error),
        data_collections=data_collections or stored.data_collections,
        current_step=None,
        updated_at=now,
        finished_at=now,
    )
    return _report(report.id, project_id, report.started_at, changed)


def ingestion_out(report: ScanReport, now: datetime) -> ClientIngestionOut:
    """Return a client ingestion for a response; one stale while running shows as abandoned."""
    stored = stored_ingestion(report)
    status = stored.status
    if status == "running" and now - stored.updated_at > timedelta(hours=STALE_AFTER_HOURS):
        status = "abandoned"
    return ClientIngestionOut(
        run_id=report.id,
        user_id=stored.user_id,
        status=status,
        command=stored.command,
        project_name=stored.project_name,
        cli_version=stored.cli_version,
        cli_host=stored.cli_host,
        command_line=stored.command_line,
        cli_config_path=stored.cli_config_path,
        project_config_path=stored.project_config_path,
        data_root=stored.data_root,
        trigger=stored.trigger,
        trigger_reason=stored.trigger_reason,
        started_at=format_time(stored.started_at) or "",
        updated_at=format_time(stored.updated_at) or "",
        finished_at=format_time(stored.finished_at),
        current_step=stored.current_step,
        steps=stored.steps,
        counters=stored.counters,
        progress=stored.progress,
        error=stored.error,
        data_collections=stored.data_collections,
    )


def _report(run_id: str, project_id: str | None, started_at: datetime, stored: StoredIngestion) -> ScanReport:
    """Build the scan report of an ingestion; raise ClientException when it is too large to keep."""
    details: dict[str, Any] = {
        "trigger": CLIENT_TRIGGER,
        "warnings": [],
        "collections": [],
        "ingestion": msgspec.to_builtins(stored),
    }
    size = len(msgspec.json.encode(details))
    if size > MAX_INGESTION_BYTES:
        raise ClientException(
            f"ingestion {run_id!r} would take {size} bytes, more than the maximum of {MAX_INGESTION_BYTES}; "
            "send shorter steps and collection summaries"
        )
    return ScanReport(
        id=run_id,
        project_id=project_id,
        workflow_id=None,
        started_at=started_at,
        finished_at=stored.updated_at,
        runs=0,
        details=details,
        **_counts(stored),
    )


def _counts(stored: StoredIngestion) -> dict[str, int]:
    """Sum the file counts of the collection summaries, or take the client's own counters without them."""
    counts = {}
    for name, (collection_key, counter_key) in _COUNT_KEYS.items():
        values = [getattr(item, collection_key) for item in stored.data_collections]
        known = [value for value in values if value is not None]
        counts[name] = sum(known) if known else stored.counters.get(counter_key, 0)
    return counts


def _cut_step(step: IngestionStep) -> IngestionStep:
    return msgspec.structs.replace(step, detail=cut(step.detail), error=cut(step.error))


def _cut_collection(item: IngestionDataCollection) -> IngestionDataCollection:
    errors = [msgspec.structs.replace(error, message=cut(error.message) or "") for error in item.errors]
    return msgspec.structs.replace(item, errors=errors)
