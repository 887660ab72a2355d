"""The one access rule that decides every request.

Every route declares a rule in its `opt`: `public` (no sign-in), `signed_in` (any signed-in
user, for their own account), `admin`, or one of the levels `read`, `write` and `manage`,
which hold against the project of the object that the request names. Runs, files,
collections, tables, scans and ingestion reports belong to a project and take its
permissions at request time; none carries a copy.

A user's role in a project comes from `permissions.owners`, `editors` and `viewers` (user
ids, e-mail addresses or user documents) and `is_public`:

- an administrator may do everything;
- an owner reads, writes and manages (changes permissions and visibility);
- an editor reads and writes data;
- a viewer, anyone when `"*"` is among the viewers, and anyone when the project is public,
  reads. Anonymous requests read public projects only when `auth.public_read` is on.
"""

from __future__ import annotations

import enum
from typing import Any, Literal, get_args

from catalog import ProjectRecord, UserRecord, user_id_for
from config import Project

Rule = Literal["public", "signed_in", "admin", "read", "write", "manage"]
Level = Literal["read", "write", "manage"]
Role = Literal["admin", "owner", "editor", "viewer", "reader"]

RULES: tuple[str, ...] = get_args(Rule)
LEVELS: tuple[str, ...] = get_args(Level)

# The highest level each role reaches; "reader" is anyone who reads through `"*"` or
# `is_public` without being listed.
_ROLE_LEVEL: dict[Role, int] = {"admin": 3, "owner": 3, "editor": 2, "viewer": 1, "reader": 1}
_LEVEL_RANK: dict[str, int] = {"read": 1, "write": 2, "manage": 3}


class Decision(enum.Enum):
    """The outcome of a request under the access rule, and the status it maps to."""

    ALLOW = "allow"
    # 401: the request carries no sign-in and needs one.
    SIGN_IN = "sign_in"
    # 404: the object does not exist, or the user may not read it.
    HIDE = "hide"
    # 403: the user may read the object but not do this to it, or the route is for administrators.
    DENY = "deny"


def member_ids(entries: list[str | dict[str, Any]]) -> set[str]:
    """Return the user ids named by permission entries (ids, e-mail addresses or user dicts)."""
    found: set[str] = set()
    for entry in entries:
        if isinstance(entry, dict):
            value = entry.get("id") or entry.get("_id") or entry.get("email")
        else:
            value = entry
        if not isinstance(value, str) or value == "*":
            continue
        found.add(user_id_for(value) if "@" in value else value)
    return found


def owner_ids(project: Project, default_owner: str) -> set[str]:
    """Return the owners to show for a project; a project file without owners shows the administrator."""
    if project.permissions is None or not project.permissions.owners:
        return {default_owner}
    return member_ids(project.permissions.owners)


def declared_owner_ids(project: Project) -> set[str]:
    """Return the owners that the project's permissions name.

    A project without owners has none: only administrators manage it. The account of
    `auth.admin_email` gets no role from being the default owner shown, because anyone
    could register that address once the administrator account is gone or renamed.
    """
    if project.permissions is None:
        return set()
    return member_ids(project.permissions.owners)


def named_user_ids(projects: list[Project]) -> set[str]:
    """Return the ids of every user that a project's permissions name, in any role."""
    named: set[str] = set()
    for project in projects:
        permissions = project.permissions
        if permissions is not None:
            named |= member_ids(permissions.owners) | member_ids(permissions.editors) | member_ids(permissions.viewers)
    return named


class Policy:
    """The access rule of one service: who the default owner is and whether anonymous reads are on."""

    def __init__(self, default_owner: str, public_read: bool) -> None:
        self.default_owner = default_owner
        self.public_read = public_read

    def role(self, user: UserRecord, project: Project) -> Role | None:
        """Return the user's highest role in the project, or None when they may not read it."""
        if user.is_admin:
            return "admin"
        if user.id in declared_owner_ids(project):
            return "owner"
        permissions = project.permissions
        if permissions is not None and user.id in member_ids(permissions.editors):
            return "editor"
        if permissions is not None and user.id in member_ids(permissions.viewers):
            return "viewer"
        if project.is_public or (permissions is not None and "*" in permissions.viewers):
            return "reader"
        return None

    def decide(
        self, user: UserRecord | None, rule: Rule, project: ProjectRecord | None = None, *, missing: bool = False
    ) -> Decision:
        """Decide a request by `user` (None when anonymous) under a route's rule.

        `project` is the project of the object that the request names; None with
        `missing=False` means the request names no object (a list, filtered afterwards by
        this same method), and `missing=True` means it names one that does not exist.
        """
        if rule == "public":
            return Decision.ALLOW

        # Anonymous requests read public projects when the settings allow it, nothing else.
        # A missing or private object gets 401 too, so the status does not reveal which ids exist.
        if user is None:
            public_object = project is not None and project.project.is_public
            if rule == "read" and self.public_read and not missing and (project is None or public_object):
                return Decision.ALLOW
            return Decision.SIGN_IN

        if rule == "signed_in":
            return Decision.ALLOW
        if rule == "admin":
            return Decision.ALLOW if user.is_admin else Decision.DENY

        if missing:
            return Decision.HIDE
        if project is None:
            return Decision.ALLOW
        role = self.role(user, project.project)
        if role is None:
            return Decision.HIDE
        if _ROLE_LEVEL[role] < _LEVEL_RANK[rule]:
            return Decision.DENY
        return Decision.ALLOW

    def readable(self, user: UserRecord | None, projects: list[ProjectRecord]) -> list[ProjectRecord]:
        """Return the projects that `user` may read, for list routes."""
        return [record for record in projects if self.decide(user, "read", record) is Decision.ALLOW]
