"""Service status and health: no sign-in needed."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from litestar import Controller, Request, get

from api.schemas import HealthOut, IngestStatusOut, StatusOut


def service_version() -> str:
    try:
        return version("depictiod")
    except PackageNotFoundError:
        return "unknown"


class UtilsController(Controller):
    path = "/utils"
    tags = ["utils"]

    @get("/status", security=[], summary="Service status and ingestion state")
    async def status(self, request: Request[Any, Any, Any]) -> StatusOut:
        ingest = request.app.state.ingestor.status
        return StatusOut(
            status="online",
            version=service_version(),
            ingest=IngestStatusOut(
                state=ingest.state,
                last_scan_started=ingest.last_scan_started,
                last_scan_finished=ingest.last_scan_finished,
                scans_completed=ingest.scans_completed,
                last_error=ingest.last_error,
            ),
        )


@get("/health", security=[], tags=["utils"], summary="Liveness check")
async def health() -> HealthOut:
    return HealthOut(status="healthy", version=service_version())
