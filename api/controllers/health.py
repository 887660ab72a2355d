"""Liveness and readiness probes: no sign-in needed."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.exceptions import ServiceUnavailableException
from litestar.openapi import ResponseSpec

from api.controllers.utils import service_version
from api.errors import ErrorBody
from api.readiness import not_ready_reason
from api.schemas import HealthOut


@get(
    "/health/live",
    security=[],
    opt={"access": "public"},
    tags=["utils"],
    summary="Liveness probe: 200 while the process responds to requests",
    description="It reads nothing, so it responds during the start-up scan and while the catalog is unavailable.",
)
async def health_live() -> HealthOut:
    return HealthOut(status="alive", version=service_version())


@get(
    "/health/ready",
    security=[],
    opt={"access": "public"},
    tags=["utils"],
    summary="Readiness probe: 200 once the start-up scan is done and the catalog can be read and written",
    description=(
        "503 while the start-up scan runs, after it failed, while the catalog cannot be written (ingestion is "
        "paused) or read, and while the service stops. `detail` says which."
    ),
    sync_to_thread=True,
    responses={503: ResponseSpec(data_container=ErrorBody, description="The service is not ready for traffic")},
)
def health_ready(request: Request[Any, Any, Any]) -> HealthOut:
    reason = not_ready_reason(request.app.state.catalog, request.app.state.ingestor)
    if reason is not None:
        raise ServiceUnavailableException(f"not ready: {reason}")
    return HealthOut(status="ready", version=service_version())
