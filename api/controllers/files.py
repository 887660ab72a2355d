"""`/files`: the files registered for a data collection, and the files that clients register and delete."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import FromPath, FromQuery, JSONBody

from api.access import Access, format_time
from api.errors import error_responses
from api.registration import check_under_locations, file_record
from api.registry_schemas import DeleteBatchOut, DeletedOut, FileBatchIn, FileIdsIn, UpsertOut
from api.schemas import FileDetails, FileDocument
from catalog import CollectionRecord, ConflictError, FileRecord, ProjectRecord
from ingestor import Ingestor
from ingestor.hashing import depictio_file_hash

logger = logging.getLogger(__name__)


class FileController(Controller):
    path = "/files"
    tags = ["files"]

    @get(
        "/list/{data_collection_id:str}",
        sync_to_thread=True,
        opt={"access": "read"},
        responses=error_responses(400, 401, 404),
        summary="The files of a data collection (`_id` keys)",
    )
    def list_files(
        self, access: NamedDependency[Access], data_collection_id: FromPath[str], details: FromQuery[bool] = False
    ) -> list[FileDocument] | list[FileDetails]:
        """Return Depictio's strict file documents, or depictiod's ingestion details with `details=true`."""
        _, project = access.collection(data_collection_id)
        records = access.catalog.files.list_for_collection(data_collection_id)
        if details:
            return [
                FileDetails(
                    id=r.id,
                    file_location=r.file_location,
                    filename=r.filename,
                    run_id=r.run_id,
                    run_tag=r.run_tag,
                    data_collection_id=r.data_collection_id,
                    filesize=r.filesize,
                    modification_time=format_time(r.modification_time) or "",
                    content_hash=r.content_hash,
                    wildcards=r.wildcards,
                    status=r.status,
                    error=r.error,
                    error_line=r.error_line,
                    row_count=r.row_count,
                    link_target=r.link_target,
                    read_details=r.read_details,
                )
                for r in records
            ]

        permissions = access.permissions(project.project)
        return [
            FileDocument(
                id=r.id,
                file_location=r.file_location,
                filename=r.filename,
                creation_time=format_time(r.creation_time) or "",
                modification_time=format_time(r.modification_time) or "",
                run_id=r.run_id,
                run_tag=r.run_tag,
                data_collection_id=r.data_collection_id,
                registration_time=format_time(r.registration_time) or "",
                file_hash=_file_hash(r),
                filesize=_client_value(r, "filesize", r.filesize),
                permissions=permissions,
                description=_client_value(r, "description", None),
                flexible_metadata=_client_value(r, "flexible_metadata", None),
                hash=_client_value(r, "hash", None),
            )
            for r in records
        ]

    @post(
        "/upsert_batch",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "write"},
        responses=error_responses(400, 401, 403, 404, 409, 413),
        summary="Register files of data collections (editors and owners)",
        description=(
            "Files of a project sent over the API are stored with the ids the client chose; depictiod then "
            "reads each one from its location and adds its rows to the collection's table. A file whose id "
            "is registered is replaced when `update` is true and counted in `existing_count` otherwise. A "
            "new file at a location already registered in its collection replaces the older record, so no "
            "file is counted twice. Each file must lie under its workflow's locations (400). The files of a "
            "project from a project file are the ones depictiod finds: a batch for them is answered with "
            "every file counted as existing, and their workflows are scanned again."
        ),
    )
    def upsert_batch(
        self, request: Request[Any, Any, Any], access: NamedDependency[Access], data: JSONBody[FileBatchIn]
    ) -> UpsertOut:
        collections: dict[str, tuple[CollectionRecord, ProjectRecord]] = {}
        records: list[FileRecord] = []
        # The index in the request of each record, for messages.
        positions: list[int] = []
        scanned: set[str] = set()
        seen: dict[tuple[str, str], int] = {}
        for index, file in enumerate(data.files):
            collection_id = file.data_collection_id.lower()
            for key in (("id", (file.id or "").lower()), ("file_location", f"{collection_id}:{file.file_location}")):
                if key[1] in ("", ":") or key not in seen:
                    seen[key] = index
                    continue
                raise ClientException(
                    f"invalid request: files[{index}].{key[0]}: the same {key[0]} appears twice in the batch "
                    f"(also files[{seen[key]}]); a file is registered once"
                )
            if collection_id not in collections:
                collections[collection_id] = access.collection(collection_id)
            collection, project = collections[collection_id]
            if project.source != "api":
                scanned.add(collection.workflow_id or "")
                continue
            workflow = access.catalog.projects.workflow(collection.workflow_id) if collection.workflow_id else None
            if workflow is None:
                raise ConflictError(
                    f"files[{index}].data_collection_id: data collection {collection_id} belongs to no workflow, "
                    "so it has no locations to read files from"
                )
            record = file_record(file, index, collection)
            check_under_locations(record, workflow.workflow, index)
            records.append(record)
            positions.append(index)

        _check_runs(access, records, positions)
        counts = access.catalog.registry.upsert_files(records, data.update) if records else None
        ingestor: Ingestor | None = getattr(request.app.state, "ingestor", None)
        if ingestor is not None:
            for workflow_id in sorted({record.workflow_id for record in records} | scanned):
                ingestor.request_rescan(workflow_id)
        inserted = counts.inserted if counts else 0
        updated = counts.updated if counts else 0
        existing = (counts.existing if counts else 0) + len(data.files) - len(records)
        logger.info(
            "%d files registered by %s, %d updated, %d already there",
            inserted,
            access.signed_in_user().email,
            updated,
            existing,
        )
        return UpsertOut(
            success=True,
            message=f"{inserted} files registered, {updated} updated, {existing} already registered",
            inserted_count=inserted,
            updated_count=updated,
            existing_count=existing,
        )

    @delete(
        "/delete/{file_id:str}",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "write"},
        responses=error_responses(400, 401, 403, 404, 409),
        summary="Delete a file that a client registered (editors and owners)",
        description=(
            "Its rows leave the collection's table at the next check of its workflow, which starts at once. "
            "The file on disk is not touched, except a file uploaded with `/datacollections/{id}/append` or "
            "`/replace`, which is deleted. A file that depictiod found in a workflow folder gives 409."
        ),
    )
    def delete_file(
        self, request: Request[Any, Any, Any], access: NamedDependency[Access], file_id: FromPath[str]
    ) -> DeletedOut:
        record = _sent_file(access, file_id.lower())
        if record is None:
            raise NotFoundException(f"file {file_id!r} not found")
        _delete(request, access, [record])
        return DeletedOut(message=f"deleted file {record.file_location!r} ({record.id})")

    @post(
        "/delete_batch",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "write"},
        responses=error_responses(400, 401, 403, 404, 409, 413),
        summary="Delete files that clients registered, by id (editors and owners)",
        description=(
            "Ids that name no file are counted in `not_found`. A file the caller may not change gives 404 "
            "or 403, and a file that depictiod found in a workflow folder gives 409; nothing is deleted then."
        ),
    )
    def delete_batch(
        self, request: Request[Any, Any, Any], access: NamedDependency[Access], data: JSONBody[FileIdsIn]
    ) -> DeleteBatchOut:
        found = [
            record
            for record in (_sent_file(access, file_id.lower()) for file_id in dict.fromkeys(data.file_ids))
            if record is not None
        ]
        deleted = _delete(request, access, found) if found else 0
        return DeleteBatchOut(requested=len(data.file_ids), deleted=deleted, not_found=len(data.file_ids) - deleted)


def _check_runs(access: Access, records: list[FileRecord], positions: list[int]) -> None:
    """Raise 409 when a file names a registered run of another workflow than its collection's."""
    owners = access.catalog.runs.workflows_of(sorted({record.run_id for record in records}))
    for index, record in zip(positions, records, strict=True):
        workflow_id = owners.get(record.run_id)
        if workflow_id is not None and workflow_id != record.workflow_id:
            raise ConflictError(
                f"files[{index}].run_id: run {record.run_id} belongs to another workflow than data collection "
                f"{record.data_collection_id}"
            )


def _sent_file(access: Access, file_id: str) -> FileRecord | None:
    """Return a registered file that the caller may delete, None when there is no such file; raise 4xx otherwise."""
    record = access.catalog.files.get(file_id)
    if record is None:
        return None
    _, project = access.collection(record.data_collection_id)
    if record.origin == "upload":
        return record  # An upload may leave any collection, since no scan brings it back.
    if record.origin != "client" or project.source != "api":
        raise ConflictError(
            f"file {record.file_location!r} ({record.id}) was found by depictiod in its workflow's folder; it "
            "goes when the file goes, at the next scan"
        )
    return record


def _delete(request: Request[Any, Any, Any], access: Access, records: list[FileRecord]) -> int:
    counts = access.catalog.registry.delete_files([record.id for record in records])
    ingestor: Ingestor | None = getattr(request.app.state, "ingestor", None)
    if ingestor is not None:
        ingestor.uploads.remove([record.file_location for record in records if record.origin == "upload"])
        for workflow_id, _ in counts.touched:
            ingestor.request_rescan(workflow_id)
    logger.info("%d files deleted by %s", counts.deleted, access.signed_in_user().email)
    return counts.deleted


def _file_hash(record: FileRecord) -> str:
    """Return the hash a client registered, or one derived from depictiod's content hash."""
    sent = record.document.get("file_hash") if record.origin == "client" else None
    return str(sent) if sent else depictio_file_hash(record.content_hash, record.filesize)


def _client_value(record: FileRecord, name: str, default: Any) -> Any:
    return record.document.get(name, default) if record.origin == "client" else default
