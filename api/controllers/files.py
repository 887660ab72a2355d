"""`/files`: the files registered for a data collection."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from api.access import Access, format_time
from api.schemas import FileDetails, FileDocument
from ingestor.hashing import depictio_file_hash


class FileController(Controller):
    path = "/files"
    tags = ["files"]

    @get(
        "/list/{data_collection_id:str}",
        sync_to_thread=True,
        opt={"access": "read"},
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
                file_hash=depictio_file_hash(r.content_hash, r.filesize),
                filesize=r.filesize,
                permissions=permissions,
            )
            for r in records
        ]
