"""Fetch catalog records for the signed-in user, applying the access rule of api.policy.

A record the user may not read is reported exactly like a missing one (404), so ids of
other groups' projects cannot be probed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from litestar import Request
from litestar.exceptions import NotFoundException

from api import policy
from api.schemas import TIME_FORMAT, PermissionsOut, UserRef
from catalog import Catalog, CollectionRecord, ProjectRecord, RunRecord, UserRecord, WorkflowRecord
from config import Project


def format_time(value: datetime | None) -> str | None:
    return value.strftime(TIME_FORMAT) if value is not None else None


class Access:
    """The catalog as one signed-in user sees it."""

    def __init__(self, catalog: Catalog, user: UserRecord, admin_id: str) -> None:
        self.catalog = catalog
        self.user = user
        self.admin_id = admin_id

    def projects(self) -> list[ProjectRecord]:
        return policy.readable_projects(self.catalog, self.user, self.admin_id)

    def project(self, project_id: str) -> ProjectRecord:
        record = self.catalog.projects.get(project_id)
        if record is None or not policy.can_read(self.user, record, self.admin_id):
            raise NotFoundException(f"project {project_id!r} not found")
        return record

    def project_by_name(self, name: str) -> ProjectRecord:
        record = self.catalog.projects.get_by_name(name)
        if record is None or not policy.can_read(self.user, record, self.admin_id):
            raise NotFoundException(f"project {name!r} not found")
        return record

    def workflow(self, workflow_id: str) -> tuple[WorkflowRecord, ProjectRecord]:
        record = self.catalog.projects.workflow(workflow_id)
        project = self.catalog.projects.get(record.project_id) if record else None
        if record is None or project is None or not policy.can_read(self.user, project, self.admin_id):
            raise NotFoundException(f"workflow {workflow_id!r} not found")
        return record, project

    def collection(self, collection_id: str) -> tuple[CollectionRecord, ProjectRecord]:
        record = self.catalog.projects.collection(collection_id)
        project = self.catalog.projects.get(record.project_id) if record else None
        if record is None or project is None or not policy.can_read(self.user, project, self.admin_id):
            raise NotFoundException(f"data collection {collection_id!r} not found")
        return record, project

    def run(self, run_id: str) -> tuple[RunRecord, ProjectRecord]:
        record = self.catalog.runs.get(run_id)
        if record is None:
            raise NotFoundException(f"run {run_id!r} not found")
        try:
            _, project = self.workflow(record.workflow_id)
        except NotFoundException:
            raise NotFoundException(f"run {run_id!r} not found") from None
        return record, project

    def permissions(self, project: Project) -> PermissionsOut:
        """Return the project's permissions with each member as a user reference."""
        owners = policy.owner_ids(project, self.admin_id)
        editors: set[str] = set()
        viewers: list[UserRef | str] = []
        if project.permissions is not None:
            editors = policy.member_ids(project.permissions.editors)
            if "*" in project.permissions.viewers:
                viewers.append("*")
            viewers.extend(self._refs(policy.member_ids([v for v in project.permissions.viewers if v != "*"])))
        return PermissionsOut(owners=self._refs(owners), editors=self._refs(editors), viewers=viewers)

    def _refs(self, user_ids: set[str]) -> list[UserRef]:
        refs = []
        for user_id in sorted(user_ids):
            user = self.catalog.users.get(user_id)
            if user is not None:
                refs.append(UserRef(id=user.id, email=user.email, is_admin=user.is_admin))
        return refs


def provide_access(request: Request[Any, Any, Any]) -> Access:
    state = request.app.state
    return Access(state.catalog, request.user, state.admin_id)
