"""`/auth`: long-lived tokens for scripts and the Depictio CLI, and the CLI config built from one."""

from __future__ import annotations

import logging
import re
import secrets
import unicodedata
from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, delete, get, post
from litestar.exceptions import NotFoundException, PermissionDeniedException, ValidationException
from litestar.params import FromPath, FromQuery, JSONBody

from api.access import format_time
from api.controllers.auth import token_out
from api.errors import error_responses
from api.schemas import (
    AgentConfigOut,
    AgentTokenIn,
    CLITokenOut,
    CLIUserOut,
    SuccessOut,
    TokenCreateIn,
    TokenInfoOut,
    TokenOut,
)
from api.security import has_hidden_characters
from api.tokens import LONG_LIVED, SHORT_LIVED, InvalidTokenError, TokenService
from catalog import Catalog, TokenRecord, UserRecord, utc_now

logger = logging.getLogger(__name__)

MAX_TOKEN_NAME_LENGTH = 100
# The api_base_url form that the Depictio CLI accepts: scheme, host and port, no path.
BASE_URL_PATTERN = re.compile(r"https?://[^/\s]+(?::\d+)?")


class TokenController(Controller):
    path = "/auth"
    tags = ["tokens"]

    @post(
        "/me/tokens",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "signed_in"},
        responses=error_responses(400, 401, 409, 413),
        summary="Create a named long-lived token for a script or the Depictio CLI",
    )
    def create_token(self, request: Request[UserRecord, TokenRecord, Any], data: JSONBody[TokenCreateIn]) -> TokenOut:
        """Return the new token pair; this response is the only one that contains its secrets."""
        tokens: TokenService = request.app.state.tokens
        name = unicodedata.normalize("NFC", data.name.strip())
        if not name:
            raise ValidationException("name: a token name is required")
        if has_hidden_characters(name):
            raise ValidationException("name: the name contains control or invisible characters; remove them")
        if len(name) > MAX_TOKEN_NAME_LENGTH:
            raise ValidationException(
                f"name: the name is {len(name)} characters long; the maximum is {MAX_TOKEN_NAME_LENGTH}"
            )
        days = data.lifetime_days if data.lifetime_days is not None else tokens.max_long_lived_days
        if not 1 <= days <= tokens.max_long_lived_days:
            raise ValidationException(
                f"lifetime_days: {days} is out of range; give 1 to {tokens.max_long_lived_days} "
                "(auth.long_lived_token_max_days)"
            )
        return token_out(tokens.issue_long_lived(request.user, name, days), logged_in=False)

    @get(
        "/list_tokens",
        sync_to_thread=True,
        opt={"access": "signed_in"},
        responses=error_responses(400, 401),
        summary="The signed-in user's live tokens, without their secrets",
    )
    def list_tokens(
        self, request: Request[UserRecord, TokenRecord, Any], token_lifetime: FromQuery[str | None] = None
    ) -> list[TokenInfoOut]:
        """List tokens that are neither revoked nor expired (a token whose refresh token still works counts as live)."""
        catalog: Catalog = request.app.state.catalog
        if token_lifetime not in (None, SHORT_LIVED, LONG_LIVED):
            raise ValidationException(
                f"token_lifetime: {token_lifetime!r} is not one of {SHORT_LIVED!r}, {LONG_LIVED!r}"
            )
        now = utc_now()
        listed = []
        for record in catalog.tokens.list_for_user(request.user.id):
            if record.revoked or (token_lifetime and record.token_lifetime != token_lifetime):
                continue
            if max(record.expire_datetime, record.refresh_expire_datetime or record.expire_datetime) < now:
                continue
            listed.append(_token_info(record, current=record.id == request.auth.id))
        return listed

    @delete(
        "/me/tokens/{token_id:str}",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "signed_in"},
        responses=error_responses(400, 401, 404),
        summary="Revoke one of the signed-in user's tokens",
    )
    def delete_token(self, request: Request[UserRecord, TokenRecord, Any], token_id: FromPath[str]) -> SuccessOut:
        """Delete the token; 404 when the signed-in user has no token with this id."""
        catalog: Catalog = request.app.state.catalog
        if not catalog.tokens.delete(token_id, request.user.id):
            raise NotFoundException(f"token {token_id!r} not found")
        logger.info("user %s revoked token %s", request.user.id, token_id)
        return SuccessOut(success=True, message="Token deleted successfully")

    @post(
        "/generate_agent_config",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "signed_in"},
        responses=error_responses(400, 401, 403, 413),
        summary="A Depictio CLI config (CLI.yaml) for the signed-in user",
    )
    def generate_agent_config(
        self, request: Request[UserRecord, TokenRecord, Any], data: JSONBody[AgentTokenIn | None] = None
    ) -> AgentConfigOut:
        """Return a CLI config with a new long-lived token, or with the caller's own long-lived token from the body.

        `api_base_url` is the scheme, host and port that the request came to.
        """
        tokens: TokenService = request.app.state.tokens
        user = request.user
        base_url = f"{request.url.scheme}://{request.url.netloc}"
        if not BASE_URL_PATTERN.fullmatch(base_url):
            raise ValidationException(
                f"cannot build api_base_url from the request's address {base_url!r}; call this route through "
                "the address that the Depictio CLI will use"
            )

        if data is None:
            issued = tokens.issue_long_lived(user, _cli_token_name(), tokens.max_long_lived_days)
            token = _cli_token(issued.record, issued.access_token, issued.refresh_token)
        else:
            token = _cli_token(_posted_token(tokens, user, data), data.access_token, data.refresh_token)
        logger.info("built a CLI config for user %s with token %s", user.id, token.id)
        cli_user = CLIUserOut(id=user.id, email=user.email, is_admin=user.is_admin, token=token)
        return AgentConfigOut(api_base_url=base_url, user=cli_user, s3_storage={})


def _posted_token(tokens: TokenService, user: UserRecord, data: AgentTokenIn) -> TokenRecord:
    """Return the record of a long-lived token pair posted by its owner; raise 400 or 403 otherwise."""
    try:
        owner, record = tokens.verify_access(data.access_token.strip())
    except InvalidTokenError as error:
        raise ValidationException(f"access_token: {error}; omit the body to get a new token") from None
    if owner.id != user.id:
        raise PermissionDeniedException("the posted token belongs to another user; post one of your own tokens")
    if record.token_lifetime != LONG_LIVED:
        raise ValidationException(
            "access_token: the posted token is short-lived; create one with POST /auth/me/tokens or omit the body"
        )
    if not tokens.refresh_token_matches(data.refresh_token.strip(), record):
        raise ValidationException("refresh_token: it is not the current refresh token of the posted access token")
    return record


def _cli_token(record: TokenRecord, access_token: str, refresh_token: str) -> CLITokenOut:
    return CLITokenOut(
        id=record.id,
        user_id=record.user_id,
        access_token=access_token,
        refresh_token=refresh_token,
        token_type="bearer",
        token_lifetime=record.token_lifetime,
        expire_datetime=format_time(record.expire_datetime) or "",
        refresh_expire_datetime=format_time(record.refresh_expire_datetime) or "",
        name=record.name,
        created_at=format_time(record.created_at) or "",
    )


def _cli_token_name() -> str:
    # The random part keeps names unique when two configs are made in the same second.
    return f"depictio-cli-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}"


def _token_info(record: TokenRecord, current: bool) -> TokenInfoOut:
    return TokenInfoOut(
        id=record.id,
        user_id=record.user_id,
        name=record.name,
        token_type="bearer",
        token_lifetime=record.token_lifetime,
        expire_datetime=format_time(record.expire_datetime) or "",
        refresh_expire_datetime=format_time(record.refresh_expire_datetime),
        created_at=format_time(record.created_at) or "",
        current=current,
    )
