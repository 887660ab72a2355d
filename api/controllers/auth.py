"""`/auth`: sign in and read the signed-in user."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotAuthorizedException
from litestar.params import Body

from api.access import format_time
from api.schemas import LoginForm, TokenOut, UserOut
from api.security import TokenService, verify_password, verify_unknown_user
from catalog import Catalog, UserRecord


class AuthController(Controller):
    path = "/auth"
    tags = ["auth"]

    @post(
        "/login",
        status_code=200,
        sync_to_thread=True,
        security=[],
        opt={"access": "public"},
        summary="Sign in with e-mail and password",
    )
    def login(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> TokenOut:
        """Return an access token for the OAuth2 password form (`username` = e-mail)."""
        catalog: Catalog = request.app.state.catalog
        tokens: TokenService = request.app.state.tokens
        if data.grant_type not in (None, "", "password"):
            raise NotAuthorizedException("invalid credentials: grant_type must be 'password'")

        user = catalog.users.get_by_email(data.username.strip())
        if user is None:
            verify_unknown_user(data.password)
        if user is None or not user.is_active or not verify_password(user.password_hash, data.password):
            raise NotAuthorizedException("invalid credentials", headers={"WWW-Authenticate": "Bearer"})

        issued = tokens.issue(user, name=f"{user.email}_{issued_suffix()}")
        catalog.users.record_login(user.id)
        record = issued.record
        return TokenOut(
            id=record.id,
            user_id=user.id,
            access_token=issued.access_token,
            token_type="bearer",
            token_lifetime=record.token_lifetime,
            expire_datetime=format_time(record.expire_datetime) or "",
            name=record.name,
            created_at=format_time(record.created_at) or "",
            logged_in=True,
        )

    @get("/me", sync_to_thread=True, opt={"access": "signed_in"}, summary="The signed-in user")
    def me(self, request: Request[UserRecord, Any, Any]) -> UserOut:
        return user_out(request.user)


def user_out(user: UserRecord) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        is_admin=user.is_admin,
        is_active=user.is_active,
        registration_date=format_time(user.registration_date),
        last_login=format_time(user.last_login),
    )


def issued_suffix() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")
