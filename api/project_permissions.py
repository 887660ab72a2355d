"""Check a permissions request against the users of the catalog, and store its roles by user id."""

from __future__ import annotations

from typing import Any

from litestar.exceptions import ClientException

from api.schemas import Member, PermissionsIn
from catalog import Catalog, UserRecord, email_key
from config import Permissions

_ROLES = ("owners", "editors", "viewers")
# Entries a request may list over all roles: each is looked up in the catalog.
MAX_MEMBERS = 1000


def resolve_permissions(catalog: Catalog, requested: PermissionsIn) -> Permissions:
    """Return the requested roles as lists of user ids; raise ClientException (400) on any problem.

    Every member must be an existing user, each user may hold one role, `"*"` may appear only
    among the viewers, and the project must keep at least one owner.
    """
    if requested.group_owners or requested.group_editors or requested.group_viewers:
        raise ClientException("invalid permissions: depictiod has no groups; list users in owners, editors and viewers")

    listed = sum(len(getattr(requested, role)) for role in _ROLES)
    if listed > MAX_MEMBERS:
        raise ClientException(
            f"invalid permissions: {listed} entries; list at most {MAX_MEMBERS} users, or '*' in viewers for everyone"
        )

    resolved: dict[str, list[str | dict[str, Any]]] = {}
    role_of: dict[str, str] = {}
    for role in _ROLES:
        ids: list[str | dict[str, Any]] = []
        for entry in getattr(requested, role):
            if entry == "*" and role != "viewers":
                raise ClientException(
                    f"invalid permissions: '*' (every signed-in user) may appear only in viewers, not in {role}"
                )
            if entry == "*":
                if "*" not in ids:
                    ids.append("*")
                continue
            user = _user(catalog, entry, role)
            if user.id in ids:
                continue
            if user.id in role_of:
                raise ClientException(
                    f"invalid permissions: {user.email} is listed in {role_of[user.id]} and in {role}; "
                    "give each user one role"
                )
            role_of[user.id] = role
            ids.append(user.id)
        resolved[role] = ids

    if not resolved["owners"]:
        raise ClientException("invalid permissions: a project must keep at least one owner")
    return Permissions(owners=resolved["owners"], editors=resolved["editors"], viewers=resolved["viewers"])


def _user(catalog: Catalog, entry: Member, role: str) -> UserRecord:
    """Return the existing user that a permissions entry names."""
    if isinstance(entry, str):
        entry = entry.strip()
        user = catalog.users.get_by_email(entry) if "@" in entry else catalog.users.get(entry)
        if user is None:
            kind = "e-mail address" if "@" in entry else "user id"
            raise ClientException(f"invalid permissions: no user has the {kind} {entry!r} (in {role})")
        return user

    user_id = entry.get("id") or entry.get("_id")
    email = entry.get("email")
    if user_id is None and email is None:
        raise ClientException(f"invalid permissions: an entry in {role} has neither an id nor an email: {entry!r}")
    if not isinstance(user_id, str | None) or not isinstance(email, str | None):
        raise ClientException(f"invalid permissions: id and email must be strings in {role}: {entry!r}")

    user = catalog.users.get(user_id) if user_id is not None else catalog.users.get_by_email(str(email).strip())
    if user is None:
        raise ClientException(f"invalid permissions: no user matches {entry!r} (in {role})")
    if email is not None and email_key(user.email) != email_key(email):
        # The message names no address, so a request cannot map ids to other users' addresses.
        raise ClientException(
            f"invalid permissions: the id and the email of {entry!r} name different users (in {role})"
        )
    return user
