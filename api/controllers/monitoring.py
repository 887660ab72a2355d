"""`/monitoring/ingestion`: ingestions that a client such as `depictio ingest` reports while it runs.

Any signed-in user may start one. A first `depictio ingest` starts its ingestion before it
creates the project, so the project it names need not exist yet. The ingestion is filed
under the project, and shown in its scan list and ingestion report, once the project
exists and the user who started it may write it: at the start, or at a later step or
finish. Only that user and administrators may add steps or finish it; for anyone else it
does not exist (404).
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, HeaderParameter, JSONBody

from api.access import Access
from api.errors import error_responses
from api.monitoring import finished, new_ingestion, stored_ingestion, with_step
from api.monitoring_schemas import (
    IngestionFinishIn,
    IngestionFinishOut,
    IngestionStartIn,
    IngestionStartOut,
    IngestionStepIn,
    IngestionStepOut,
)
from api.policy import Decision
from catalog import ConflictError, ProjectRecord, ScanReport, utc_now

logger = logging.getLogger(__name__)

# Request bodies: a start or a step is small, a finish carries every step and collection.
MAX_START_BYTES = 64 * 1024
MAX_STEP_BYTES = 256 * 1024
MAX_FINISH_BYTES = 2 * 1024 * 1024


class MonitoringController(Controller):
    path = "/monitoring/ingestion"
    tags = ["monitoring"]

    @post(
        "/start",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "signed_in"},
        responses=error_responses(400, 401, 403, 404, 409, 413),
        request_max_body_size=MAX_START_BYTES,
        summary="Start recording a client ingestion; returns its run_id",
        description=(
            "A `project_id` of an existing project needs the editor role in it. One that does not "
            "exist yet is accepted: the ingestion is filed under it once it exists."
        ),
    )
    def start(
        self,
        access: NamedDependency[Access],
        data: JSONBody[IngestionStartIn],
        cli_host: Annotated[
            str | None, HeaderParameter(name="X-Depictio-CLI-Host", description="host name of the client")
        ] = None,
    ) -> IngestionStartOut:
        user = access.signed_in_user()
        project_id = None
        if data.project_id is not None and access.catalog.projects.get(data.project_id) is not None:
            project_id = access.project(data.project_id, "write").id
        elif data.project_id is None and data.project_name is not None:
            project_id = _writable_id(access, user.id, access.catalog.projects.get_by_name(data.project_name))

        run_id = data.run_id or str(uuid.uuid4())
        if data.run_id is not None and access.catalog.scans.exists(data.run_id):
            raise ConflictError(f"run_id: ingestion {data.run_id!r} exists already; leave run_id out to get a new id")
        report = new_ingestion(run_id, user.id, data, project_id, cli_host, utc_now())
        access.catalog.scans.add_client(report, user.id)
        logger.info(
            "client ingestion %s started by user %s: %s of project %s (%s)",
            run_id,
            user.id,
            data.command,
            data.project_name,
            project_id or data.project_id or "not registered yet",
        )
        return IngestionStartOut(run_id=run_id)

    @post(
        "/{ingestion_id:str}/step",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "signed_in"},
        responses=error_responses(400, 401, 404, 413),
        request_max_body_size=MAX_STEP_BYTES,
        summary="Add or replace one step of a client ingestion (by step name)",
    )
    def step(
        self,
        access: NamedDependency[Access],
        data: JSONBody[IngestionStepIn],
        ingestion_id: FromPath[str],
    ) -> IngestionStepOut:
        report = _own_ingestion(access, ingestion_id)
        project_id = _filed_project(access, report, None)
        now = utc_now()
        if access.catalog.scans.update_client(ingestion_id, lambda current: with_step(current, data, project_id, now)):
            return IngestionStepOut(run_id=ingestion_id, step=data.step.name)
        raise NotFoundException(f"ingestion {ingestion_id!r} not found")

    @post(
        "/{ingestion_id:str}/finish",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "signed_in"},
        responses=error_responses(400, 401, 404, 413),
        request_max_body_size=MAX_FINISH_BYTES,
        summary="Finish a client ingestion with its status, steps and collection summaries",
    )
    def finish(
        self, access: NamedDependency[Access], data: JSONBody[IngestionFinishIn], ingestion_id: FromPath[str]
    ) -> IngestionFinishOut:
        report = _own_ingestion(access, ingestion_id)
        project_id = _filed_project(access, report, data.project_id)
        now = utc_now()
        updated = access.catalog.scans.update_client(
            ingestion_id, lambda current: finished(current, data, project_id, now)
        )
        if updated is None:
            raise NotFoundException(f"ingestion {ingestion_id!r} not found")
        logger.info(
            "client ingestion %s finished with status %s, %d steps, project %s",
            ingestion_id,
            data.status,
            len(data.steps),
            project_id or "not registered",
        )
        return IngestionFinishOut(run_id=ingestion_id, status=data.status)


def _own_ingestion(access: Access, ingestion_id: str) -> ScanReport:
    """Return the ingestion when the caller started it or is an administrator; raise 404 otherwise."""
    user = access.signed_in_user()
    report = access.catalog.scans.get_client(ingestion_id)
    if report is None or (stored_ingestion(report).user_id != user.id and not user.is_admin):
        raise NotFoundException(f"ingestion {ingestion_id!r} not found")
    return report


def _filed_project(access: Access, report: ScanReport, named: str | None) -> str | None:
    """Return the project to file the ingestion under, as far as its starter may write it.

    `named` is the project id of a finish request. It moves the ingestion when its starter
    may write that project, and is ignored (with a log line) otherwise. Without it, an
    ingestion not yet filed is filed under the project named at its start, by id or by
    name, once that project exists.
    """
    stored = stored_ingestion(report)
    if named is not None:
        found = _writable_id(access, stored.user_id, access.catalog.projects.get(named))
        if found is not None:
            return found
        logger.warning(
            "client ingestion %s: not filed under project %s, which does not exist or which user %s may not write",
            report.id,
            named,
            stored.user_id,
        )
    if report.project_id is not None:
        return report.project_id

    if stored.requested_project_id is not None:
        return _writable_id(access, stored.user_id, access.catalog.projects.get(stored.requested_project_id))
    if stored.project_name is not None:
        return _writable_id(access, stored.user_id, access.catalog.projects.get_by_name(stored.project_name))
    return None


def _writable_id(access: Access, user_id: str, record: ProjectRecord | None) -> str | None:
    """Return the project's id when it exists and the user may write it, else None."""
    user = access.catalog.users.get(user_id)
    if record is None or user is None:
        return None
    return record.id if access.policy.decide(user, "write", record) is Decision.ALLOW else None
