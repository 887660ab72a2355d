"""`/projects`: the projects the user may read."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from api.access import Access, format_time
from api.ingestion_report import build_ingestion_report
from api.schemas import IngestionReportOut, rename_ids
from catalog import ProjectRecord
from config import Permissions, Project


class ProjectController(Controller):
    path = "/projects"
    tags = ["projects"]

    @get("/get/all", sync_to_thread=True, opt={"access": "read"}, summary="Every project the user may read")
    def get_all(self, access: NamedDependency[Access]) -> list[Project]:
        return [project_model(access, record) for record in access.projects()]

    @get(
        "/get/from_id",
        sync_to_thread=True,
        opt={"access": "read"},
        summary="One project as a raw document (`_id` keys)",
    )
    def get_from_id(
        self, access: NamedDependency[Access], project_id: FromQuery[str], skip_enrichment: FromQuery[bool] = False
    ) -> dict[str, Any]:
        """Return the project with each data collection's `delta_location` and `last_aggregation`."""
        record = access.project(project_id)
        document = msgspec.to_builtins(project_model(access, record))
        if not skip_enrichment:
            for workflow in document["workflows"]:
                for collection in workflow["data_collections"]:
                    _enrich_collection(access, collection)
        result: dict[str, Any] = rename_ids(document)
        return result

    @get(
        "/get/from_name/{project_name:path}",
        sync_to_thread=True,
        opt={"access": "read"},
        summary="One project by its exact name",
    )
    def get_from_name(self, access: NamedDependency[Access], project_name: FromPath[str]) -> Project:
        """Return the project; the name may contain `/`, which the path parameter keeps."""
        return project_model(access, access.project_by_name(project_name.removeprefix("/")))

    @get(
        "/ingestion-report/{project_id:str}",
        sync_to_thread=True,
        opt={"access": "read"},
        summary="The latest ingestion state of a project",
        description=(
            "For each data collection: what the latest scan of its workflow found (files found, new, "
            "changed, removed, failed, still being written), the failed files with their reasons and "
            "line numbers, and the state of its table (rows, version, drift). `status` separates a "
            "collection that matched no file (`found_zero`, with a warning naming the locations and the "
            "pattern) from one with nothing new (`unchanged`) and from one whose files failed (`failed`). "
            "Readers of the project may ask; for anyone else the project does not exist (404)."
        ),
    )
    def ingestion_report(self, access: NamedDependency[Access], project_id: FromPath[str]) -> IngestionReportOut:
        return build_ingestion_report(access.catalog, access.project(project_id))


def project_model(access: Access, record: ProjectRecord) -> Project:
    """Return the stored project in Depictio's model form, with resolved permissions and times."""
    permissions = access.permissions(record.project)
    as_dicts = msgspec.to_builtins(permissions)
    return msgspec.structs.replace(
        record.project,
        permissions=Permissions(owners=as_dicts["owners"], editors=as_dicts["editors"], viewers=as_dicts["viewers"]),
        registration_time=format_time(record.registration_time),
        last_modified=format_time(record.last_modified),
    )


def _enrich_collection(access: NamedDependency[Access], collection: dict[str, Any]) -> None:
    table = access.catalog.tables.get(collection["id"])
    if table is None:
        return
    collection["delta_location"] = table.table_name
    collection["last_aggregation"] = {
        "aggregation_time": format_time(table.aggregation_time),
        "aggregation_version": table.aggregation_version,
        "aggregation_hash": table.aggregation_hash,
    }
