"""`/sql`: one read-only SELECT over the data collections that the caller may read."""

from __future__ import annotations

import logging
import time
from typing import Any

from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.exceptions import ClientException
from litestar.params import JSONBody

from api.access import Access
from api.controllers.deltatables import json_value
from api.sql_schemas import MAX_QUERY_CHARS, SqlColumnOut, SqlIn, SqlOut
from catalog import QuerySources, SqlError
from config import Settings

logger = logging.getLogger(__name__)

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
    f"{MAX_QUERY_CHARS} characters."
)


class SqlController(Controller):
    path = "/sql"
    tags = ["sql"]

    @post(
        "/",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "signed_in"},
        summary="Run one read-only SELECT over the data collections you may read",
        description=_DESCRIPTION,
    )
    def run_query(
        self, request: Request[Any, Any, Any], access: NamedDependency[Access], data: JSONBody[SqlIn]
    ) -> SqlOut:
        settings: Settings = request.app.state.settings
        max_rows = settings.sql.max_rows
        limit = max_rows if data.limit is None else data.limit
        if not 1 <= limit <= max_rows:
            raise ClientException(f"invalid request: limit: {limit}; ask for 1 to {max_rows} rows (sql.max_rows)")
        user = access.signed_in_user()
        sources = query_sources(access)

        started = time.monotonic()
        try:
            with access.catalog.sql.open(data.query, sources, limit, settings.sql.timeout_seconds) as result:
                rows = result.fetch_rows(limit + 1)
                columns = result.columns
                collection_count = len(set(result.checked.collection_ids))
        except SqlError as error:
            logger.info("SQL query of %s rejected: %s", user.email, error)
            raise ClientException(f"invalid query: {error}") from None

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
        return SqlOut(
            columns=[SqlColumnOut(name=name, type=kind) for name, kind in columns],
            rows=[[json_tree(value) for value in row] for row in rows],
            row_count=len(rows),
            truncated=truncated,
        )


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
