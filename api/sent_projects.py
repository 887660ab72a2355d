"""Projects that clients send over the API: checks shared by the create and update routes."""

from __future__ import annotations

import os
from typing import Any

import msgspec
from litestar.exceptions import ClientException, PermissionDeniedException

from api.project_permissions import resolve_permissions
from api.schemas import PermissionsIn
from catalog import Catalog, UserRecord, email_key
from config import ConfigError, Permissions, Project, load_project_document
from ingestor.scan import under_any

# Problems listed in the response to an invalid project; the rest are counted.
MAX_PROBLEMS_SHOWN = 50


def checked_project(
    catalog: Catalog, user: UserRecord, body: Any, client_roots: list[str], stored: Project | None = None
) -> Project:
    """Return the project of a request body, checked as a project file is; raise a 4xx error otherwise.

    Members of its permissions must be existing users. A caller who is not an
    administrator becomes an owner when the body does not list them. Such a caller may
    place the workflow locations only under `client_roots`. With `stored`, the project
    being updated, its permissions and visibility are kept and the body's are ignored.
    """
    try:
        project = load_project_document(body)
    except ConfigError as error:
        shown = error.problems[:MAX_PROBLEMS_SHOWN]
        details = "; ".join(f"{problem.key_path or 'project'}: {problem.message}" for problem in shown)
        more = len(error.problems) - len(shown)
        if more:
            details += f"; and {more} more problems"
        raise ClientException(f"invalid project: {details}") from None
    if not user.is_admin:
        _check_locations(project, client_roots)
    if stored is not None:
        # An update keeps who may see and change the project, as Depictio does: those change
        # through /projects/update_project_permissions and /projects/toggle_public_private.
        return msgspec.structs.replace(project, permissions=stored.permissions, is_public=stored.is_public)
    return msgspec.structs.replace(project, permissions=_permissions(catalog, user, project.permissions))


def _permissions(catalog: Catalog, user: UserRecord, sent: Permissions | None) -> Permissions:
    sent = sent or Permissions()
    requested = PermissionsIn(
        owners=list(sent.owners),
        editors=list(sent.editors),
        viewers=list(sent.viewers),
        group_owners=list(sent.group_owners),
        group_editors=list(sent.group_editors),
        group_viewers=list(sent.group_viewers),
    )
    if (not user.is_admin or not requested.owners) and not any(_names(entry, user) for entry in requested.owners):
        # The creator owns the project and has no second role in it.
        requested.owners.append(user.id)
        requested.editors = [entry for entry in requested.editors if not _names(entry, user)]
        requested.viewers = [entry for entry in requested.viewers if not _names(entry, user)]
    return resolve_permissions(catalog, requested)


def _names(entry: str | dict[str, Any], user: UserRecord) -> bool:
    """Return True when a permissions entry (an id, an e-mail address or a user document) names `user`."""
    values = [entry] if isinstance(entry, str) else [entry.get("id"), entry.get("_id"), entry.get("email")]
    return any(
        isinstance(value, str) and (value == user.id or email_key(value) == email_key(user.email)) for value in values
    )


def _check_locations(project: Project, client_roots: list[str]) -> None:
    roots = [os.path.realpath(root) for root in client_roots]
    for index, workflow in enumerate(project.workflows):
        for position, location in enumerate(workflow.data_location.locations):
            if under_any(os.path.realpath(location), roots):
                continue
            allowed = ", ".join(repr(root) for root in client_roots) or "none are set"
            raise PermissionDeniedException(
                f"workflows[{index}].data_location.locations[{position}]: {location!r} is outside the folders "
                f"where users other than administrators may place projects (ingest.client_roots: {allowed}); "
                "ask an administrator to create the project or to add its folder to that setting"
            )
