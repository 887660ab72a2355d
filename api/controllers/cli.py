"""`/cli`: the check that the Depictio CLI runs before nearly every command."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Controller, Request, post
from litestar.params import JSONBody

from api.errors import error_responses
from api.schemas import CLIConfigIn, CLIValidationOut
from api.tokens import InvalidTokenError, TokenService
from catalog import UserRecord

logger = logging.getLogger(__name__)


class CLIController(Controller):
    path = "/cli"
    tags = ["cli"]

    @post(
        "/validate_cli_config",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "signed_in"},
        responses=error_responses(400, 401, 413),
        summary="Check a Depictio CLI config against the bearer token",
    )
    def validate_cli_config(
        self, request: Request[UserRecord, Any, Any], data: JSONBody[CLIConfigIn]
    ) -> CLIValidationOut:
        """Return 200 with `success` false when the config's token or user does not match the signed-in user.

        The CLI goes on only with `success` true. Its token must be a valid token of the
        user that the bearer token signs in, and the config's `user.id` and `user.email`
        must name that user.
        """
        tokens: TokenService = request.app.state.tokens
        user = request.user
        version = request.headers.get("x-depictio-cli-version", "unknown")
        try:
            owner = tokens.verify(data.user.token.access_token.strip())
        except InvalidTokenError as error:
            return _rejected(user, version, f"Token expired or not found: {error}")
        if owner.id != user.id:
            return _rejected(user, version, "the config's token belongs to another user than the bearer token")
        if data.user.id is not None and data.user.id != user.id:
            return _rejected(user, version, f"the config's user.id {data.user.id!r} is not the id of its token's user")
        if data.user.email.strip().lower() != user.email.lower():
            return _rejected(user, version, f"the config's user.email {data.user.email!r} is not {user.email!r}")

        logger.info("validated the CLI config of user %s (Depictio CLI %s)", user.id, version)
        return CLIValidationOut(
            success=True, message="CLI config is valid.", is_admin=user.is_admin, user_id=user.id, email=user.email
        )


def _rejected(user: UserRecord, version: str, message: str) -> CLIValidationOut:
    logger.info("rejected the CLI config sent by user %s (Depictio CLI %s): %s", user.id, version, message)
    return CLIValidationOut(success=False, message=message)
