"""Enforce each route's access rule, and fetch catalog records through it.

Every route handler declares `opt={"access": <rule>}` (see api.policy for the rules). The
guard `enforce_access_rule` runs before every handler. It rejects anonymous requests to
routes that need a sign-in (401) and non-administrators on administrator routes (403).
It also checks the object named by the path or query (`project_id`, `project_name`,
`workflow_id`, `data_collection_id`, `run_id`, `dashboard_id`) at the route's level. Handlers
fetch records through `Access`, which applies the same check again, so an object named in a
request body is checked too. A `dashboard_id` that does not exist passes the guard, because
`POST /dashboards/save/{dashboard_id}` creates it; every other dashboard route returns 404
for it from its handler.

Statuses: a signed-in user who may not read an object gets 404, exactly as for a missing
one, so ids of other groups' projects cannot be probed. One who may read it but not do
the action gets 403. An anonymous request that is not allowed gets 401.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from anyio import to_thread
from litestar import Litestar, Request
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from api.policy import LEVELS, RULES, Decision, Level, Policy, Rule, member_ids, owner_ids
from api.schemas import TIME_FORMAT, PermissionsOut, UserRef
from catalog import (
    Catalog,
    CollectionRecord,
    DashboardRecord,
    FileRecord,
    ProjectRecord,
    RunRecord,
    UserRecord,
    WorkflowRecord,
)
from config import Project

CHALLENGE = {"WWW-Authenticate": "Bearer"}
SIGN_IN_DETAIL = "not authenticated: send the header 'Authorization: Bearer <token>'"

_DENY_DETAIL = {
    "admin": "this route is for administrators only",
    "write": "you may read {description} but not change it: that needs the editor or owner role in its project",
    "manage": "you may read {description} but not manage it: that needs the owner role in its project",
}


class MissingRuleError(Exception):
    """Raised when a route handler declares no access rule, or an unknown one."""


def format_time(value: datetime | None) -> str | None:
    return value.strftime(TIME_FORMAT) if value is not None else None


def route_rule(handler: BaseRouteHandler) -> Rule:
    """Return the access rule a route handler declares in `opt["access"]`.

    The OPTIONS handlers that Litestar adds to every path declare none; they only list the
    allowed methods, so they are public.
    """
    rule = handler.opt.get("access")
    if rule is None and getattr(handler, "http_methods", None) == {"OPTIONS"}:
        return "public"
    if rule not in RULES:
        raise MissingRuleError(
            f"route handler {handler.handler_name!r} ({', '.join(sorted(handler.paths))}) declares the access "
            f"rule {rule!r}; add opt={{'access': <rule>}} with one of {', '.join(RULES)}"
        )
    return cast(Rule, rule)


def check_route_rules(app: Litestar) -> None:
    """Raise MissingRuleError naming every route handler of `app` without a valid access rule."""
    problems = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            try:
                route_rule(handler)
            except MissingRuleError as error:
                problems.append(str(error))
    if problems:
        raise MissingRuleError("; ".join(problems))


def raise_for(decision: Decision, rule: Rule, description: str) -> None:
    """Raise the HTTP error of a decision that does not allow the request."""
    if decision is Decision.ALLOW:
        return
    if decision is Decision.SIGN_IN:
        raise NotAuthorizedException(SIGN_IN_DETAIL, headers=CHALLENGE)
    if decision is Decision.HIDE:
        raise NotFoundException(f"{description} not found")
    raise PermissionDeniedException(_DENY_DETAIL.get(rule, "not allowed").format(description=description))


class Access:
    """The catalog within the rights of one request: it returns records only when the rule allows it."""

    def __init__(self, catalog: Catalog, policy: Policy, user: UserRecord | None, rule: Rule) -> None:
        self.catalog = catalog
        self.policy = policy
        self.user = user
        self.rule = rule
        # Objects are checked at the route's level; routes without a level read.
        self.level: Level = cast(Level, rule) if rule in LEVELS else "read"

    def signed_in_user(self) -> UserRecord:
        """Return the signed-in user; raise 401 for an anonymous request."""
        if self.user is None:
            raise NotAuthorizedException(SIGN_IN_DETAIL, headers=CHALLENGE)
        return self.user

    def require_rule(self) -> None:
        """Check the route's rule for a request that names no object."""
        raise_for(self.policy.decide(self.user, self.rule), self.rule, "this route")

    def projects(self) -> list[ProjectRecord]:
        """Return the projects the user may read."""
        return self.policy.readable(self.user, self.catalog.projects.list())

    def project(self, project_id: str, level: Level | None = None) -> ProjectRecord:
        record = self.catalog.projects.get(project_id)
        self._check(record, record is None, f"project {project_id!r}", level)
        assert record is not None
        return record

    def project_by_name(self, name: str, level: Level | None = None) -> ProjectRecord:
        record = self.catalog.projects.get_by_name(name)
        self._check(record, record is None, f"project {name!r}", level)
        assert record is not None
        return record

    def workflow(self, workflow_id: str, level: Level | None = None) -> tuple[WorkflowRecord, ProjectRecord]:
        record = self.catalog.projects.workflow(workflow_id)
        project = self.catalog.projects.get(record.project_id) if record else None
        self._check(project, record is None or project is None, f"workflow {workflow_id!r}", level)
        assert record is not None and project is not None
        return record, project

    def collection(self, collection_id: str, level: Level | None = None) -> tuple[CollectionRecord, ProjectRecord]:
        record = self.catalog.projects.collection(collection_id)
        project = self.catalog.projects.get(record.project_id) if record else None
        self._check(project, record is None or project is None, f"data collection {collection_id!r}", level)
        assert record is not None and project is not None
        return record, project

    def run(self, run_id: str, level: Level | None = None) -> tuple[RunRecord, ProjectRecord]:
        record = self.catalog.runs.get(run_id)
        workflow = self.catalog.projects.workflow(record.workflow_id) if record else None
        project = self.catalog.projects.get(workflow.project_id) if workflow else None
        self._check(project, project is None, f"run {run_id!r}", level)
        assert record is not None and project is not None
        return record, project

    def file(self, file_id: str, level: Level | None = None) -> tuple[FileRecord, ProjectRecord]:
        record = self.catalog.files.get(file_id)
        collection = self.catalog.projects.collection(record.data_collection_id) if record else None
        project = self.catalog.projects.get(collection.project_id) if collection else None
        self._check(project, project is None, f"file {file_id!r}", level)
        assert record is not None and project is not None
        return record, project

    def dashboard(self, dashboard_id: str, level: Level | None = None) -> tuple[DashboardRecord, ProjectRecord]:
        record = self.catalog.dashboards.get(dashboard_id)
        project = self.catalog.projects.get(record.project_id) if record else None
        self._check(project, project is None, f"dashboard {dashboard_id!r}", level)
        assert record is not None and project is not None
        return record, project

    def existing_dashboard(self, dashboard_id: str) -> None:
        """Check a dashboard at the route's level when it exists; a new id is left to the handler."""
        if self.catalog.dashboards.get(dashboard_id) is not None:
            self.dashboard(dashboard_id)
            return
        self.require_rule()

    def _check(self, project: ProjectRecord | None, missing: bool, description: str, level: Level | None) -> None:
        rule = level or self.level
        raise_for(self.policy.decide(self.user, rule, project, missing=missing), rule, description)

    def permissions(self, project: Project) -> PermissionsOut:
        """Return the project's permissions with each member as a user reference."""
        owners = owner_ids(project, self.policy.default_owner)
        editors: set[str] = set()
        viewers: list[UserRef | str] = []
        if project.permissions is not None:
            editors = member_ids(project.permissions.editors)
            if "*" in project.permissions.viewers:
                viewers.append("*")
            viewers.extend(self._refs(member_ids(project.permissions.viewers)))
        return PermissionsOut(owners=self._refs(owners), editors=self._refs(editors), viewers=viewers)

    def _refs(self, user_ids: set[str]) -> list[UserRef]:
        refs = []
        for user_id in sorted(user_ids):
            user = self.catalog.users.get(user_id)
            if user is not None:
                refs.append(UserRef(id=user.id, email=user.email, is_admin=user.is_admin))
        return refs


def access_for(connection: ASGIConnection[Any, Any, Any, Any]) -> Access:
    """Return the Access of a request, under the rule of the route it reached."""
    state = connection.app.state
    # Paths excluded from authentication carry no user at all: they are anonymous.
    user: UserRecord | None = connection.scope.get("user")
    return Access(state.catalog, state.policy, user, route_rule(connection.route_handler))


def provide_access(request: Request[Any, Any, Any]) -> Access:
    return access_for(request)


# Path and query parameters that name an object, and how the guard fetches it.
_TARGETS: dict[str, Callable[[Access, str], object]] = {
    "project_id": Access.project,
    "project_name": Access.project_by_name,
    "workflow_id": Access.workflow,
    "data_collection_id": Access.collection,
    "run_id": Access.run,
    "dashboard_id": Access.existing_dashboard,
}


async def enforce_access_rule(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Guard of every route: apply its access rule before the handler runs."""
    access = access_for(connection)
    named = []
    for name, fetch in _TARGETS.items():
        value = connection.path_params.get(name, connection.query_params.get(name))
        if value is None:
            continue
        # A path parameter of type path keeps its leading slash, as the handler's does.
        named.append((fetch, str(value).removeprefix("/") if name == "project_name" else str(value)))

    if access.rule not in LEVELS or not named:
        access.require_rule()
        return
    for fetch, value in named:
        await to_thread.run_sync(fetch, access, value)
