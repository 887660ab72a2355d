"""`/auth`: the administrators' routes over all users."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Controller, Request, delete, get, post
from litestar.exceptions import PermissionDeniedException, ValidationException
from litestar.params import FromPath

from api.controllers.auth import user_out
from api.errors import error_responses
from api.schemas import SuccessOut, UserOut
from catalog import Catalog, UserRecord

logger = logging.getLogger(__name__)

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


class UserController(Controller):
    path = "/auth"
    tags = ["users"]

    @get(
        "/list",
        sync_to_thread=True,
        responses=error_responses(401, 403),
        opt={"access": "admin"},
        summary="Every user (administrators only)",
    )
    def list_users(self, request: Request[UserRecord, Any, Any]) -> list[UserOut]:
        require_admin(request.user)
        catalog: Catalog = request.app.state.catalog
        return [user_out(user) for user in catalog.users.list()]

    @delete(
        "/delete/{user_id:str}",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "admin"},
        responses=error_responses(400, 401, 403, 404, 409),
        summary="Delete a user and revoke all their tokens (administrators only)",
    )
    def delete_user(self, request: Request[UserRecord, Any, Any], user_id: FromPath[str]) -> SuccessOut:
        """Delete the user; 409 when they are the last administrator."""
        require_admin(request.user)
        catalog: Catalog = request.app.state.catalog
        revoked = catalog.users.delete(user_id)
        logger.info("user %s deleted user %s and %d tokens", request.user.id, user_id, revoked)
        return SuccessOut(success=True, message=f"user {user_id!r} deleted; {revoked} tokens revoked")

    @post(
        "/turn_sysadmin/{user_id:str}/{is_admin:str}",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "admin"},
        responses=error_responses(400, 401, 403, 404),
        summary="Grant or withdraw administrator rights (administrators only)",
    )
    def turn_sysadmin(
        self, request: Request[UserRecord, Any, Any], user_id: FromPath[str], is_admin: FromPath[str]
    ) -> SuccessOut:
        """Set the user's administrator flag; `success` is false when it had that value already."""
        require_admin(request.user)
        catalog: Catalog = request.app.state.catalog
        requested = _parse_bool(is_admin)
        changed = catalog.users.set_admin(user_id, requested)
        if changed:
            logger.info("user %s set is_admin=%s for user %s", request.user.id, requested, user_id)
        return SuccessOut(success=changed)


def require_admin(user: UserRecord) -> None:
    """Raise 403 unless `user` is an administrator."""
    if not user.is_admin:
        raise PermissionDeniedException(f"user {user.email!r} is not an administrator")


def _parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValidationException(f"is_admin must be true or false, not {value!r}")
