"""`/workflows`: workflows of readable projects."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.params import FromPath, FromQuery, QueryParameter

from api.access import Access, raise_for
from api.errors import error_responses
from api.schemas import rename_ids
from catalog import ConflictError, WorkflowRecord


class WorkflowController(Controller):
    path = "/workflows"
    tags = ["workflows"]

    @get(
        "/get/from_id",
        sync_to_thread=True,
        opt={"access": "read"},
        responses=error_responses(400, 401, 404),
        summary="One workflow as a raw document with its project_id",
    )
    def get_from_id(self, access: NamedDependency[Access], workflow_id: FromQuery[str]) -> dict[str, Any]:
        record, _ = access.workflow(workflow_id)
        return _document(record)

    @get(
        "/get_all_workflows",
        sync_to_thread=True,
        opt={"access": "read"},
        responses=error_responses(401),
        summary="Every workflow of the projects the user may read, as raw documents with their project_id",
    )
    def get_all_workflows(self, access: NamedDependency[Access]) -> list[dict[str, Any]]:
        return [_document(record) for record in _readable_workflows(access)]

    @get(
        "/get/from_args",
        sync_to_thread=True,
        opt={"access": "read"},
        responses=error_responses(400, 401, 404, 409),
        summary="The one readable workflow with this name and engine, as a raw document with its project_id",
        description=(
            "404 when no readable workflow matches; 409 when several readable projects have a workflow "
            "of this name and engine, because then the name does not identify one (use /get/from_id)."
        ),
    )
    def get_from_args(
        self,
        access: NamedDependency[Access],
        name: Annotated[str, QueryParameter(description="the workflow's name")],
        engine: Annotated[str, QueryParameter(description="the name of the workflow's engine, such as snakemake")],
    ) -> dict[str, Any]:
        found = [
            record
            for record in _readable_workflows(access)
            if record.workflow.name == name and record.workflow.engine.name == engine
        ]
        description = f"workflow {name!r} with engine {engine!r}"
        if not found:
            # Anonymous callers get 401 and signed-in ones 404, as for any object they may not read.
            raise_for(access.policy.decide(access.user, "read", None, missing=True), "read", description)
        if len(found) > 1:
            projects = ", ".join(repr(record.project_id) for record in found)
            raise ConflictError(
                f"{len(found)} readable workflows match {description}, in projects {projects}; "
                "ask /workflows/get/from_id with the workflow's id"
            )
        return _document(found[0])

    @get(
        "/get_tag_from_id/{workflow_id:str}",
        sync_to_thread=True,
        opt={"access": "read"},
        responses=error_responses(400, 401, 404),
        summary="The workflow's tag, as a bare JSON string",
        media_type=MediaType.JSON,
    )
    def get_tag_from_id(self, access: NamedDependency[Access], workflow_id: FromPath[str]) -> str:
        record, _ = access.workflow(workflow_id)
        # Projects loaded from YAML always have a tag; Depictio uses the name when there is none.
        tag = record.workflow.workflow_tag or record.workflow.name
        # Litestar sends a returned str as it is, so the JSON quoting happens here.
        return msgspec.json.encode(tag).decode()


def _document(record: WorkflowRecord) -> dict[str, Any]:
    document: dict[str, Any] = rename_ids(msgspec.to_builtins(record.workflow))
    document["project_id"] = record.project_id
    return document


def _readable_workflows(access: Access) -> list[WorkflowRecord]:
    """Return the workflows of the projects the user may read, in project name order."""
    records = []
    for project in access.projects():
        for workflow in project.project.workflows:
            assert workflow.id is not None
            records.append(WorkflowRecord(id=workflow.id, project_id=project.id, workflow=workflow))
    return records
