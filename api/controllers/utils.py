"""Service status and health: no sign-in needed."""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import duckdb
from anyio import to_thread
from litestar import Controller, Request, Response, get
from litestar.openapi import ResponseSpec

from api.auth import bearer_token
from api.errors import error_responses
from api.schemas import HealthOut, IngestStatusOut, LocationWatchOut, StatusOut
from api.tokens import InvalidTokenError, TokenService
from catalog import Catalog, CatalogError

logger = logging.getLogger(__name__)


def service_version() -> str:
    try:
        return version("depictiod")
    except PackageNotFoundError:
        return "unknown"


class UtilsController(Controller):
    path = "/utils"
    tags = ["utils"]

    @get(
        "/status",
        security=[],
        opt={"access": "public"},
        responses=error_responses(),
        summary="Service status and ingestion state; locations and the last error for administrators only",
    )
    async def status(self, request: Request[Any, Any, Any]) -> StatusOut:
        ingest = request.app.state.ingestor.status
        # The route is public, but folder paths, workflow ids and errors name private projects.
        detailed = await to_thread.run_sync(_is_admin_request, request)
        return StatusOut(
            status="online",
            version=service_version(),
            ingest=IngestStatusOut(
                state=ingest.state,
                last_scan_started=ingest.last_scan_started,
                last_scan_finished=ingest.last_scan_finished,
                scans_completed=ingest.scans_completed,
                last_error=ingest.last_error if detailed else None,
                scans_timed_out=ingest.scans_timed_out,
                locations=[
                    LocationWatchOut(workflow_id=w.workflow_id, location=w.location, mode=w.mode, reason=w.reason)
                    for w in ingest.locations
                ]
                if detailed
                else [],
            ),
        )


def _is_admin_request(request: Request[Any, Any, Any]) -> bool:
    """Tell whether the request carries a valid token of an administrator; public routes check none."""
    token = bearer_token(request)
    if token is None:
        return False
    tokens: TokenService = request.app.state.tokens
    try:
        user, _ = tokens.verify_access(token)
    except InvalidTokenError:
        return False
    return bool(user.is_admin)


@get(
    "/health",
    security=[],
    opt={"access": "public"},
    tags=["utils"],
    summary="Health check: 200 when the catalog answers, 503 otherwise",
    sync_to_thread=True,
    responses={503: ResponseSpec(data_container=HealthOut, description="The catalog cannot be read")},
)
def health(request: Request[Any, Any, Any]) -> Response[HealthOut]:
    catalog: Catalog = request.app.state.catalog
    try:
        catalog.store.query("SELECT 1")
    except (duckdb.Error, CatalogError) as error:
        logger.error("health check failed: the catalog cannot be read: %s", str(error).splitlines()[0])
        return Response(HealthOut(status="unhealthy", version=service_version()), status_code=503)
    return Response(HealthOut(status="healthy", version=service_version()))
