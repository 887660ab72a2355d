"""`/projects`: the projects the user may read, and changes to their permissions and visibility."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency
from litestar.exceptions import ClientException
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from api.access import Access, format_time
from api.errors import error_responses
from api.ingestion_report import build_ingestion_report
from api.project_permissions import resolve_permissions
from api.registry_schemas import ProjectActionOut
from api.schemas import ActionOut, IngestionReportOut, ProjectPermissionRequest, VisibilityOut, rename_ids
from api.sent_projects import checked_project
from catalog import ProjectRecord
from config import Permissions, Project
from ingestor import Ingestor

logger = logging.getLogger(__name__)


class ProjectController(Controller):
    path = "/projects"
    tags = ["projects"]

    @get(
        "/get/all",
        sync_to_thread=True,
        responses=error_responses(401),
        opt={"access": "read"},
        summary="Every project the user may read",
    )
    def get_all(self, access: NamedDependency[Access]) -> list[Project]:
        return [project_model(access, record) for record in access.projects()]

    @get(
        "/get/from_id",
        sync_to_thread=True,
        opt={"access": "read"},
        responses=error_responses(400, 401, 404),
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
        responses=error_responses(400, 401, 404),
        summary="One project by its exact name",
    )
    def get_from_name(self, access: NamedDependency[Access], project_name: FromPath[str]) -> Project:
        """Return the project; the name may contain `/`, which the path parameter keeps."""
        return project_model(access, access.project_by_name(project_name.removeprefix("/")))

    @get(
        "/ingestion-report/{project_id:str}",
        sync_to_thread=True,
        opt={"access": "read"},
        responses=error_responses(400, 401, 404),
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

    @post(
        "/create",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "signed_in"},
        responses=error_responses(400, 401, 403, 409, 413),
        summary="Create a project from a whole Depictio project document",
        description=(
            "The body is a Depictio project with its workflows and data collections; the ids it gives are "
            "kept and its `hash` is stored as sent. It is checked like a project file (every problem is "
            "listed with its key, 400), its locations must be absolute paths, and a user who is not an "
            "administrator may place them only under `ingest.client_roots` (403). The caller becomes an "
            "owner. A taken id, name or child id is a 409. Clients then register the project's runs and "
            "files; depictiod reads each registered file from its location and keeps its table current."
        ),
    )
    def create(
        self, request: Request[Any, Any, Any], access: NamedDependency[Access], data: JSONBody[Any]
    ) -> ProjectActionOut:
        user = access.signed_in_user()
        project = checked_project(access.catalog, user, data, request.app.state.settings.ingest.client_roots)
        record = access.catalog.projects.create(project, placed_by=user.id)
        _ingest(request, record.id)
        logger.info("project %s (%s) created over the API by %s", record.name, record.id, user.email)
        return ProjectActionOut(success=True, message=f"project {record.name!r} created", project_id=record.id)

    @put(
        "/update",
        sync_to_thread=True,
        opt={"access": "manage"},
        responses=error_responses(400, 401, 403, 404, 409, 413),
        summary="Replace a project sent over the API with a new version of its document (owners and administrators)",
        description=(
            "The body is the whole project, checked as for `/projects/create`. Workflows and data "
            "collections it no longer lists are removed with their runs, files and tables. The project "
            "keeps its permissions and visibility: the body's are ignored, as Depictio does. A project "
            "from a project file in the service's settings cannot be changed here (409): edit its file."
        ),
    )
    def update(
        self, request: Request[Any, Any, Any], access: NamedDependency[Access], data: JSONBody[Any]
    ) -> ProjectActionOut:
        user = access.signed_in_user()
        project_id = data.get("id") or data.get("_id") if isinstance(data, dict) else None
        if not isinstance(project_id, str):
            raise ClientException("invalid project: id: the project to update must give its id")
        stored = access.project(project_id.lower())
        project = checked_project(
            access.catalog, user, data, request.app.state.settings.ingest.client_roots, stored.project
        )
        record = access.catalog.projects.update(project, placed_by=user.id)
        _ingest(request, record.id)
        logger.info("project %s (%s) updated over the API by %s", record.name, record.id, user.email)
        return ProjectActionOut(success=True, message=f"project {record.name!r} updated", project_id=record.id)

    @delete(
        "/delete",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "manage"},
        responses=error_responses(400, 401, 403, 404, 409),
        summary="Delete a project sent over the API, with its runs, files, tables and dashboards",
        description="Workflow files on disk are never touched. A project from a project file gives 409.",
    )
    def delete_project(
        self, request: Request[Any, Any, Any], access: NamedDependency[Access], project_id: FromQuery[str]
    ) -> ProjectActionOut:
        record = access.project(project_id)
        user = access.signed_in_user()
        access.catalog.projects.delete(record.id)
        _ingest(request, record.id)
        logger.info("project %s (%s) deleted over the API by %s", record.name, record.id, user.email)
        return ProjectActionOut(success=True, message=f"project {record.name!r} deleted", project_id=record.id)

    @post(
        "/update_project_permissions",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "manage"},
        responses=error_responses(400, 401, 403, 404, 413),
        summary="Replace the owners, editors and viewers of a project (owners and administrators)",
        description=(
            'Members are user ids, e-mail addresses or user documents with `id` and/or `email`; `"*"` '
            "among the viewers admits every signed-in user. Every member must exist, nobody may hold two "
            "roles and at least one owner must remain (400 otherwise). The change is kept in the catalog "
            "until the permissions in the project's YAML file change."
        ),
    )
    def update_permissions(
        self, access: NamedDependency[Access], data: JSONBody[ProjectPermissionRequest]
    ) -> ActionOut:
        record = access.project(data.project_id)
        permissions = resolve_permissions(access.catalog, data.permissions)
        user = access.signed_in_user()
        access.catalog.projects.set_permissions(record.id, permissions, changed_by=user.email)
        logger.info(
            "project %s (%s): permissions set by %s: %d owners, %d editors, %d viewers",
            record.name,
            record.id,
            user.email,
            len(permissions.owners),
            len(permissions.editors),
            len(permissions.viewers),
        )
        return ActionOut(success=True, message=f"updated the permissions of project {record.name!r} ({record.id})")

    @post(
        "/toggle_public_private/{project_id:str}",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "manage"},
        responses=error_responses(400, 401, 403, 404),
        summary="Make a project public or private (owners and administrators)",
        description=(
            "Signed-in users may read a public project; anonymous requests may too when the setting "
            "`auth.public_read` is on. The change is kept in the catalog until `is_public` in the project's "
            "YAML file changes."
        ),
    )
    def toggle_public_private(
        self,
        access: NamedDependency[Access],
        project_id: FromPath[str],
        is_public: Annotated[str, QueryParameter(description="true or false")],
    ) -> VisibilityOut:
        make_public = _parse_bool(is_public)
        record = access.project(project_id)
        user = access.signed_in_user()
        access.catalog.projects.set_public(record.id, make_public, changed_by=user.email)
        visibility = "public" if make_public else "private"
        logger.info("project %s (%s): made %s by %s", record.name, record.id, visibility, user.email)
        return VisibilityOut(
            success=True, message=f"project {record.name!r} ({record.id}) is {visibility}", is_public=make_public
        )


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


def _parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ClientException(f"invalid request: is_public must be true or false, not {value!r}")


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


def _ingest(request: Request[Any, Any, Any], project_id: str) -> None:
    """Tell the running ingestor that a project sent over the API was created, changed or deleted."""
    ingestor: Ingestor | None = getattr(request.app.state, "ingestor", None)
    if ingestor is not None:
        ingestor.project_changed(project_id)
