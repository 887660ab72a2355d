"""The ingestion report of a project, built from the catalog.

Scan counts come from the newest scan report of each workflow. Failures come from the
files as the catalog stores them now, and rows, version and drift from the aggregated table.
"""

from __future__ import annotations

from typing import Any

from api.access import format_time
from api.monitoring import ingestion_out, stored_ingestion
from api.schemas import (
    CollectionStatus,
    DriftOut,
    IngestionCollectionOut,
    IngestionFailureOut,
    IngestionReportOut,
    IngestionReportProjectOut,
    IngestionRunOut,
    IngestionSummaryOut,
)
from catalog import Catalog, ProjectRecord, ScanReport, TableRecord, join_plans, utc_now
from config import DataCollection
from ingestor import TABLE_TYPES

# A collection lists this many failed files at most, so a broken run of thousands of files
# keeps the report small; `files_failed` counts them all.
MAX_FAILURES_LISTED = 100

# Client ingestions listed in a report, newest first.
CLIENT_INGESTIONS_LISTED = 10

# Statuses that make a required collection a warning in the summary's `health`.
_WARNING_STATUSES = ("found_zero", "waiting", "partial", "pending", "not_scanned")


def build_ingestion_report(catalog: Catalog, record: ProjectRecord) -> IngestionReportOut:
    """Return the project's latest ingestion state: each collection, each run and the totals."""
    project = record.project
    latest = {report.workflow_id: report for report in catalog.scans.latest(record.id)}
    collections: list[IngestionCollectionOut] = []
    runs: list[IngestionRunOut] = []
    joins = {plan.join_id for plan in join_plans(project)}
    for workflow in project.workflows:
        assert workflow.id is not None
        report = latest.get(workflow.id)
        for item in workflow.data_collections:
            if item.id in joins:
                collections.append(_joined_out(catalog, item, workflow.id))
                continue
            collections.append(_collection_out(catalog, item, workflow.id, report))
        runs += _runs_out(catalog, workflow.id, report)
    # Collections outside every workflow are not scanned by depictiod; joins are built all the same.
    for item in project.data_collections:
        if item.id in joins:
            collections.append(_joined_out(catalog, item, None))
            continue
        collections.append(_collection_out(catalog, item, None, None))

    newest = max(latest.values(), key=lambda report: report.finished_at, default=None)
    triggered_by = str(newest.details.get("trigger", "schedule")) if newest is not None else None
    client_reports = catalog.scans.latest_client(record.id, CLIENT_INGESTIONS_LISTED)
    client_finished = [stored_ingestion(report).finished_at for report in client_reports]
    last_client = max((time for time in client_finished if time is not None), default=None)
    if last_client is not None and (newest is None or last_client > newest.finished_at):
        triggered_by = "client"
    now = utc_now()
    client_ingestions = [ingestion_out(report, now) for report in client_reports]
    return IngestionReportOut(
        project=IngestionReportProjectOut(id=record.id, name=record.name, project_type=project.project_type),
        triggered_by=triggered_by,
        data_collections=collections,
        runs=runs,
        summary=_summary(collections, runs, joins),
        scanned_at=format_time(newest.finished_at) if newest is not None else None,
        client_ingestions=client_ingestions,
    )


def _collection_out(
    catalog: Catalog, collection: DataCollection, workflow_id: str | None, report: ScanReport | None
) -> IngestionCollectionOut:
    assert collection.id is not None
    scanned = _scanned(report, collection.id)
    counts = catalog.files.status_counts(collection.id)
    failed = counts.get("failed", 0)
    failures = catalog.files.list_failed(collection.id, MAX_FAILURES_LISTED) if failed else []
    table = catalog.tables.get(collection.id)
    status = _status(collection, workflow_id, scanned, counts, table)

    warning = scanned.get("warning") if scanned is not None else None
    if status == "not_built":
        warning = _not_built_reason(collection, workflow_id)
    return IngestionCollectionOut(
        data_collection_id=collection.id,
        data_collection_tag=collection.data_collection_tag,
        type=collection.config.type,
        workflow_id=workflow_id,
        optional=collection.optional,
        status=status,
        warning=str(warning) if warning is not None else None,
        files_found=_count(scanned, "files"),
        files_new=_count(scanned, "files_new"),
        files_changed=_count(scanned, "files_changed"),
        files_removed=_count(scanned, "files_removed"),
        files_failed=failed,
        files_unsettled=_count(scanned, "unsettled"),
        failures=[
            IngestionFailureOut(
                file=record.file_location,
                run_tag=record.run_tag,
                reason=record.error or "no reason was recorded",
                line=record.error_line,
            )
            for record in failures
        ],
        ingested=table is not None,
        table_location=table.table_name if table is not None else None,
        rows=table.row_count if table is not None else None,
        table_version=table.aggregation_version if table is not None else None,
        drift=[
            DriftOut(file_id=note.file_id, column=note.column, file_type=note.file_type, table_type=note.table_type)
            for note in (table.drift if table is not None else [])
        ],
    )


def _joined_out(catalog: Catalog, collection: DataCollection, workflow_id: str | None) -> IngestionCollectionOut:
    """Return the state of a persisted join's collection: its table, and the outcome of the join's last run."""
    assert collection.id is not None
    table = catalog.tables.get(collection.id)
    status = catalog.joins.status(collection.id)
    state: CollectionStatus = "pending"
    warning: str | None = "the join has not run yet: it runs after the next scan of its sides' workflows"
    if status is not None and status.outcome == "error":
        state, warning = "failed", status.message
    elif status is not None and status.outcome in ("skipped", "dropped"):
        warning = status.message
    elif table is not None:
        state, warning = "joined", status.warning if status is not None else None
    return IngestionCollectionOut(
        data_collection_id=collection.id,
        data_collection_tag=collection.data_collection_tag,
        type=collection.config.type,
        workflow_id=workflow_id,
        optional=collection.optional,
        status=state,
        warning=warning,
        files_found=0,
        files_new=0,
        files_changed=0,
        files_removed=0,
        files_failed=0,
        files_unsettled=0,
        failures=[],
        ingested=table is not None,
        table_location=table.table_name if table is not None else None,
        rows=table.row_count if table is not None else None,
        table_version=table.aggregation_version if table is not None else None,
        drift=[],
    )


def _scanned(report: ScanReport | None, collection_id: str) -> dict[str, Any] | None:
    """Return the collection's entry in the scan report, or None when the scan did not cover it."""
    if report is None:
        return None
    for item in report.details.get("collections", []):
        if item.get("collection_id") == collection_id:
            return dict(item)
    return None


def _count(scanned: dict[str, Any] | None, key: str) -> int:
    # Reports written before a count existed lack its key.
    return int(scanned.get(key, 0)) if scanned is not None else 0


def _status(
    collection: DataCollection,
    workflow_id: str | None,
    scanned: dict[str, Any] | None,
    counts: dict[str, int],
    table: TableRecord | None,
) -> CollectionStatus:
    """Decide the collection's status; see `CollectionStatus` for what each one means."""
    if workflow_id is None or collection.config.source != "native":
        return "not_built"
    if scanned is None:
        return "not_scanned"

    # Nothing recognised: the scan matched no file at all, which is not "nothing new".
    if _count(scanned, "files") == 0:
        return "waiting" if _count(scanned, "unsettled") else "found_zero"

    builds_table = collection.config.type in TABLE_TYPES
    failed = counts.get("failed", 0)
    if failed:
        if (builds_table and table is None) or failed == sum(counts.values()):
            return "failed"
        return "partial"

    # The aggregation follows the scan, so a table can be missing for a moment. When it stays
    # missing, the aggregation raised an error, and the service log has it.
    if builds_table and table is None:
        return "pending"

    changes = _count(scanned, "files_new") + _count(scanned, "files_changed") + _count(scanned, "files_removed")
    return "updated" if changes else "unchanged"


def _not_built_reason(collection: DataCollection, workflow_id: str | None) -> str:
    if workflow_id is None:
        return "the collection belongs to no workflow, and depictiod scans only the collections of workflows"
    return f"source {collection.config.source!r} collections are not built by depictiod yet"


def _runs_out(catalog: Catalog, workflow_id: str, report: ScanReport | None) -> list[IngestionRunOut]:
    counts = catalog.files.counts_by_run(workflow_id)
    scan_time = format_time(report.finished_at) if report is not None else None
    runs = []
    for run in catalog.runs.list_for_workflow(workflow_id):
        total, failed = counts.get(run.id, (0, 0))
        if failed:
            status = "failed"
        else:
            status = "ok" if total else "empty"
        runs.append(
            IngestionRunOut(
                run_tag=run.run_tag,
                run_location=run.run_location,
                workflow_id=workflow_id,
                scan_time=scan_time,
                status=status,
                files_total=total,
                files_failed=failed,
            )
        )
    return runs


def _summary(
    collections: list[IngestionCollectionOut], runs: list[IngestionRunOut], joins: set[str]
) -> IngestionSummaryOut:
    """Count the collections; `rows` leaves out the tables of `joins`, whose rows come from the other tables."""
    required = [item for item in collections if not item.optional]
    optional = [item for item in collections if item.optional]
    # An optional collection that fails or matches nothing does not lower the health: Depictio's
    # CLI does not count a failed optional collection as a failure either.
    if any(item.status == "failed" for item in required):
        health = "error"
    elif any(item.status in _WARNING_STATUSES for item in required):
        health = "warning"
    else:
        health = "ok"
    return IngestionSummaryOut(
        required_total=len(required),
        required_identified=sum(1 for item in required if item.files_found > 0),
        required_missing=sum(1 for item in required if item.status == "found_zero"),
        optional_total=len(optional),
        optional_identified=sum(1 for item in optional if item.files_found > 0),
        optional_missing=sum(1 for item in optional if item.status == "found_zero"),
        health=health,
        runs=len(runs),
        files=sum(item.files_found for item in collections),
        files_failed=sum(item.files_failed for item in collections),
        rows=sum(item.rows or 0 for item in collections if item.data_collection_id not in joins),
    )
