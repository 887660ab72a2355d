"""`/dashboards`: stored dashboards of a project, and their YAML and JSON files.

Access follows the dashboard's project: its readers list, read and export its dashboards,
its editors import, save and delete them, and its owners make it public or private. A
dashboard is public exactly when its project is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ClientException
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import FromPath, JSONBody, QueryParameter, RawBody

from api.access import Access, format_time
from api.dashboard_changes import (
    ImportOptions,
    ImportOutcome,
    ImportPlan,
    SaveRequest,
    new_dashboard_id,
    plan_delete,
    plan_save,
)
from api.dashboard_documents import (
    MAX_TITLE_LENGTH,
    CollectionIndex,
    check_references,
    collection_refs,
    dashboard_spec,
    export_yaml,
    invalid,
    json_safe,
    parse_yaml,
    rebind_collection_ids,
)
from api.dashboard_schemas import (
    CollectionRefOut,
    DashboardSummaryOut,
    DataIntegrityOut,
    DeleteOut,
    ExportSourceOut,
    ImportOut,
    JsonExportOut,
    JsonImportOut,
    PublicStatusIn,
    PublicStatusOut,
    SaveOut,
    TabOut,
)
from api.errors import error_responses
from catalog import DashboardRecord, ProjectRecord, utc_now
from config.ids import is_object_id

logger = logging.getLogger(__name__)

# Request bodies larger than this are rejected with 413. Depictio's example dashboards
# are 10 to 40 KiB of YAML.
MAX_DASHBOARD_BYTES = 2 * 2**20
EXPORT_VERSION = "1.0"


@dataclass
class _YamlBodyOperation(Operation):
    """The OpenAPI operation of the YAML import, whose body is text rather than JSON."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            content={"text/plain": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))},
            description="A dashboard YAML file: one dashboard, or `main_dashboard` with its `tabs`",
            required=True,
        )


class DashboardController(Controller):
    path = "/dashboards"
    tags = ["dashboards"]

    @get(
        "/list",
        sync_to_thread=True,
        opt={"access": "read"},
        responses=error_responses(400, 401, 404),
        summary="The dashboards of the projects the user may read",
    )
    def list_dashboards(
        self,
        access: NamedDependency[Access],
        include_child_tabs: Annotated[bool, QueryParameter(description="list child tabs too")] = False,
        project_id: Annotated[str | None, QueryParameter(description="only this project's dashboards")] = None,
    ) -> list[DashboardSummaryOut]:
        projects = [access.project(project_id)] if project_id is not None else access.projects()
        by_id = {project.id: project for project in projects}
        return [
            _summary(record, by_id[record.project_id])
            for record in access.catalog.dashboards.list(list(by_id))
            if include_child_tabs or record.is_main_tab
        ]

    @get(
        "/get/{dashboard_id:str}",
        sync_to_thread=True,
        responses=error_responses(400, 401, 404),
        opt={"access": "read"},
        summary="One dashboard",
    )
    def get_dashboard(self, access: NamedDependency[Access], dashboard_id: FromPath[str]) -> dict[str, Any]:
        """Return the dashboard's content with the fields depictiod manages, and its project's permissions."""
        record, project = access.dashboard(dashboard_id)
        document = {
            **record.definition,
            **msgspec.to_builtins(_summary(record, project)),
            "source_key": record.source_key,
            "permissions": msgspec.to_builtins(access.permissions(project.project)),
        }
        parent = access.catalog.dashboards.get(record.parent_id) if record.parent_id else None
        if parent is not None:
            document["parent_dashboard_title"] = parent.title
        return document

    @post(
        "/save/{dashboard_id:str}",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "write"},
        responses=error_responses(400, 401, 403, 404, 409, 413),
        request_max_body_size=MAX_DASHBOARD_BYTES,
        summary="Create or replace a dashboard under this id (editors)",
        description=(
            "The body is the whole dashboard: `title`, for a new dashboard `project_id`, and its content "
            "(`components` that name data by `workflow_tag` and `data_collection_tag`, or Depictio's viewer "
            "form `stored_metadata` with `dc_id`). A child tab sets `is_main_tab: false` and "
            "`parent_dashboard_id`. Every data collection named must be one of the project's (400 otherwise). "
            "A dashboard stays in its project; `permissions`, `is_public` and the times are the service's."
        ),
    )
    def save_dashboard(
        self, access: NamedDependency[Access], dashboard_id: FromPath[str], data: JSONBody[dict[str, Any]]
    ) -> SaveOut:
        if not is_object_id(dashboard_id):
            raise ClientException(f"invalid dashboard id {dashboard_id!r}: use 24 hexadecimal characters")
        request, body_project_id = _save_request(dashboard_id, data)
        project = _save_project(access, dashboard_id, body_project_id)
        check_references(CollectionIndex(project.project), project.name, [request.spec])

        user = access.signed_in_user()
        now = utc_now()
        record = access.catalog.dashboards.change_project(
            project.id, lambda existing: plan_save(existing, project.id, request, user.id, now)
        )
        action = "created" if record.version == 1 else "updated"
        logger.info(
            "dashboard %s (%r) of project %s %s by %s, version %d",
            record.id,
            record.title,
            project.id,
            action,
            user.email,
            record.version,
        )
        return SaveOut(message=f"dashboard {record.title!r} {action}", dashboard_id=record.id)

    @delete(
        "/delete/{dashboard_id:str}",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "write"},
        responses=error_responses(400, 401, 403, 404, 409),
        summary="Delete a dashboard, and the child tabs of a main dashboard (editors)",
    )
    def delete_dashboard(self, access: NamedDependency[Access], dashboard_id: FromPath[str]) -> DeleteOut:
        record, project = access.dashboard(dashboard_id)
        tabs = access.catalog.dashboards.change_project(project.id, lambda existing: plan_delete(existing, record.id))
        logger.info(
            "dashboard %s (%r) of project %s deleted by %s with %d child tabs",
            record.id,
            record.title,
            project.id,
            access.signed_in_user().email,
            len(tabs),
        )
        message = f"deleted dashboard {record.title!r} ({record.id})"
        if tabs:
            message += f" and its {len(tabs)} child tabs"
        return DeleteOut(message=message, child_tabs_deleted=len(tabs))

    @post(
        "/toggle_public_status/{dashboard_id:str}",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "manage"},
        responses=error_responses(400, 401, 403, 404, 413),
        summary="Make a dashboard's project, and so all its dashboards, public or private (owners)",
        description=(
            "A dashboard is public exactly when its project is, so this sets the project's visibility, as "
            "`POST /projects/toggle_public_private/{project_id}` does. The change is kept in the catalog "
            "until `is_public` in the project's YAML file changes."
        ),
    )
    def toggle_public_status(
        self, access: NamedDependency[Access], dashboard_id: FromPath[str], data: JSONBody[PublicStatusIn]
    ) -> PublicStatusOut:
        record, project = access.dashboard(dashboard_id)
        user = access.signed_in_user()
        access.catalog.projects.set_public(project.id, data.is_public, changed_by=user.email)
        dashboards = access.catalog.dashboards.list([project.id])
        tabs = sum(1 for item in dashboards if not item.is_main_tab)
        visibility = "public" if data.is_public else "private"
        logger.info(
            "project %s (%s) made %s by %s through dashboard %s",
            project.name,
            project.id,
            visibility,
            user.email,
            record.id,
        )
        return PublicStatusOut(
            success=True,
            message=f"project {project.name!r} and its {len(dashboards)} dashboards are {visibility}",
            is_public=data.is_public,
            dashboards_updated=len(dashboards) - tabs,
            child_tabs_updated=tabs,
        )

    @post(
        "/import/yaml",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "write"},
        responses=error_responses(400, 401, 403, 404, 409, 413),
        request_max_body_size=MAX_DASHBOARD_BYTES,
        operation_class=_YamlBodyOperation,
        summary="Import a dashboard YAML file into a project (editors)",
        description=(
            "The body is the YAML text (`Content-Type: text/plain`). The project is `project_id`, else the "
            "project named by the file's `project_tag` (or `main_dashboard.project_tag`). A dashboard the "
            "project has, found by `source_key` and then by title, is a conflict (409) unless `existing` is "
            "`replace` (or `overwrite` is true) or `keep`. Every data collection named must be one of the "
            "project's (400 otherwise). `status` is what the import did: created, replaced or kept."
        ),
    )
    def import_yaml(
        self,
        access: NamedDependency[Access],
        body: RawBody,
        project_id: Annotated[
            str | None, QueryParameter(description="the project; else the file's project_tag")
        ] = None,
        overwrite: Annotated[bool, QueryParameter(description="replace a dashboard the project has")] = False,
        existing: Annotated[
            Literal["keep", "replace"] | None,
            QueryParameter(description="keep or replace a dashboard the project has; takes precedence over overwrite"),
        ] = None,
        source_key: Annotated[str | None, QueryParameter(description="the stable origin of the file")] = None,
        keep_titles: Annotated[bool, QueryParameter(description="a replaced dashboard keeps its title")] = False,
        main_title: Annotated[str | None, QueryParameter(description="the title of the main dashboard")] = None,
        parent_source_key: Annotated[
            str | None, QueryParameter(description="the source_key of a child tab's main dashboard")
        ] = None,
    ) -> ImportOut:
        if main_title is not None and len(main_title) > MAX_TITLE_LENGTH:
            raise invalid(f"main_title has {len(main_title)} characters; the maximum is {MAX_TITLE_LENGTH}")
        parsed = parse_yaml(body)
        project = _named_project(access, project_id, parsed.project_tag, "project_tag")
        specs = [parsed.main, *(parsed.tabs or [])]
        check_references(CollectionIndex(project.project), project.name, specs)

        options = ImportOptions(
            overwrite=existing == "replace" if existing is not None else overwrite,
            keep=existing == "keep",
            source_key=source_key or None,
            keep_titles=keep_titles,
            main_title=main_title or None,
            parent_source_key=parent_source_key or None,
        )
        user = access.signed_in_user()
        plan = ImportPlan(project_id=project.id, user_id=user.id, now=utc_now(), options=options)
        tabs = parsed.tabs
        outcome: ImportOutcome = access.catalog.dashboards.change_project(
            project.id,
            lambda found: plan.single(found, parsed.main) if tabs is None else plan.family(found, parsed.main, tabs),
        )
        logger.info(
            "dashboard %s (%r) of project %s %s from YAML by %s%s",
            outcome.dashboard.id,
            outcome.dashboard.title,
            project.id,
            outcome.status,
            user.email,
            f" with {len(outcome.tabs)} tabs" if outcome.tabs is not None else "",
        )
        return _import_out(outcome, project)

    @get(
        "/{dashboard_id:str}/yaml",
        sync_to_thread=True,
        opt={"access": "read"},
        responses=error_responses(400, 401, 404),
        media_type="application/x-yaml",
        summary="A dashboard as a YAML file, with its tabs for a main dashboard",
        description="`POST /dashboards/import/yaml` reads the file back. Data collections are named by their tags.",
    )
    def export_yaml(self, access: NamedDependency[Access], dashboard_id: FromPath[str]) -> Response[str]:
        record, project = access.dashboard(dashboard_id)
        tabs = access.catalog.dashboards.tabs(record.id) if record.is_main_tab else []
        parent = access.catalog.dashboards.get(record.parent_id) if record.parent_id else None
        text = export_yaml(
            record, project.name, CollectionIndex(project.project), tabs, parent.title if parent else None
        )
        return Response(
            content=text,
            media_type="application/x-yaml",
            headers={"Content-Disposition": f'attachment; filename="dashboard-{record.id}.yaml"'},
        )

    @get(
        "/{dashboard_id:str}/json",
        sync_to_thread=True,
        opt={"access": "read"},
        responses=error_responses(400, 401, 404),
        summary="A dashboard as a JSON export, with the data collections it reads",
        description="`POST /dashboards/import/json` reads the export back, into this or another project.",
    )
    def export_json(self, access: NamedDependency[Access], dashboard_id: FromPath[str]) -> JsonExportOut:
        record, project = access.dashboard(dashboard_id)
        index = CollectionIndex(project.project)
        refs = [
            CollectionRefOut(workflow_tag=workflow_tag, data_collection_tag=tag, data_collection_id=collection_id)
            for workflow_tag, tag, collection_id in collection_refs(index, record.definition)
        ]
        return JsonExportOut(
            export_version=EXPORT_VERSION,
            export_timestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            export_source=ExportSourceOut(dashboard_id=record.id, project_tag=project.name),
            dashboard={**record.definition, "title": record.title},
            data_integrity=DataIntegrityOut(data_collections=refs),
        )

    @post(
        "/import/json",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "write"},
        responses=error_responses(400, 401, 403, 404, 409, 413),
        request_max_body_size=MAX_DASHBOARD_BYTES,
        summary="Import a JSON export as a new dashboard (editors)",
        description=(
            "The project is `project_id`, else the project named by `_export_source.project_tag`. The import "
            "always creates a new main dashboard. A component whose `dc_id` is not the project's is bound to "
            "the project's collection with the same tags; every data collection named must be one of the "
            "project's (400 otherwise)."
        ),
    )
    def import_json(
        self,
        access: NamedDependency[Access],
        data: JSONBody[dict[str, Any]],
        project_id: Annotated[
            str | None, QueryParameter(description="the project; else `_export_source.project_tag`")
        ] = None,
    ) -> JsonImportOut:
        version = data.get("_depictio_export_version")
        if version != EXPORT_VERSION:
            raise ClientException(
                f"invalid request: _depictio_export_version is {version!r}; this service reads version {EXPORT_VERSION!r}"
            )
        dashboard = json_safe(data.get("dashboard"))
        if not isinstance(dashboard, dict):
            raise invalid("dashboard is missing or not an object; send the body of GET /dashboards/{id}/json")
        source = data.get("_export_source")
        project_tag = source.get("project_tag") if isinstance(source, dict) else None
        project = _named_project(
            access, project_id, project_tag if isinstance(project_tag, str) else None, "_export_source.project_tag"
        )

        index = CollectionIndex(project.project)
        spec = dashboard_spec(rebind_collection_ids(dashboard, index), "dashboard", in_family=True)
        check_references(index, project.name, [spec])
        user = access.signed_in_user()
        request = SaveRequest(dashboard_id=new_dashboard_id(), spec=spec, parent_id=None)
        now = utc_now()
        record = access.catalog.dashboards.change_project(
            project.id, lambda existing: plan_save(existing, project.id, request, user.id, now)
        )
        logger.info(
            "dashboard %s (%r) of project %s imported from JSON by %s", record.id, record.title, project.id, user.email
        )
        return JsonImportOut(
            success=True,
            message=f"dashboard {record.title!r} imported",
            dashboard_id=record.id,
            title=record.title,
            project_id=project.id,
        )


def _summary(record: DashboardRecord, project: ProjectRecord) -> DashboardSummaryOut:
    subtitle = record.definition.get("subtitle")
    return DashboardSummaryOut(
        dashboard_id=record.id,
        title=record.title,
        project_id=record.project_id,
        subtitle=subtitle if isinstance(subtitle, str) else "",
        version=record.version,
        is_public=project.project.is_public,
        is_main_tab=record.is_main_tab,
        parent_dashboard_id=record.parent_id,
        tab_order=record.tab_order,
        creation_time=format_time(record.creation_time) or "",
        last_saved_ts=format_time(record.last_saved_ts) or "",
    )


def _import_out(outcome: ImportOutcome, project: ProjectRecord) -> ImportOut:
    messages = {"created": "dashboard imported", "replaced": "dashboard replaced", "kept": "dashboard kept as it is"}
    message = messages[outcome.status]
    if outcome.tabs_added:
        message += f"; {outcome.tabs_added} tabs added"
    return ImportOut(
        success=True,
        updated=outcome.status == "replaced",
        status=outcome.status,  # type: ignore[arg-type]
        message=message,
        dashboard_id=outcome.dashboard.id,
        title=outcome.dashboard.title,
        project_id=project.id,
        dash_url=None,
        tabs=[TabOut(title=tab.title, dashboard_id=tab.id) for tab in outcome.tabs]
        if outcome.tabs is not None
        else None,
        tabs_added=outcome.tabs_added,
    )


def _named_project(access: Access, project_id: str | None, project_tag: str | None, tag_field: str) -> ProjectRecord:
    """Return the project of an import: `project_id`, else the project whose name is the file's tag."""
    if project_id is not None:
        return access.project(project_id)
    if project_tag is None:
        raise ClientException(
            f"invalid request: no project named; send the query parameter project_id or set {tag_field} "
            "to the project's name"
        )
    return access.project_by_name(project_tag)


def _save_request(dashboard_id: str, data: dict[str, Any]) -> tuple[SaveRequest, str | None]:
    """Read the body of a save: the dashboard, its tab fields and the project it names, if any."""
    document = json_safe(data)
    named_id = document.get("dashboard_id")
    if named_id is not None and named_id != dashboard_id:
        raise invalid(f"dashboard_id {named_id!r} in the body differs from {dashboard_id!r} in the path")
    project_id = document.get("project_id")
    if project_id is not None and not is_object_id(project_id):
        raise invalid(f"project_id must be 24 hexadecimal characters, not {project_id!r}")

    spec = dashboard_spec(document, "", in_family=True)
    is_main_tab = document.get("is_main_tab", True)
    if not isinstance(is_main_tab, bool):
        raise invalid(f"is_main_tab must be true or false, not {is_main_tab!r}")
    tab_order = document.get("tab_order", 0)
    if not isinstance(tab_order, int) or isinstance(tab_order, bool) or tab_order < 0:
        raise invalid(f"tab_order must be a whole number of at least 0, not {tab_order!r}")
    parent_id = document.get("parent_dashboard_id")
    if is_main_tab:
        parent_id = None
    elif not is_object_id(parent_id):
        raise invalid(
            f"parent_dashboard_id must name the main dashboard of a child tab (is_main_tab: false), not {parent_id!r}"
        )
    spec = replace(spec, tab_order=tab_order)
    return SaveRequest(dashboard_id=dashboard_id, spec=spec, parent_id=parent_id), project_id


def _save_project(access: Access, dashboard_id: str, body_project_id: str | None) -> ProjectRecord:
    """Return the project of a save: the dashboard's own, or for a new dashboard the project the body names."""
    if access.catalog.dashboards.get(dashboard_id) is not None:
        _, project = access.dashboard(dashboard_id)
        if body_project_id is not None and body_project_id != project.id:
            raise invalid(
                f"dashboard {dashboard_id!r} belongs to project {project.id!r}, not {body_project_id!r}; a dashboard "
                "stays in its project, so export it and import it into the other project instead"
            )
        return project
    if body_project_id is None:
        raise invalid("project_id is missing; a new dashboard needs the id of its project")
    return access.project(body_project_id)
