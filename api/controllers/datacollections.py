"""`/datacollections`: data collection documents, and changes to a collection and its table."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.enums import MediaType, RequestEncodingType
from litestar.exceptions import ClientException, HTTPException, NotFoundException
from litestar.openapi import ResponseSpec
from litestar.params import Body, FromPath, JSONBody

from api.access import Access
from api.collection_schemas import CollectionChangeOut, CollectionRenameIn, TableUploadIn, TableUploadOut
from api.controllers.deltatables import json_value
from api.controllers.exports import NOT_ACCEPTABLE_RESPONSE, RowsOperation, rows_in_format
from api.errors import error_responses
from api.export_formats import ExportFormat, negotiate, not_acceptable_detail
from api.rows import RowsOut, encode_cursor, rows_query
from api.schemas import rename_ids
from api.table_uploads import (
    check_sent,
    check_table_collection,
    remove_uploaded,
    store_uploads,
    table_response,
)
from catalog.row_filters import FilterError
from config import TAG_PATTERN
from ingestor import Ingestor

logger = logging.getLogger(__name__)

_UPLOAD_DESCRIPTION = (
    "The multipart field `files` carries one or more CSV, TSV or Parquet files, known by the end of their "
    "names (`.csv`, `.tsv`, `.tab`, `.parquet`, `.pq`, and `.gz` after a CSV or TSV name; 400 otherwise). "
    "Each becomes a file of the collection with run tag `upload`, and the collection's table is aggregated "
    "before the response, under the same rules as scanned files: column types are widened and the drift "
    "recorded, and a file that cannot be read is recorded failed with its reason (`success` false, the "
    "reason in `files`) while the table keeps its other rows. When a running scan holds the table past the "
    "upload wait, the response is 202 and a later aggregation adds the rows. The request body may be at "
    "most `server.max_upload_mb` MiB (413). Only native table collections take uploads (400)."
)


_PENDING_RESPONSE = {
    202: ResponseSpec(TableUploadOut, description="The files are changed; a running scan delays the table's update")
}


class DataCollectionController(Controller):
    path = "/datacollections"

    @get(
        "/{data_collection_id:str}/rows",
        sync_to_thread=True,
        opt={"access": "read"},
        summary="A page of the collection's table: columns, filters, sort order and a cursor to the next page",
        description=(
            "`columns=a,b` chooses columns; `sort=a,-b` sorts (a minus sign for descending, NULL values "
            "last; rows with equal keys keep the order in which they were added); `limit` is 1 to 10000 "
            "(100 by default); `total=true` adds the number of rows that pass the filters. Pass the "
            "answer's `next` back as `next` for the following page: a cursor stays valid while rows are "
            "added or other files change; it is 409 once the row where the page ended is gone (its file "
            "changed or was removed, or a schema change rebuilt the table), and 400 with another filter or "
            "sort. Filters are query "
            "parameters `column__operator=value`, combined with AND: eq, ne, lt, le, gt, ge, in (values "
            "separated by commas), contains, startswith, isnull (true or false). Unknown columns, "
            "operators and parameters, and values that do not fit their column, are 400. An Accept header of "
            "text/csv, text/tab-separated-values, application/vnd.apache.parquet or "
            "application/vnd.apache.arrow.stream returns the page in that format, with the next page's URL in "
            'a `Link` header (rel="next") and `total` in `X-Total-Count`; JSON is the default, also for '
            "`*/*`, and an Accept header that names none of these is 406."
        ),
        operation_class=RowsOperation,
        responses={**error_responses(400, 401, 404, 406, 409), **NOT_ACCEPTABLE_RESPONSE},
    )
    def rows(
        self, request: Request[Any, Any, Any], access: NamedDependency[Access], data_collection_id: FromPath[str]
    ) -> Response[RowsOut]:
        record, _ = access.collection(data_collection_id)
        chosen = negotiate(request.headers.get("Accept"))
        if chosen is None:
            raise HTTPException(status_code=406, detail=not_acceptable_detail())
        query = rows_query(request)
        if isinstance(chosen, ExportFormat):
            return rows_in_format(request, access, record.id, query, chosen)
        try:
            page = access.catalog.tables.rows(record.id, query)
        except FilterError as error:
            raise ClientException(f"invalid request: {error}") from None
        if page is None:
            raise NotFoundException(f"data collection {data_collection_id!r} has no aggregated table yet")
        body = RowsOut(
            columns=page.columns,
            rows=[
                {name: json_value(value) for name, value in zip(page.columns, row, strict=True)} for row in page.rows
            ],
            next=None if page.next_after is None else encode_cursor(page.next_after),
            total=page.total,
        )
        return Response(body, headers={"Vary": "Accept"})

    tags = ["datacollections"]

    @get(
        "/specs/{data_collection_id:str}",
        sync_to_thread=True,
        opt={"access": "read"},
        responses=error_responses(400, 401, 404),
        summary="The data collection as a raw document (`_id` keys)",
    )
    def specs(self, access: NamedDependency[Access], data_collection_id: FromPath[str]) -> dict[str, Any]:
        record, _ = access.collection(data_collection_id)
        document: dict[str, Any] = rename_ids(msgspec.to_builtins(record.collection))
        return document

    @get(
        "/get_tag_from_id/{data_collection_id:str}",
        sync_to_thread=True,
        opt={"access": "read"},
        responses=error_responses(400, 401, 404),
        summary="The data collection's tag, as a bare JSON string",
        media_type=MediaType.JSON,
    )
    def get_tag_from_id(self, access: NamedDependency[Access], data_collection_id: FromPath[str]) -> str:
        record, _ = access.collection(data_collection_id)
        # Litestar sends a returned str as it is, so the JSON quoting happens here.
        return msgspec.json.encode(record.collection.data_collection_tag).decode()

    @delete(
        "/{data_collection_id:str}/data",
        status_code=200,
        responses={**error_responses(400, 401, 403, 404, 409), **_PENDING_RESPONSE},
        sync_to_thread=True,
        opt={"access": "write"},
        summary="Remove every row of a collection's table (editors and owners)",
        description=(
            "The files that clients registered or uploaded into the collection are removed from the catalog, "
            "uploaded files also from disk, and the table with them; the collection stays. Files that clients "
            "registered stay on disk. A collection of a project from a project file gives 409, because a scan "
            "of its folders brings its files back."
        ),
    )
    def clear(
        self, request: Request[Any, Any, Any], access: NamedDependency[Access], data_collection_id: FromPath[str]
    ) -> Response[TableUploadOut]:
        collection, project = access.collection(data_collection_id)
        check_sent(collection, project, "clear")
        ingestor: Ingestor = request.app.state.ingestor
        removed = access.catalog.registry.clear_collection(collection.id)
        remove_uploaded(ingestor, removed)
        return table_response(ingestor, collection, project, [], len(removed), "cleared")

    @delete(
        "/{data_collection_id:str}",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "manage"},
        responses=error_responses(400, 401, 403, 404, 409),
        summary="Delete a data collection from a project sent over the API (owners)",
        description=(
            "The collection leaves its project with its files, table and uploaded files; links that name it "
            "go too. A collection that a join of the project uses gives 409 until the join is removed. A "
            "collection of a project from a project file gives 409: remove it from that file."
        ),
    )
    def delete_collection(
        self, request: Request[Any, Any, Any], access: NamedDependency[Access], data_collection_id: FromPath[str]
    ) -> CollectionChangeOut:
        collection, project = access.collection(data_collection_id)
        tag = collection.collection.data_collection_tag
        access.catalog.projects.remove_collection(collection.id)
        # The ingestor drops the collection from its projects and deletes its uploads folder.
        ingestor: Ingestor = request.app.state.ingestor
        ingestor.project_changed(project.id)
        logger.info(
            "data collection %s (%s) of project %s deleted by %s",
            tag,
            collection.id,
            project.name,
            access.signed_in_user().email,
        )
        return CollectionChangeOut(
            success=True,
            message=f"data collection {tag!r} deleted from project {project.name!r}",
            data_collection_id=collection.id,
            data_collection_tag=tag,
        )

    @put(
        "/{data_collection_id:str}/name",
        sync_to_thread=True,
        opt={"access": "write"},
        responses=error_responses(400, 401, 403, 404, 409, 413),
        summary="Rename a data collection of a project sent over the API (editors and owners)",
        description=(
            "`new_name` becomes the collection's tag: letters, digits, `_` and `-`, starting with a letter or "
            "digit (400), and no other collection of its workflow may have it (409). Joins and links that name "
            "the old tag are changed too. A collection of a project from a project file gives 409: rename it "
            "in that file."
        ),
    )
    def rename(
        self,
        request: Request[Any, Any, Any],
        access: NamedDependency[Access],
        data_collection_id: FromPath[str],
        data: JSONBody[CollectionRenameIn],
    ) -> CollectionChangeOut:
        if not TAG_PATTERN.match(data.new_name):
            raise ClientException(
                f"invalid request: new_name: invalid tag {data.new_name!r}; use letters, digits, '_' and '-', "
                "starting with a letter or digit"
            )
        collection, project = access.collection(data_collection_id)
        old_tag = collection.collection.data_collection_tag
        access.catalog.projects.rename_collection(collection.id, data.new_name)
        ingestor: Ingestor = request.app.state.ingestor
        ingestor.project_changed(project.id)
        logger.info(
            "data collection %s (%s) of project %s renamed to %s by %s",
            old_tag,
            collection.id,
            project.name,
            data.new_name,
            access.signed_in_user().email,
        )
        return CollectionChangeOut(
            success=True,
            message=f"data collection {old_tag!r} renamed to {data.new_name!r}",
            data_collection_id=collection.id,
            data_collection_tag=data.new_name,
        )


class TableUploadController(Controller):
    """Uploads into a collection's table; the app mounts it on a router with the upload size limit."""

    path = "/datacollections"
    tags = ["datacollections"]

    @post(
        "/{data_collection_id:str}/append",
        status_code=200,
        responses={**error_responses(400, 401, 403, 404, 409, 413), **_PENDING_RESPONSE},
        sync_to_thread=True,
        opt={"access": "write"},
        summary="Add uploaded files to a collection's table (editors and owners)",
        description=_UPLOAD_DESCRIPTION + " The collection's other files and rows stay.",
    )
    def append(
        self,
        request: Request[Any, Any, Any],
        access: NamedDependency[Access],
        data_collection_id: FromPath[str],
        data: Annotated[TableUploadIn, Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> Response[TableUploadOut]:
        return _upload(request, access, data_collection_id, data, replace=False)

    @post(
        "/{data_collection_id:str}/replace",
        status_code=200,
        responses={**error_responses(400, 401, 403, 404, 409, 413), **_PENDING_RESPONSE},
        sync_to_thread=True,
        opt={"access": "write"},
        summary="Replace a collection's table with uploaded files (editors and owners)",
        description=_UPLOAD_DESCRIPTION
        + " The files that clients registered or uploaded before are removed first (uploaded ones also from "
        "disk). A collection of a project from a project file gives 409, because a scan of its folders brings "
        "its files back; append to it instead.",
    )
    def replace(
        self,
        request: Request[Any, Any, Any],
        access: NamedDependency[Access],
        data_collection_id: FromPath[str],
        data: Annotated[TableUploadIn, Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> Response[TableUploadOut]:
        return _upload(request, access, data_collection_id, data, replace=True)


def _upload(
    request: Request[Any, Any, Any], access: Access, collection_id: str, data: TableUploadIn, replace: bool
) -> Response[TableUploadOut]:
    collection, project = access.collection(collection_id)
    check_table_collection(collection)
    if replace:
        check_sent(collection, project, "replace the files of")
    ingestor: Ingestor = request.app.state.ingestor
    added = store_uploads(ingestor, collection, data.files, access.signed_in_user().email)
    try:
        removed = access.catalog.registry.add_uploads(collection.id, added, replace)
    except BaseException:
        ingestor.uploads.remove([record.file_location for record in added])
        raise
    remove_uploaded(ingestor, removed)
    return table_response(ingestor, collection, project, added, len(removed), "replaced" if replace else "appended to")
