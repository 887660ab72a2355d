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
from api.backup_schemas import LastBackupOut
from api.errors import error_responses
from api.readiness import catalog_read_error
from api.schemas import TIME_FORMAT, HealthOut, IngestStatusOut, LocationWatchOut, StatusOut
from api.tokens import InvalidTokenError, TokenService
from catalog import Catalog, CatalogError, LastBackup
from ingestor import Ingestor

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
        summary=(
            "Service status, ingestion state and the time of the last backup; locations, the last error, "
            "file paths and the backup's folder for administrators only"
        ),
    )
    async def status(self, request: Request[Any, Any, Any]) -> StatusOut:
        ingest = request.app.state.ingestor.status
        # The route is public, but folder paths, workflow ids and errors name private projects.
        detailed = await to_thread.run_sync(_is_admin_request, request)
        last_backup = await to_thread.run_sync(_last_backup, request.app.state.catalog)
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
                write_error=_write_error(request, detailed),
            ),
            last_backup=None
            if last_backup is None
            else LastBackupOut(
                time=last_backup.time.strftime(TIME_FORMAT), path=last_backup.path if detailed else None
            ),
        )


def _last_backup(catalog: Catalog) -> LastBackup | None:
    """Return the catalog's last backup; None when the catalog cannot be read, so the status route still responds."""
    try:
        return catalog.backups.last()
    except (duckdb.Error, CatalogError) as error:
        logger.warning("the time of the last backup cannot be read: %s", str(error).splitlines()[0])
        return None


def _write_error(request: Request[Any, Any, Any], detailed: bool) -> str | None:
    """Return why the catalog cannot be written: the cause, with DuckDB's message for administrators only."""
    if detailed:
        return request.app.state.ingestor.status.write_error
    failure = request.app.state.catalog.store.write_fault
    return None if failure is None else failure.summary


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
    summary="Health check: 200 once the start-up scan is done and while the catalog can be read, 503 otherwise",
    description=(
        "`status` is `starting` during the start-up scan and `unhealthy` when the catalog cannot be read. "
        "Probes of a process manager should use `/health/live` and `/health/ready`."
    ),
    sync_to_thread=True,
    responses={
        503: ResponseSpec(
            data_container=HealthOut, description="The start-up scan is running, or the catalog cannot be read"
        )
    },
)
def health(request: Request[Any, Any, Any]) -> Response[HealthOut]:
    # Before `depictiod serve` accepted requests during the start-up scan, a first 200 meant
    # that the scan was done, and clients that wait for it can still rely on that.
    ingestor: Ingestor = request.app.state.ingestor
    if ingestor.status.startup in ("pending", "running"):
        return Response(HealthOut(status="starting", version=service_version()), status_code=503)
    error = catalog_read_error(request.app.state.catalog)
    if error is not None:
        logger.error("health check failed: the catalog cannot be read: %s", error)
        return Response(HealthOut(status="unhealthy", version=service_version()), status_code=503)
    return Response(HealthOut(status="healthy", version=service_version()))
