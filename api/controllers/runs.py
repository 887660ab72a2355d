"""`/runs`: the runs of a workflow, and the runs that clients register and delete."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ClientException
from litestar.params import FromPath, JSONBody

from api.access import Access, format_time
from api.errors import error_responses
from api.registration import run_record, sent_workflow
from api.registry_schemas import DeleteBatchOut, DeletedOut, RunBatchIn, RunIdsIn, UpsertOut
from api.schemas import PermissionsOut, RunDocument, RunOut
from catalog import ConflictError, RunRecord
from ingestor import Ingestor

logger = logging.getLogger(__name__)


class RunController(Controller):
    path = "/runs"
    tags = ["runs"]

    @get(
        "/list/{workflow_id:str}",
        sync_to_thread=True,
        opt={"access": "read"},
        responses=error_responses(400, 401, 404),
        summary="The runs of a workflow (`_id` keys)",
    )
    def list_runs(self, access: NamedDependency[Access], workflow_id: FromPath[str]) -> list[RunDocument]:
        _, project = access.workflow(workflow_id)
        permissions = access.permissions(project.project)
        runs = access.catalog.runs.list_for_workflow(workflow_id)
        # One query for the file ids of every run, not one per run.
        file_ids = access.catalog.runs.file_ids_by_run(workflow_id)
        return [RunDocument(**_run_fields(run, file_ids.get(run.id, []), permissions)) for run in runs]

    @get(
        "/get/{run_id:str}",
        sync_to_thread=True,
        responses=error_responses(400, 401, 404),
        opt={"access": "read"},
        summary="One run (`id` keys)",
    )
    def get_run(self, access: NamedDependency[Access], run_id: FromPath[str]) -> RunOut:
        run, project = access.run(run_id)
        file_ids = access.catalog.runs.file_ids(run.id)
        return RunOut(**_run_fields(run, file_ids, access.permissions(project.project)))

    @post(
        "/upsert_batch",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "write"},
        responses=error_responses(400, 401, 403, 404, 409, 413),
        summary="Register runs of one workflow (editors and owners)",
        description=(
            "Runs of a project sent over the API are stored with the ids the client chose. A run whose id "
            "is registered is replaced when `update` is true and counted in `existing_count` otherwise. "
            "All runs must belong to one workflow and have distinct tags, and a new run may not take the "
            "tag of another run of its workflow (409). The runs of a project from a project file are the "
            "ones depictiod finds in its folders: a batch for such a workflow is answered with every run "
            "counted as existing, and the workflow is scanned again."
        ),
    )
    def upsert_batch(
        self, request: Request[Any, Any, Any], access: NamedDependency[Access], data: JSONBody[RunBatchIn]
    ) -> UpsertOut:
        workflow_id = data.runs[0].workflow_id.lower()
        tags: dict[str, int] = {}
        ids: dict[str, int] = {}
        for index, run in enumerate(data.runs):
            if run.id is not None and run.id.lower() in ids:
                raise ClientException(
                    f"invalid request: runs[{index}].id: {run.id!r} appears twice in the batch "
                    f"(also runs[{ids[run.id.lower()]}])"
                )
            if run.id is not None:
                ids[run.id.lower()] = index
            if run.workflow_id.lower() != workflow_id:
                raise ClientException(
                    f"invalid request: runs[{index}].workflow_id: all runs of a batch must belong to workflow "
                    f"{workflow_id} (runs[0]); send one batch per workflow"
                )
            if run.run_tag in tags:
                raise ClientException(
                    f"invalid request: runs[{index}].run_tag: {run.run_tag!r} appears twice in the batch "
                    f"(also runs[{tags[run.run_tag]}]); tags are unique in a workflow"
                )
            tags[run.run_tag] = index
        workflow, project = sent_workflow(access, workflow_id, "runs[0].workflow_id")
        ingestor: Ingestor | None = getattr(request.app.state, "ingestor", None)
        if project.source != "api":
            if ingestor is not None:
                ingestor.request_rescan(workflow_id)
            return UpsertOut(
                success=True,
                message=(
                    f"workflow {workflow.name!r} is scanned by depictiod from its folders, so its runs are the "
                    "ones found there; a scan of the workflow was started"
                ),
                inserted_count=0,
                updated_count=0,
                existing_count=len(data.runs),
            )
        records = [run_record(run, index) for index, run in enumerate(data.runs)]
        counts = access.catalog.registry.upsert_runs(workflow_id, records, data.update)
        logger.info(
            "workflow %s (%s): %d runs registered by %s, %d updated, %d already there",
            workflow.name,
            workflow_id,
            counts.inserted,
            access.signed_in_user().email,
            counts.updated,
            counts.existing,
        )
        return UpsertOut(
            success=True,
            message=f"{counts.inserted} runs registered, {counts.updated} updated, {counts.existing} already registered",
            inserted_count=counts.inserted,
            updated_count=counts.updated,
            existing_count=counts.existing,
        )

    @delete(
        "/delete/{run_id:str}",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "write"},
        responses=error_responses(400, 401, 403, 404, 409),
        summary="Delete a run that a client registered (editors and owners)",
        description=(
            "The run's files stay registered until they are deleted too, as Depictio clients expect. "
            "A run that depictiod found in a workflow folder cannot be deleted (409): remove the folder."
        ),
    )
    def delete_run(self, access: NamedDependency[Access], run_id: FromPath[str]) -> DeletedOut:
        run, project = access.run(run_id)
        _check_sent(run, project.source)
        access.catalog.registry.delete_runs([run.id])
        logger.info("run %s (%s) deleted by %s", run.run_tag, run.id, access.signed_in_user().email)
        return DeletedOut(message=f"deleted run {run.run_tag!r} ({run.id})")

    @post(
        "/delete_batch",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "write"},
        responses=error_responses(400, 401, 403, 404, 409, 413),
        summary="Delete runs that clients registered, by id (editors and owners)",
        description=(
            "Ids that name no run are counted in `not_found`. A run the caller may not change gives "
            "404 or 403, and a run that depictiod found in a workflow folder gives 409; nothing is deleted then."
        ),
    )
    def delete_batch(self, access: NamedDependency[Access], data: JSONBody[RunIdsIn]) -> DeleteBatchOut:
        found = []
        for run_id in dict.fromkeys(item.lower() for item in data.run_ids):
            if access.catalog.runs.get(run_id) is None:
                continue
            run, project = access.run(run_id)
            _check_sent(run, project.source)
            found.append(run.id)
        counts = access.catalog.registry.delete_runs(found) if found else None
        deleted = counts.deleted if counts is not None else 0
        logger.info("%d of %d runs deleted by %s", deleted, len(data.run_ids), access.signed_in_user().email)
        return DeleteBatchOut(requested=len(data.run_ids), deleted=deleted, not_found=len(data.run_ids) - deleted)


def _check_sent(run: RunRecord, project_source: str) -> None:
    if run.origin != "client" or project_source != "api":
        raise ConflictError(
            f"run {run.run_tag!r} ({run.id}) was found by depictiod in {run.run_location!r}; it goes when that "
            "folder goes, at the next scan"
        )


def _run_fields(run: RunRecord, file_ids: list[str], permissions: PermissionsOut) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": run.id,
        "workflow_id": run.workflow_id,
        "run_tag": run.run_tag,
        "files_id": file_ids,
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
    if run.origin == "client":
        document = run.document
        fields["scan_results"] = document.get("scan_results") or []
        fields["flexible_metadata"] = document.get("flexible_metadata")
        fields["description"] = document.get("description")
        fields["hash"] = document.get("hash")
    return fields
