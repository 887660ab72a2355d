"""Turn the runs and files that clients send into catalog records, checking each against its project."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from litestar.exceptions import ClientException

from api.access import Access
from api.registry_schemas import FileIn, RunIn
from api.security import has_hidden_characters
from catalog import CollectionRecord, FileRecord, ProjectRecord, RunRecord, utc_now
from config import Workflow, derive_id


def parse_time(value: str | None, key: str) -> datetime:
    """Return a Depictio time (YYYY-MM-DD HH:MM:SS, or ISO 8601) as a UTC time without zone."""
    if value is None:
        return utc_now()
    try:
        parsed = datetime.fromisoformat(value.strip())
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):
        raise ClientException(f"invalid request: {key}: {value!r} is not a time like '2026-01-31 14:05:00'") from None
    return parsed


def check_text(value: str, key: str) -> None:
    """Raise 400 when a name or path contains a control, zero-width or direction-changing character.

    Such characters forge log lines, break file system calls (NUL) or make two names look alike.
    """
    if has_hidden_characters(value):
        raise ClientException(f"invalid request: {key}: {value!r} contains a control or invisible character; remove it")


def sent_workflow(access: Access, workflow_id: str, key: str) -> tuple[Workflow, ProjectRecord]:
    """Return a workflow the caller may change (editor or owner); 404 or 403 otherwise."""
    record, project = access.workflow(workflow_id, "write")
    return record.workflow, project


def run_record(run: RunIn, index: int) -> RunRecord:
    key = f"runs[{index}]"
    check_text(run.run_tag, f"{key}.run_tag")
    check_text(run.run_location, f"{key}.run_location")
    document = {
        "scan_results": run.scan_results,
        "description": run.description,
        "flexible_metadata": run.flexible_metadata,
        "hash": run.hash,
        "files_id": run.files_id,
    }
    return RunRecord(
        id=(run.id or derive_id("run", run.workflow_id, run.run_tag)).lower(),
        workflow_id=run.workflow_id.lower(),
        run_tag=run.run_tag,
        run_location=run.run_location,
        workflow_config_id=run.workflow_config_id or "",
        creation_time=parse_time(run.creation_time, f"{key}.creation_time"),
        last_modification_time=parse_time(run.last_modification_time, f"{key}.last_modification_time"),
        registration_time=parse_time(run.registration_time, f"{key}.registration_time"),
        run_hash=run.run_hash,
        origin="client",
        document={name: value for name, value in document.items() if value not in (None, [])},
    )


def file_record(file: FileIn, index: int, collection: CollectionRecord) -> FileRecord:
    """Return the catalog record of a sent file; its location must lie under its workflow's locations."""
    key = f"files[{index}]"
    location = file.file_location
    check_text(location, f"{key}.file_location")
    check_text(file.filename, f"{key}.filename")
    check_text(file.run_tag or "", f"{key}.run_tag")
    if not os.path.isabs(location) or os.path.normpath(location) != location:
        raise ClientException(
            f"invalid request: {key}.file_location: {location!r} must be an absolute, normalised path "
            "(no '..', no doubled or trailing '/')"
        )
    document = {
        "file_hash": file.file_hash,
        "sample": file.sample,
        "manifest_id": file.manifest_id,
        "s3_key": file.s3_key,
        "index_s3_key": file.index_s3_key,
        "index_filesize": file.index_filesize,
        "description": file.description,
        "flexible_metadata": file.flexible_metadata,
        "hash": file.hash,
        "filesize": file.filesize,
    }
    run_tag = file.run_tag or ""
    return FileRecord(
        id=(file.id or derive_id("file", collection.id, location)).lower(),
        data_collection_id=collection.id,
        workflow_id=collection.workflow_id or "",
        run_id=(file.run_id or derive_id("run", collection.workflow_id or "", run_tag)).lower(),
        run_tag=run_tag,
        file_location=location,
        filename=file.filename or os.path.basename(location),
        filesize=file.filesize,
        mtime_ns=0,
        creation_time=parse_time(file.creation_time, f"{key}.creation_time"),
        modification_time=parse_time(file.modification_time, f"{key}.modification_time"),
        content_hash="",
        wildcards={},
        status="registered",
        error=None,
        error_line=None,
        row_count=None,
        registration_time=parse_time(file.registration_time, f"{key}.registration_time"),
        origin="client",
        document={name: value for name, value in document.items() if value is not None},
    )


def check_under_locations(file: FileRecord, workflow: Workflow, index: int) -> None:
    """Raise 400 when a sent file lies outside its workflow's locations, which depictiod never reads."""
    for folder in workflow.data_location.locations:
        if file.file_location.startswith(folder.rstrip(os.sep) + os.sep):
            return
    raise ClientException(
        f"invalid request: files[{index}].file_location: {file.file_location!r} is not under the locations of "
        f"workflow {workflow.name!r} ({', '.join(workflow.data_location.locations)})"
    )
