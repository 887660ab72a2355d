"""`GET /datacollections/{id}/export`: every row of a collection's table as a CSV, TSV, Parquet or Arrow download."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, NotFoundException
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Schema,
)
from litestar.params import FromPath

from api.access import Access
from api.errors import ErrorBody, error_responses
from api.export_formats import FORMATS, ExportFormat, ExportFormatError, export_format, export_response
from api.rows import DEFAULT_ROWS, MAX_ROWS, encode_cursor, selection_query
from catalog.row_filters import FilterError, RowsQuery

logger = logging.getLogger(__name__)

# Query parameters of the export route that are not filters.
EXPORT_RESERVED = {"columns", "sort", "limit", "format"}
# The largest LIMIT that DuckDB takes: a signed 64-bit integer.
_MAX_LIMIT = 2**63 - 1


def _query_parameter(name: str, schema: Schema, description: str, required: bool = False) -> Parameter:
    return Parameter(name=name, param_in="query", schema=schema, description=description, required=required)


# The query parameters that the rows and export routes read from the request themselves.
# Filters (`column__operator=value`) have names that depend on the table, so the operation
# descriptions list them instead.
_SELECTION_PARAMETERS = [
    _query_parameter("columns", Schema(type=OpenAPIType.STRING), "the columns to return, separated by commas"),
    _query_parameter(
        "sort", Schema(type=OpenAPIType.STRING), "the columns to sort by, separated by commas; `-name` sorts descending"
    ),
]


@dataclass
class _ExportOperation(Operation):
    """The OpenAPI operation of the export, whose body is a file in one of four media types."""

    def __post_init__(self) -> None:
        self.parameters = [
            *(self.parameters or []),
            _query_parameter(
                "format", Schema(type=OpenAPIType.STRING, enum=list(FORMATS)), "the file format", required=True
            ),
            *_SELECTION_PARAMETERS,
            _query_parameter(
                "limit",
                Schema(type=OpenAPIType.INTEGER, minimum=1, maximum=_MAX_LIMIT),
                "the maximum number of rows; all rows without it",
            ),
        ]
        responses = dict(self.responses or {})
        responses["200"] = OpenAPIResponse(
            description="The rows in the chosen format, streamed as a download",
            content={
                item.media_type: OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING)) for item in FORMATS.values()
            },
            headers={
                "Content-Disposition": OpenAPIHeader(
                    schema=Schema(type=OpenAPIType.STRING),
                    description='`attachment; filename="<data collection tag>.<csv|tsv|parquet|arrows>"`',
                )
            },
        )
        self.responses = responses


class ExportController(Controller):
    path = "/datacollections"
    tags = ["datacollections"]

    @get(
        "/{data_collection_id:str}/export",
        sync_to_thread=True,
        opt={"access": "read"},
        responses=error_responses(400, 401, 404),
        operation_class=_ExportOperation,
        summary="Every row of the collection's table as CSV, TSV, Parquet or an Arrow IPC stream, streamed",
        description=(
            "`format` is csv (text/csv), tsv (text/tab-separated-values), parquet "
            "(application/vnd.apache.parquet) or arrow (an Arrow IPC stream, "
            "application/vnd.apache.arrow.stream). `columns`, `sort` and the filters work as on "
            "`/datacollections/{id}/rows`; without `sort` the rows come in the order in which they were added. "
            "`limit` caps the number of rows (no cap by default). The rows are read in batches inside one "
            "transaction, so a table updated during the download is exported as it was when it started. An "
            "unknown format, an unknown column or operator, a value that does not fit its column, and a column "
            "type that the format cannot hold (binary, interval or nested types in CSV or TSV) are 400 before "
            "any row is sent. A failure after the first bytes cuts the response short."
        ),
    )
    def export(
        self, request: Request[Any, Any, Any], access: NamedDependency[Access], data_collection_id: FromPath[str]
    ) -> Response[Any]:
        record, _ = access.collection(data_collection_id)
        try:
            chosen = export_format(request.query_params.get("format"))
        except ExportFormatError as error:
            raise ClientException(f"invalid request: {error}") from None
        query = selection_query(request, EXPORT_RESERVED)
        limit = _limit(request.query_params.get("limit"))

        try:
            stream = access.catalog.tables.stream_rows(record.id, query, limit)
        except FilterError as error:
            raise ClientException(f"invalid request: {error}") from None
        if stream is None:
            raise NotFoundException(f"data collection {data_collection_id!r} has no aggregated table yet")

        try:
            return export_response(
                stream.reader(),
                chosen.name,
                description=f"data collection {record.id}",
                filename_stem=record.collection.data_collection_tag,
                close=stream.close,
            )
        except ExportFormatError as error:
            stream.close()
            raise ClientException(f"invalid request: {error}") from None
        except BaseException:
            stream.close()
            raise


def _limit(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        limit = int(text)
    except ValueError:
        raise ClientException(f"invalid request: limit: {text!r} is not a whole number") from None
    if not 1 <= limit <= _MAX_LIMIT:
        raise ClientException(
            f"invalid request: limit: {text.strip()[:30]}; ask for 1 to {_MAX_LIMIT} rows, or leave limit out"
        )
    return limit


@dataclass
class RowsOperation(Operation):
    """The OpenAPI operation of `/rows`: JSON, or one page in an export format chosen by the Accept header."""

    def __post_init__(self) -> None:
        self.parameters = [
            *(self.parameters or []),
            *_SELECTION_PARAMETERS,
            _query_parameter(
                "limit",
                Schema(type=OpenAPIType.INTEGER, minimum=1, maximum=MAX_ROWS, default=DEFAULT_ROWS),
                "rows per page",
            ),
            _query_parameter(
                "next", Schema(type=OpenAPIType.STRING), "the `next` cursor of the previous page, for the page after it"
            ),
            _query_parameter(
                "total",
                Schema(type=OpenAPIType.BOOLEAN, default=False),
                "true adds the number of rows that pass the filters",
            ),
        ]
        responses = dict(self.responses or {})
        page = responses.get("200")
        if isinstance(page, OpenAPIResponse):
            content = dict(page.content or {})
            for item in FORMATS.values():
                content[item.media_type] = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))
            page.content = content
            page.headers = {
                "Link": OpenAPIHeader(
                    schema=Schema(type=OpenAPIType.STRING),
                    description='In an export format, when more rows follow: `<URL of the next page>; rel="next"`',
                ),
                "X-Total-Count": OpenAPIHeader(
                    schema=Schema(type=OpenAPIType.INTEGER),
                    description="In an export format with `total=true`: the number of rows that pass the filters",
                ),
            }
        self.responses = responses


NOT_ACCEPTABLE_RESPONSE = {
    406: ResponseSpec(ErrorBody, description="The Accept header names no format this route serves")
}


def rows_in_format(
    request: Request[Any, Any, Any], access: Access, collection_id: str, query: RowsQuery, chosen: ExportFormat
) -> Response[Any]:
    """Return one page of `/rows` in an export format, with the next page's URL in a Link header."""
    try:
        page = access.catalog.tables.rows_arrow(collection_id, query)
    except FilterError as error:
        raise ClientException(f"invalid request: {error}") from None
    if page is None:
        raise NotFoundException(f"data collection {collection_id!r} has no aggregated table yet")

    headers = {"Vary": "Accept"}
    if page.next_after is not None:
        headers["Link"] = f'<{_page_url(request, encode_cursor(page.next_after))}>; rel="next"'
    if page.total is not None:
        headers["X-Total-Count"] = str(page.total)
    try:
        return export_response(
            page.table.to_reader(),
            chosen.name,
            description=f"a page of data collection {collection_id}",
            headers=headers,
        )
    except ExportFormatError as error:
        raise ClientException(f"invalid request: {error}") from None


def _page_url(request: Request[Any, Any, Any], cursor: str) -> str:
    """Return the request's path and query with `next` set to `cursor`."""
    parameters = [(key, value) for key, value in request.query_params.multi_items() if key != "next"]
    return f"{request.url.path}?{urlencode([*parameters, ('next', cursor)])}"
