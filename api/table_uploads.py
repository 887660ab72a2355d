"""Upload files into a data collection's table, or clear it, and report the table afterwards.

An uploaded file becomes a file of the collection (`origin = 'upload'`, run tag `upload`)
stored in the service's uploads folder. The collection is then aggregated at once, the
same way as after a scan: types are widened, drift is recorded, and a file that cannot be
read is recorded failed with its reason while the other files keep their rows. The
response comes after that aggregation, so it gives the rows of the finished table. When a
running scan has not finished within the ingestor's upload wait, the response comes first
(202) and a later aggregation adds the rows.
"""

from __future__ import annotations

import logging
import os
import secrets

from litestar import Response
from litestar.datastructures import UploadFile
from litestar.exceptions import ClientException

from api.collection_schemas import TableUploadOut, UploadedFileOut
from catalog import CollectionRecord, ConflictError, FileRecord, ProjectRecord, utc_now
from config import Settings, derive_id
from ingestor import Ingestor
from ingestor.uploads import UPLOAD_SUFFIXES, upload_format

logger = logging.getLogger(__name__)

# The run tag of every uploaded file, which its rows carry in `depictio_run_id`.
UPLOAD_RUN_TAG = "upload"
# Collection types whose tables take uploads.
_UPLOAD_TYPES = ("table",)
# Room for the multipart boundaries and part headers around the uploaded files.
_MULTIPART_ALLOWANCE_BYTES = 64 * 1024


def upload_body_limit(settings: Settings) -> int:
    """Return the largest request body of an upload route in bytes: `server.max_upload_mb` MiB and the multipart framing."""
    return settings.server.max_upload_mb * 1024 * 1024 + _MULTIPART_ALLOWANCE_BYTES


def check_table_collection(collection: CollectionRecord) -> None:
    """Raise 400 unless the collection is a native table, and 409 when it belongs to no workflow."""
    config = collection.collection.config
    if config.type not in _UPLOAD_TYPES or config.source != "native":
        raise ClientException(
            f"data collection {collection.collection.data_collection_tag!r} ({collection.id}) is a {config.source} "
            f"{config.type} collection; only native table collections take uploaded files"
        )
    if collection.workflow_id is None:
        raise ConflictError(
            f"data collection {collection.collection.data_collection_tag!r} ({collection.id}) belongs to no "
            "workflow, so depictiod does not aggregate it"
        )


def check_sent(collection: CollectionRecord, project: ProjectRecord, action: str) -> None:
    """Raise 409 when the collection's project comes from a project file, whose scans bring its files back."""
    if project.source == "api":
        return
    raise ConflictError(
        f"cannot {action} data collection {collection.collection.data_collection_tag!r} ({collection.id}): its "
        f"project {project.name!r} comes from a project file, and its files come back at the next scan of its "
        "folders; append files, or delete the ones you uploaded with DELETE /files/delete/{file_id}"
    )


def store_uploads(
    ingestor: Ingestor, collection: CollectionRecord, uploads: list[UploadFile], user_email: str
) -> list[FileRecord]:
    """Write each uploaded file to the uploads folder and return its file record, not yet registered.

    Raise 400 naming the first file whose name is not that of a CSV, TSV or Parquet file,
    before anything is written.
    """
    formats = [_checked_format(upload, index) for index, upload in enumerate(uploads)]
    records: list[FileRecord] = []
    try:
        for upload, (file_format, suffix) in zip(uploads, formats, strict=True):
            records.append(_stored_record(ingestor, collection, upload, file_format, suffix, user_email))
    except BaseException:
        ingestor.uploads.remove([record.file_location for record in records])
        raise
    return records


def _checked_format(upload: UploadFile, index: int) -> tuple[str, str]:
    found = upload_format(upload.filename or "")
    if found is not None:
        return found
    endings = ", ".join(UPLOAD_SUFFIXES)
    raise ClientException(
        f"invalid request: files[{index}]: {upload.filename!r} is not a CSV, TSV or Parquet file; "
        f"its name must end in one of {endings}"
    )


def _stored_record(
    ingestor: Ingestor, collection: CollectionRecord, upload: UploadFile, file_format: str, suffix: str, user: str
) -> FileRecord:
    assert collection.workflow_id is not None
    file_id = secrets.token_hex(12)
    stored = ingestor.uploads.store(collection.id, file_id, suffix, upload.file)
    return FileRecord(
        id=file_id,
        data_collection_id=collection.id,
        workflow_id=collection.workflow_id,
        # Uploads have no run of their own, so no scanned or registered run has this id.
        run_id=derive_id("upload-run", collection.workflow_id),
        run_tag=UPLOAD_RUN_TAG,
        file_location=stored.path,
        filename=os.path.basename(upload.filename or f"upload{suffix}"),
        filesize=stored.size,
        mtime_ns=stored.mtime_ns,
        creation_time=stored.creation_time,
        modification_time=stored.modification_time,
        content_hash=stored.content_hash,
        wildcards={},
        status="registered",
        error=None,
        error_line=None,
        row_count=None,
        registration_time=utc_now(),
        origin="upload",
        document={"format": file_format, "uploaded_by": user},
    )


def remove_uploaded(ingestor: Ingestor, removed: list[FileRecord]) -> None:
    """Delete from the uploads folder the files of records that left the catalog."""
    ingestor.uploads.remove([record.file_location for record in removed if record.origin == "upload"])


def table_response(
    ingestor: Ingestor,
    collection: CollectionRecord,
    project: ProjectRecord,
    added: list[FileRecord],
    removed: int,
    action: str,
) -> Response[TableUploadOut]:
    """Aggregate the collection now and describe its table: 200, or 202 when the aggregation is left for later."""
    aggregate = ingestor.aggregate_upload(collection, project.name)
    catalog = ingestor.catalog
    table = catalog.tables.get(collection.id)
    files = [catalog.files.get(record.id) or record for record in added]
    rows_total = table.row_count if table is not None else 0
    rows_added = sum(record.row_count or 0 for record in files if record.status == "aggregated")
    failed = [record for record in files if record.status == "failed"]
    broken = aggregate is not None and aggregate.outcome == "error"

    message = f"{action} data collection {collection.collection.data_collection_tag!r}: {len(files)} files stored, "
    if broken:
        message += (
            f"{removed} removed, but the aggregation failed; the table is unchanged until the next scan of its "
            "workflow, and the service log has the reason"
        )
    elif aggregate is None:
        message += f"{removed} removed; a scan is running, so the table is updated after it"
    else:
        message += f"{removed} removed, {len(failed)} failed; {rows_added} rows added, {rows_total} rows in the table"
        message += "".join(f"; {record.filename!r} failed: {record.error}" for record in failed)
    level = logging.WARNING if failed or broken else logging.INFO
    logger.log(level, "collection %s: %s", collection.id, message)

    body = TableUploadOut(
        success=not failed and not broken,
        message=message,
        data_collection_id=collection.id,
        aggregated=aggregate is not None,
        rows_total=rows_total,
        rows_added=rows_added,
        aggregation_version=table.aggregation_version if table is not None else None,
        files=[_file_out(record) for record in files],
        files_removed=removed,
    )
    return Response(body, status_code=200 if aggregate is not None else 202)


def _file_out(record: FileRecord) -> UploadedFileOut:
    return UploadedFileOut(
        id=record.id,
        filename=record.filename,
        format=str(record.document.get("format", "")),
        filesize=record.filesize,
        status=record.status,
        error=record.error,
        error_line=record.error_line,
        row_count=record.row_count,
    )
