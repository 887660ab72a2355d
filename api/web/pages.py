"""The web page's routes: projects, a project, a run, a collection with its preview, and the scan history.

Each page reads through the request's Access, under the same rule as the API route that
serves the same data, so a page shows exactly what the API would return to its user.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.exceptions import ClientException
from litestar.params import FromPath

from api.access import Access
from api.rows import decode_cursor, encode_cursor
from api.web import views
from api.web.render import render_page
from catalog.row_filters import FilterError, RowPosition, RowsQuery, StaleCursorError

PREVIEW_ROWS = 50
MIN_PREVIEW_ROWS = 10
MAX_PREVIEW_ROWS = 500
SCANS_PER_PAGE = 50
MAX_OFFSET = 2**62
EXPORT_FORMATS = ("csv", "parquet", "arrow")


class PageController(Controller):
    path = "/"
    include_in_schema = False

    @get("/", sync_to_thread=True, opt={"access": "read"})
    def projects(self, request: Request[Any, Any, Any], access: NamedDependency[Access]) -> Response[str]:
        access.require_rule()
        summaries = views.project_summaries(access)
        return render_page(request, "projects.html", title="Projects", projects=summaries, live=True)

    @get("/projects/{project_id:str}", sync_to_thread=True, opt={"access": "read"})
    def project(
        self, request: Request[Any, Any, Any], access: NamedDependency[Access], project_id: FromPath[str]
    ) -> Response[str]:
        record = access.project(project_id)
        view = views.project_view(access, record)
        return render_page(request, "project.html", title=record.name, view=view, live=True)

    @get("/runs/{run_id:str}", sync_to_thread=True, opt={"access": "read"})
    def run(
        self, request: Request[Any, Any, Any], access: NamedDependency[Access], run_id: FromPath[str]
    ) -> Response[str]:
        record, project = access.run(run_id)
        view = views.run_view(access, record, project)
        return render_page(request, "run.html", title=record.run_tag, view=view, live=True)

    @get("/collections/{data_collection_id:str}", sync_to_thread=True, opt={"access": "read"})
    def collection(
        self, request: Request[Any, Any, Any], access: NamedDependency[Access], data_collection_id: FromPath[str]
    ) -> Response[str]:
        record, project = access.collection(data_collection_id)
        query = request.query_params
        limit = _bounded_int(query.get("limit"), "limit", PREVIEW_ROWS, MIN_PREVIEW_ROWS, MAX_PREVIEW_ROWS)
        start = _bounded_int(query.get("start"), "start", 1, 1, MAX_OFFSET)
        sort_text = query.get("sort") or ""
        sort = _sort_keys(sort_text)
        cursor = query.get("after")
        rows_query = RowsQuery(sort=sort, limit=limit, after=_position(cursor), count_total=True)
        try:
            page = access.catalog.tables.rows(record.id, rows_query)
        except FilterError as error:
            raise ClientException(f"invalid request: {error}") from None
        except StaleCursorError:
            page = None
            stale = True
        else:
            stale = False

        def link(**changes: Any) -> str:
            params = {"sort": sort_text, "limit": str(limit) if limit != PREVIEW_ROWS else ""}
            params.update({key: str(value) for key, value in changes.items()})
            given = {key: value for key, value in params.items() if value}
            return f"/collections/{record.id}" + (f"?{urlencode(given)}" if given else "")

        next_link = None
        if page is not None and page.next_after is not None:
            next_link = link(after=encode_cursor(page.next_after), start=start + len(page.rows))
        table = access.catalog.tables.get(record.id)
        return render_page(
            request,
            "collection.html",
            title=record.collection.data_collection_tag,
            record=record,
            project=project,
            table=table,
            columns=access.catalog.tables.column_specs(record.id),
            drift=views.drift_rows(access, table),
            file_counts=access.catalog.files.status_counts(record.id),
            page=page,
            stale=stale,
            start=start,
            sort=dict(sort),
            sort_link=lambda column: link(sort=column if sort != ((column, False),) else f"-{column}"),
            first_link=link(),
            next_link=next_link,
            cell=views.cell_text,
            export_formats=EXPORT_FORMATS,
            live=True,
        )

    @get("/scans", sync_to_thread=True, opt={"access": "read"})
    def scans(self, request: Request[Any, Any, Any], access: NamedDependency[Access]) -> Response[str]:
        access.require_rule()
        offset = _bounded_int(request.query_params.get("offset"), "offset", 0, 0, MAX_OFFSET)
        projects = access.projects()
        reports, total = access.catalog.scans.list([project.id for project in projects], SCANS_PER_PAGE, offset)
        return render_page(
            request,
            "scans.html",
            title="Scans",
            reports=reports,
            total=total,
            offset=offset,
            per_page=SCANS_PER_PAGE,
            project_names={project.id: project.name for project in projects},
            failures=views.failed_files(access, projects),
            live=True,
        )


def _position(cursor: str | None) -> RowPosition | None:
    if not cursor:
        return None
    try:
        return decode_cursor(cursor)
    except ClientException:
        raise ClientException(
            "invalid request: after: not a link that this page made; start from the first page"
        ) from None


def _bounded_int(text: str | None, name: str, default: int, low: int, high: int) -> int:
    """Return a whole number from a query parameter, clamped to low..high; 400 for anything else."""
    if text is None or text == "":
        return default
    digits = text.strip().removeprefix("-").removeprefix("+")
    if not digits.isascii() or not digits.isdigit():
        raise ClientException(f"invalid request: {name}: {text[:40]!r} is not a whole number")
    if len(digits) > 19:
        # Python refuses to convert very long numbers, and any of them is past the bounds.
        return low if text.strip().startswith("-") else high
    return min(max(int(text), low), high)


def _sort_keys(text: str) -> tuple[tuple[str, bool], ...]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    return tuple((name.removeprefix("-"), name.startswith("-")) for name in names)
