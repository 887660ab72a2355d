"""Error pages for browsers: the API's JSON error handlers, wrapped to render HTML when a browser requests a page."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.response import Redirect

from api.auth import API_PREFIX
from api.errors import ErrorBody
from api.web.render import render_page, wants_html
from api.web.session import renew_url

Handler = Callable[[Request[Any, Any, Any], Any], Response[Any]]
# Headers of a JSON error that mean nothing to a page.
_DROPPED_HEADERS = {"www-authenticate", "content-type", "content-length"}


def _is_page_request(request: Request[Any, Any, Any]) -> bool:
    path = request.url.path
    return wants_html(request) and not path.startswith((API_PREFIX, "/docs", "/health", "/metrics"))


def path_with_query(request: Request[Any, Any, Any]) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def html_aware(handler: Handler) -> Handler:
    """Wrap `handler` so that a browser's page request gets an HTML page, and every other request the JSON body.

    A page that needs a sign-in sends the browser to renew its session, which falls back
    to the sign-in form.
    """

    def handle(request: Request[Any, Any, Any], exception: Any) -> Response[Any]:
        response = handler(request, exception)
        if not request.url.path.startswith(API_PREFIX):
            response.headers["Vary"] = "Accept"
        if not _is_page_request(request):
            return response
        status = response.status_code or 500
        if status == 401 and request.method in ("GET", "HEAD"):
            return Redirect(renew_url(path_with_query(request)), status_code=303, headers={"Vary": "Accept"})
        detail = response.content.detail if isinstance(response.content, ErrorBody) else HTTPStatus(status).phrase
        page = render_page(request, "error.html", status_code=status, title=HTTPStatus(status).phrase, detail=detail)
        for name, value in response.headers.items():
            if name.lower() not in _DROPPED_HEADERS:
                page.headers[name] = value
        return page

    return handle
