"""`/workflows`: workflows of readable projects."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromQuery

from api.access import Access
from api.schemas import rename_ids


class WorkflowController(Controller):
    path = "/workflows"
    tags = ["workflows"]

    @get(
        "/get/from_id",
        sync_to_thread=True,
        opt={"access": "read"},
        summary="One workflow as a raw document with its project_id",
    )
    def get_from_id(self, access: NamedDependency[Access], workflow_id: FromQuery[str]) -> dict[str, Any]:
        record, _ = access.workflow(workflow_id)
        document = rename_ids(msgspec.to_builtins(record.workflow))
        document["project_id"] = record.project_id
        result: dict[str, Any] = document
        return result
