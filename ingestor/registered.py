"""Check the files that clients registered against the disk, for projects sent over the API.

A project sent over the API is fed by its clients: its runs and files are the ones they
register. depictiod reads each registered file from its location. Each check records what
changed since the last one. A file rewritten is read again. A file that vanished is marked
failed, and its rows leave the table until it returns. A file outside the workflow's
locations is never read.
"""

from __future__ import annotations

import os
import stat
import time

import msgspec

from catalog import Catalog, FileRecord, ScanReport, SyncCounts, os_error_reason, utc_now
from config import Project, Workflow, derive_id
from ingestor.discover import timestamp
from ingestor.hashing import content_hash
from ingestor.scan import CollectionScan, WorkflowScan, collection_status, under_any


def check_registered_files(
    catalog: Catalog,
    project: Project,
    workflow: Workflow,
    settle_seconds: float = 0.0,
    trigger: str = "schedule",
    link_roots: list[str] | None = None,
    client_roots: list[str] | None = None,
) -> WorkflowScan:
    """Compare each registered file of `workflow` with the disk and record what changed.

    With `client_roots`, only the parts of the workflow's locations that resolve to a
    folder under one of them are read.
    """
    assert project.id is not None and workflow.id is not None
    started = time.monotonic()
    started_at = utc_now()
    warnings: list[str] = []
    roots, outside = registered_file_roots(workflow, link_roots, client_roots)
    for root in outside:
        warnings.append(
            f"location {root!r} is outside ingest.client_roots, and the user who set it is not an "
            "administrator; its files are not read"
        )
    # Uploaded files live in the service's own folder, outside the locations, and never change.
    records = [record for record in catalog.files.list_for_workflow(workflow.id) if record.origin != "upload"]
    changed: list[FileRecord] = []
    unsettled: dict[str, int] = {}
    failures: dict[str, int] = {}
    summaries = {
        str(dc.id): CollectionScan(collection_id=str(dc.id), tag=dc.data_collection_tag)
        for dc in workflow.data_collections
    }
    for record in records:
        summary = summaries.get(record.data_collection_id)
        observation = _observe(record, roots, settle_seconds)
        if observation is None:
            unsettled[record.data_collection_id] = unsettled.get(record.data_collection_id, 0) + 1
            continue
        observed, reason = observation
        if summary is not None:
            summary.files += 1
            summary.empty_files += int(observed.filesize == 0)
        if observed != record:
            changed.append(observed)
            if summary is not None:
                summary.files_changed += 1
            if observed.status == "failed" and observed.error != record.error:
                warnings.append(f"file {record.file_location!r}: {observed.error}")
                failures[reason or "io"] = failures.get(reason or "io", 0) + 1
    catalog.files.record_observations(changed)

    for summary in summaries.values():
        summary.unsettled = unsettled.get(summary.collection_id, 0)
        summary.status = collection_status(summary.files, summary.unsettled)
    collections = list(summaries.values())
    runs = len(catalog.runs.list_for_workflow(workflow.id))
    counts = SyncCounts(files_changed=len(changed))
    report = ScanReport(
        id=derive_id("scan", workflow.id, started_at.isoformat()),
        project_id=project.id,
        workflow_id=workflow.id,
        started_at=started_at,
        finished_at=utc_now(),
        runs=runs,
        files_total=len(records) - sum(unsettled.values()),
        files_new=0,
        files_changed=len(changed),
        files_removed=0,
        files_failed=sum(1 for record in records if record.status == "failed"),
        details={
            "trigger": trigger,
            "registered_by": "client",
            "warnings": warnings,
            "unsettled": sum(unsettled.values()),
            "collections": [msgspec.to_builtins(summary) for summary in collections],
        },
    )
    catalog.scans.add(report)
    return WorkflowScan(
        report_id=report.id,
        project_id=project.id,
        workflow_id=workflow.id,
        workflow_name=workflow.name,
        runs=runs,
        collections=collections,
        counts=counts,
        warnings=warnings,
        seconds=time.monotonic() - started,
        unsettled=sum(unsettled.values()),
        failures=failures,
    )


def registered_file_roots(
    workflow: Workflow, link_roots: list[str] | None, client_roots: list[str] | None
) -> tuple[list[str], list[str]]:
    """Return (roots, outside): the folders a registered file may resolve into, and the locations left out.

    With `client_roots`, a location that does not resolve to a folder under one of them is
    left out. The folders of `link_roots` always count.
    """
    roots = [os.path.realpath(folder) for folder in workflow.data_location.locations]
    outside: list[str] = []
    if client_roots is not None:
        allowed = [os.path.realpath(folder) for folder in client_roots]
        outside = [root for root in roots if not under_any(root, allowed)]
        roots = [root for root in roots if root not in outside]
    roots += [os.path.realpath(folder) for folder in link_roots or []]
    return roots, outside


def _observe(record: FileRecord, roots: list[str], settle_seconds: float) -> tuple[FileRecord, str | None] | None:
    """Return the record as the disk shows it now, or None when the file was modified within the settle window.

    The second item is the reason class (see catalog.failures) when the disk shows a failure.
    """
    path = record.file_location
    real_path = os.path.realpath(path)
    link_target = real_path if real_path != os.path.normpath(path) else None

    if not under_any(real_path, roots):
        return _failed(
            record,
            f"the file resolves to {real_path!r}, outside the workflow's locations; depictiod reads only files "
            "under them (add the folder to ingest.link_roots to allow it)",
            link_target,
        ), "link"
    try:
        info = os.stat(real_path)
    except OSError as error:
        return _failed(
            record,
            f"the file cannot be read at its registered location ({error.strerror}); its rows leave the table "
            "until it returns or a client deletes it",
            link_target,
        ), os_error_reason(error)
    if not stat.S_ISREG(info.st_mode):
        return _failed(record, "the registered location is not a regular file", link_target), "io"

    if time.time() - info.st_mtime < settle_seconds:
        return None
    if record.content_hash and (record.filesize, record.mtime_ns) == (info.st_size, info.st_mtime_ns):
        return record, None  # Same size and nanosecond mtime: trust the stored hash and outcome.
    if info.st_size == 0:
        return _failed(record, "the file is empty (0 bytes)", link_target, mtime_ns=info.st_mtime_ns), "empty"

    try:
        digest = content_hash(real_path)
    except OSError as error:
        return _failed(record, f"the file cannot be read: {error.strerror}", link_target), os_error_reason(error)
    if digest == record.content_hash and info.st_size == record.filesize:
        return msgspec.structs.replace(record, mtime_ns=info.st_mtime_ns), None
    rewritten = msgspec.structs.replace(
        record,
        filesize=info.st_size,
        mtime_ns=info.st_mtime_ns,
        creation_time=timestamp(info.st_ctime),
        modification_time=timestamp(info.st_mtime),
        content_hash=digest,
        status="registered",
        error=None,
        error_line=None,
        row_count=None,
        link_target=link_target,
        read_details={},
    )
    return rewritten, None


def _failed(record: FileRecord, reason: str, link_target: str | None, mtime_ns: int = 0) -> FileRecord:
    """Return the record marked failed with no content, so the table drops its rows."""
    if record.status == "failed" and record.error == reason and record.filesize == 0:
        return record
    return msgspec.structs.replace(
        record,
        filesize=0,
        mtime_ns=mtime_ns,
        content_hash="",
        status="failed",
        error=reason,
        error_line=None,
        row_count=None,
        link_target=link_target,
        read_details={},
    )
