"""`/runs`: the runs of a workflow."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath

from api.access import Access, format_time
from api.schemas import PermissionsOut, RunDocument, RunOut
from catalog import RunRecord


class RunController(Controller):
    path = "/runs"
    tags = ["runs"]

    @get(
        "/list/{workflow_id:str}",
        sync_to_thread=True,
        opt={"access": "read"},
        summary="The runs of a workflow (`_id` keys)",
    )
    def list_runs(self, access: NamedDependency[Access], workflow_id: FromPath[str]) -> list[RunDocument]:
        _, project = access.workflow(workflow_id)
        permissions = access.permissions(project.project)
        return [
            RunDocument(**_run_fields(access, run, permissions))
            for run in access.catalog.runs.list_for_workflow(workflow_id)
        ]

    @get("/get/{run_id:str}", sync_to_thread=True, opt={"access": "read"}, summary="One run (`id` keys)")
    def get_run(self, access: NamedDependency[Access], run_id: FromPath[str]) -> RunOut:
        run, project = access.run(run_id)
        return RunOut(**_run_fields(access, run, access.permissions(project.project)))


def _run_fields(access: NamedDependency[Access], run: RunRecord, permissions: PermissionsOut) -> dict[str, Any]:
    return {
        "id": run.id,
        "workflow_id": run.workflow_id,
        "run_tag": run.run_tag,
        "files_id": access.catalog.runs.file_ids(run.id),
        "workflow_config_id": run.workflow_config_id,
        "run_location": run.run_location,
        "creation_time": format_time(run.creation_time),
        "last_modification_time": format_time(run.last_modification_time),
        "registration_time": format_time(run.registration_time),
        "run_hash": run.run_hash,
        "scan_results": [],
        "permissions": permissions,
        # Depictio's WorkflowRun has no parameters field and its CLI rejects extra keys, so
        # the parameters found in the run folder travel in flexible_metadata.
        "flexible_metadata": {"parameters": run.parameters} if run.parameters else None,
    }
