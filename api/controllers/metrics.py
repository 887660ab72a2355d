"""`GET /metrics`: the service's metrics in the Prometheus text format."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler

from api.errors import error_responses
from api.metrics import ServiceMetrics, scrape

_DESCRIPTION = (
    "Counters of files, rows, failures, tables and scans, HTTP requests by route template, the ingestor's "
    "queue depth, readiness and the catalog's size, in the Prometheus text format 0.0.4. An Accept header "
    "asking for OpenMetrics gets OpenMetrics. docs/reliability.md lists every metric."
)


def metrics_route(public: bool) -> HTTPRouteHandler:
    """Return the `GET /metrics` route handler: public, or for administrators only.

    `server.metrics_public` decides, so each app builds its own handler.
    """
    # Collecting reads the catalog's counts, so a catalog that cannot be read gives 503.
    responses = error_responses() if public else error_responses(401, 403)
    decorator = get(
        "/metrics",
        opt={"access": "public" if public else "admin"},
        # An empty list marks the route as needing no token in the OpenAPI document.
        security=[] if public else None,
        tags=["utils"],
        summary="Service metrics in the Prometheus text format" + ("" if public else " (administrators)"),
        description=_DESCRIPTION,
        media_type="text/plain",
        sync_to_thread=True,
        responses=responses,
    )
    return decorator(_metrics)


def _metrics(request: Request[Any, Any, Any]) -> Response[str]:
    # Collecting reads the catalog's counts, so the handler runs in a worker thread.
    metrics: ServiceMetrics = request.app.state.metrics
    body, content_type = scrape(metrics, request.headers.get("accept", ""))
    # The header as the encoder names it: Litestar would add a second charset to a text/ media type.
    return Response(content=body.decode(), media_type="text/plain", headers={"content-type": content_type})
