"""The web page over the catalog: server-rendered HTML at `/`, served by the API's own app.

Pages read through the same access rules as the API (api.access). A browser that opens a
page without a session is sent to the sign-in form; other clients get the API's JSON errors.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router
from litestar.response import Redirect

from api.web.errors import html_aware, path_with_query
from api.web.pages import PageController
from api.web.session import Renewals, SessionController, renew_url
from api.web.static import static_file


def _renew_rejected_session(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """Send a page request whose session cookie was rejected (expired, revoked) to renew it, before it reads as anonymous."""
    if request.state.get("session_rejected") and request.method == "GET":
        return Redirect(renew_url(path_with_query(request)), status_code=303)
    return None


def web_router(dependencies: dict[str, Any]) -> Router:
    return Router(
        path="/",
        dependencies=dependencies,
        route_handlers=[PageController, SessionController, static_file],
        before_request=_renew_rejected_session,
        include_in_schema=False,
    )


__all__ = ["Renewals", "html_aware", "web_router"]
