"""`/files/{id}/content` and `/runs/{id}/archive`: the bytes of registered files, one file or a run's files as a zip."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import anyio
from litestar import Controller, Request, Response, get
from litestar.background_tasks import BackgroundTask
from litestar.di import NamedDependency
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
)
from litestar.params import FromPath
from litestar.response import Stream

from api.access import Access
from api.artifacts import (
    ArchiveEntry,
    ArchiveStream,
    FileStream,
    archive_names,
    byte_range,
    content_disposition,
    entity_tag,
    etag_matches,
    media_type,
    open_registered,
)
from api.errors import error_response, error_responses
from catalog import FileRecord, ProjectRecord
from ingestor import Ingestor

logger = logging.getLogger(__name__)

_BINARY = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
_HEADER = Schema(type=OpenAPIType.STRING)


@dataclass
class _ContentOperation(Operation):
    """The OpenAPI operation of a file download: the whole file (200) or one byte range (206)."""

    def __post_init__(self) -> None:
        headers: dict[str, OpenAPIHeader | Reference] = {
            "ETag": OpenAPIHeader(schema=_HEADER, description="the catalog's content hash of the file, quoted"),
            "Content-Disposition": OpenAPIHeader(schema=_HEADER, description="`attachment` with the file's name"),
        }
        responses = dict(self.responses or {})
        responses["200"] = OpenAPIResponse(
            description="The file's bytes, with the media type of its extension",
            content={"application/octet-stream": OpenAPIMediaType(schema=_BINARY)},
            headers=headers,
        )
        responses["206"] = OpenAPIResponse(
            description="The bytes of the requested range; Content-Range gives its position",
            content={"application/octet-stream": OpenAPIMediaType(schema=_BINARY)},
            headers={**headers, "Content-Range": OpenAPIHeader(schema=_HEADER, description="`bytes first-last/size`")},
        )
        responses["304"] = OpenAPIResponse(description="If-None-Match names the file's current ETag")
        self.responses = responses


@dataclass
class _ArchiveOperation(Operation):
    def __post_init__(self) -> None:
        responses = dict(self.responses or {})
        responses["200"] = OpenAPIResponse(
            description="A zip archive of the run's files, streamed",
            content={"application/zip": OpenAPIMediaType(schema=_BINARY)},
        )
        self.responses = responses


class ArtifactController(Controller):
    path = "/"
    tags = ["files"]

    @get(
        "/files/{file_id:str}/content",
        sync_to_thread=True,
        opt={"access": "read"},
        responses=error_responses(400, 401, 404, 409, 416),
        operation_class=_ContentOperation,
        summary="The bytes of a registered file, as a download",
        description=(
            "Only files registered in the catalog are served, from the path the catalog stores. A file "
            "that resolves outside its workflow's locations, or whose size or content differs from the "
            "catalog's record, gives 409: the next scan registers its new content. `ETag` is the catalog's "
            "content hash, so `If-None-Match` gives 304. One range `Range: bytes=first-last` (or `first-`, "
            "or `-suffix`) gives 206; a range that starts after the end of the file gives 416; other Range "
            "headers are ignored. A file that changes while it is sent is cut short, never completed."
        ),
    )
    def content(
        self, request: Request[Any, Any, Any], access: NamedDependency[Access], file_id: FromPath[str]
    ) -> Response[Any]:
        record, project = access.file(file_id)
        handle = open_registered(record, _file_roots(request, record, project))
        try:
            return _file_response(request, record, handle)
        except BaseException:
            handle.close()
            raise

    @get(
        "/runs/{run_id:str}/archive",
        sync_to_thread=True,
        opt={"access": "read"},
        responses=error_responses(400, 401, 404, 409),
        operation_class=_ArchiveOperation,
        summary="Every registered file of a run, as one zip archive",
        description=(
            "Each file is named by its path below the run folder. Every file is checked as "
            "`/files/{id}/content` checks it before the first byte is sent, so a file outside the locations "
            "or changed since it was registered gives 409. A file that changes while the archive is sent "
            "cuts the response short, so the client never gets a complete archive with mixed content."
        ),
    )
    def archive(
        self, request: Request[Any, Any, Any], access: NamedDependency[Access], run_id: FromPath[str]
    ) -> Stream:
        run, project = access.run(run_id)
        records = _run_files(access, run.id)
        entries = []
        for record, name in archive_names(records, run.run_location):
            roots = _file_roots(request, record, project)
            # Opened once here, so a file that cannot be served is a 409 before the first byte.
            open_registered(record, roots).close()
            entries.append(ArchiveEntry(record=record, name=name, roots=roots))

        stream = ArchiveStream(entries=entries, description=f"archive of run {run.id}")
        filename = f"{run.run_tag}.zip"
        return Stream(
            stream.chunks(),
            media_type="application/zip",
            headers={"Content-Disposition": content_disposition(filename)},
        )


def _run_files(access: Access, run_id: str) -> list[FileRecord]:
    records = []
    for file_id in access.catalog.runs.file_ids(run_id):
        record = access.catalog.files.get(file_id)
        if record is not None:
            records.append(record)
    return records


def _file_roots(request: Request[Any, Any, Any], record: FileRecord, project: ProjectRecord) -> list[str]:
    """Return the folders that a registered file may resolve into: those its scans read, or the uploads folder."""
    ingestor: Ingestor = request.app.state.ingestor
    if record.origin == "upload":
        return [os.path.realpath(ingestor.uploads.root)]
    workflow = request.app.state.catalog.projects.workflow(record.workflow_id)
    if workflow is None:
        return []
    return ingestor.file_roots(project.id, workflow.workflow)


def _file_response(request: Request[Any, Any, Any], record: FileRecord, handle: Any) -> Response[Any]:
    """Return 304, 416, 206 or 200 for an opened file, after its checks."""
    etag = entity_tag(record)
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition(record.filename),
        "X-Content-Type-Options": "nosniff",
        # A file never runs as a page of this origin, even when a browser shows it.
        "Content-Security-Policy": "sandbox",
    }
    if etag_matches(request.headers.get("If-None-Match"), etag):
        handle.close()
        return Response(content=b"", status_code=304, headers={"ETag": etag})

    size = record.filesize
    # If-Range with another validator asks for the whole file (RFC 9110, section 13.1.5).
    if_range = request.headers.get("If-Range")
    range_header = request.headers.get("Range") if if_range is None or if_range.strip() == etag else None
    try:
        selected = byte_range(range_header, size)
    except ValueError as error:
        handle.close()
        return error_response(
            416,
            f"{error}; request a range within bytes 0-{size - 1}" if size else f"{error}; the file is empty",
            headers={"Content-Range": f"bytes */{size}"},
        )

    first, last = selected if selected is not None else (0, size - 1)
    stream = FileStream(
        handle=handle,
        first=first,
        length=last - first + 1,
        description=f"file {record.id}" + (f" bytes {first}-{last}" if selected else ""),
        expected_hash=None if selected else record.content_hash,
    )
    headers["Content-Length"] = str(stream.length)
    if selected is not None:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"

    async def close() -> None:
        # On a disconnect, Litestar may stop waiting while a chunk is read in a worker thread.
        await anyio.to_thread.run_sync(stream.close)

    return Stream(
        stream.chunks(),
        status_code=206 if selected is not None else 200,
        media_type=media_type(record.filename),
        headers=headers,
        background=BackgroundTask(close),
    )
