"""`/sql`: one read-only SELECT over the data collections that the caller may read."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import msgspec
import pyarrow
from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, TooManyRequestsException
from litestar.params import JSONBody

from api.access import Access
from api.controllers.deltatables import json_value
from api.errors import error_responses
from api.export_formats import ExportFormatError, export_response
from api.sql_schemas import MAX_QUERY_CHARS, SqlColumnOut, SqlIn, SqlOut
from catalog import QueryResult, QuerySources, SqlError
from config import Settings

logger = logging.getLogger(__name__)

# Rows read and measured at a time, so a response that is too large stops early.
_FETCH_ROWS = 1000
# Rows in one record batch of a streamed file response.
_BATCH_ROWS = 65_536

_DESCRIPTION = (
    'The body is `{"query": "SELECT ...", "limit": 100}`. The query is one SELECT statement '
    "(WITH, joins, subqueries, aggregates, window functions and UNION are fine). It names tables as "
    "`project.workflow.collection`, or `project.collection` for a collection without a workflow, "
    "with double quotes around names that contain spaces or dots, and reads only the collections of "
    "projects the caller may read. Administrators may also read the catalog tables by their bare "
    "names (`projects`, `runs`, `files`, `users` and others), without password hashes and token ids. "
    "Statements other than SELECT, table functions other than range, generate_series and unnest, "
    "functions that read files, settings or the environment, and names of tables the caller may not "
    "read are rejected with 400 before anything runs. A query that runs longer than "
    "`sql.timeout_seconds` is interrupted (400). At most `limit` rows come back (by default and at "
    f"most `sql.max_rows`); `truncated` tells that there were more. The query may have at most "
    f"{MAX_QUERY_CHARS} characters. `WITH RECURSIVE` and functions whose result grows with a number "
    "they are given (scalar range and generate_series, repeat, lpad, rpad, list_resize, array_resize, "
    "bar, format, printf) are rejected, a JSON answer larger than `sql.max_response_mb` is 400, and "
    "past `sql.max_concurrent` running queries the answer is 429. With `format` csv, tsv, parquet "
    "or arrow the answer is a streamed file of the first `limit` rows (media types as for "
    "`/datacollections/{id}/export`), and the time limit covers the whole download."
)


class SqlController(Controller):
    path = "/sql"
    tags = ["sql"]

    @post(
        "/",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "signed_in"},
        responses=error_responses(400, 401, 413, 429),
        summary="Run one read-only SELECT over the data collections you may read",
        description=_DESCRIPTION,
    )
    def run_query(
        self, request: Request[Any, Any, Any], access: NamedDependency[Access], data: JSONBody[SqlIn]
    ) -> Response[SqlOut]:
        settings: Settings = request.app.state.settings
        max_rows = settings.sql.max_rows
        limit = max_rows if data.limit is None else data.limit
        if not 1 <= limit <= max_rows:
            raise ClientException(f"invalid request: limit: {limit}; ask for 1 to {max_rows} rows (sql.max_rows)")
        if "\x00" in data.query:
            raise ClientException("invalid query: the query contains a NUL character; remove it")
        user = access.signed_in_user()
        sources = query_sources(access)
        running: threading.BoundedSemaphore = request.app.state.sql_slots
        if not running.acquire(blocking=False):
            raise TooManyRequestsException(
                f"{settings.sql.max_concurrent} SQL queries are running (sql.max_concurrent); try again in a moment"
            )

        started = time.monotonic()
        if data.format != "json":
            return _file_answer(access, data, sources, limit, settings, running)
        try:
            with access.catalog.sql.open(data.query, sources, limit, settings.sql.timeout_seconds) as result:
                rows = _fetch(result, limit + 1, settings.sql.max_response_mb)
                columns = result.columns
                collection_count = len(set(result.checked.collection_ids))
        except SqlError as error:
            _log_rejected(user.email, error)
            raise ClientException(f"invalid query: {error}") from None
        finally:
            running.release()

        truncated = len(rows) > limit
        rows = rows[:limit]
        logger.info(
            "SQL query of %s read %d collections and returned %d rows%s in %.0f ms",
            user.email,
            collection_count,
            len(rows),
            " (truncated)" if truncated else "",
            (time.monotonic() - started) * 1000,
        )
        body = SqlOut(
            columns=[SqlColumnOut(name=name, type=kind) for name, kind in columns],
            rows=rows,
            row_count=len(rows),
            truncated=truncated,
        )
        return Response(body)


def _log_rejected(email: str, error: SqlError) -> None:
    # repr() keeps line breaks of the client's text out of the log's lines.
    logger.info("SQL query of %s rejected: %r", email, str(error))


def _file_answer(
    access: Access,
    data: SqlIn,
    sources: QuerySources,
    limit: int,
    settings: Settings,
    running: threading.BoundedSemaphore,
) -> Response[Any]:
    """Stream the query's first `limit` rows in a file format; the transaction and the time limit last until the end."""
    cleanup = ExitStack()
    cleanup.callback(running.release)
    try:
        result = cleanup.enter_context(
            access.catalog.sql.open(data.query, sources, limit, settings.sql.timeout_seconds)
        )
        reader = result.arrow_reader(_BATCH_ROWS)
        response = export_response(
            _first_rows(reader, limit),
            data.format,
            description=f"an SQL query of {access.signed_in_user().email}",
            filename_stem="query",
            close=cleanup.close,
        )
    except SqlError as error:
        cleanup.close()
        _log_rejected(access.signed_in_user().email, error)
        raise ClientException(f"invalid query: {error}") from None
    except ExportFormatError as error:
        cleanup.close()
        raise ClientException(f"invalid request: {error}") from None
    except BaseException:
        cleanup.close()
        raise
    return response


def _first_rows(reader: pyarrow.RecordBatchReader, limit: int) -> pyarrow.RecordBatchReader:
    """Return a reader of the first `limit` rows of `reader`."""

    def batches() -> Iterator[pyarrow.RecordBatch]:
        left = limit
        for batch in reader:
            if left <= 0:
                return
            yield batch.slice(0, left)
            left -= batch.num_rows

    return pyarrow.RecordBatchReader.from_batches(reader.schema, batches())


def _fetch(result: QueryResult, count: int, max_mb: int) -> list[list[Any]]:
    """Return up to `count` rows in JSON form; raise SqlError once their JSON passes `max_mb` MiB."""
    rows: list[list[Any]] = []
    size = 0
    while len(rows) < count:
        batch = result.fetch_rows(min(_FETCH_ROWS, count - len(rows)))
        if not batch:
            break
        converted = [[json_tree(value) for value in row] for row in batch]
        size += len(msgspec.json.encode(converted))
        if size > max_mb * 2**20:
            raise SqlError(
                f"the response is larger than {max_mb} MiB (sql.max_response_mb); select fewer columns or rows, "
                "or aggregate"
            )
        rows += converted
    return rows


def query_sources(access: Access) -> QuerySources:
    """Return the collections that the caller may read under their SQL names, and the catalog tables for administrators."""
    collections: dict[tuple[str, ...], str] = {}
    for record in access.projects():
        project = record.project
        for workflow in project.workflows:
            for collection in workflow.data_collections:
                if collection.id is not None:
                    collections[(project.name, workflow.name, collection.data_collection_tag)] = collection.id
        for collection in project.data_collections:
            if collection.id is not None:
                collections[(project.name, collection.data_collection_tag)] = collection.id
    is_admin = access.signed_in_user().is_admin
    return QuerySources(collections=collections, catalog_tables=access.catalog.sql.catalog_tables() if is_admin else {})


def json_tree(value: Any) -> Any:
    """Return a result value in a JSON-safe form, nested lists, structs and maps included."""
    if isinstance(value, list | tuple):
        return [json_tree(item) for item in value]
    if isinstance(value, dict):
        return {key if isinstance(key, str) else str(json_tree(key)): json_tree(item) for key, item in value.items()}
    return json_value(value)
