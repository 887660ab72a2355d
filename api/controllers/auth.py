"""`/auth`: sign in, refresh, register, change the password and read the signed-in user."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import (
    ClientException,
    NotAuthorizedException,
    PermissionDeniedException,
    TooManyRequestsException,
)
from litestar.params import Body, JSONBody

from api.access import format_time
from api.auth import bearer_token, token_challenge
from api.errors import error_responses
from api.policy import named_user_ids
from api.ratelimit import LoginRateLimiter
from api.schemas import (
    EditPasswordIn,
    LoginForm,
    RefreshIn,
    RegistrationIn,
    RegistrationOut,
    SuccessOut,
    TokenOut,
    TokenValidityOut,
    UserOut,
)
from api.security import (
    check_email,
    check_new_password,
    hash_password,
    verify_password,
    verify_unknown_user,
)
from api.tokens import InvalidTokenError, IssuedToken, TokenService
from catalog import Catalog, TokenRecord, UserRecord, user_id_for, utc_now

logger = logging.getLogger(__name__)


class AuthController(Controller):
    path = "/auth"
    tags = ["auth"]

    @post(
        "/login",
        status_code=200,
        sync_to_thread=True,
        security=[],
        opt={"access": "public"},
        responses=error_responses(400, 401, 413, 429),
        summary="Sign in with e-mail and password",
    )
    def login(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> TokenOut:
        """Return an access token and a refresh token for the OAuth2 password form (`username` = e-mail).

        Failed sign-ins are counted per account and per client address; over the limit
        the response is 429 with Retry-After, before the password is checked.
        """
        if data.grant_type not in (None, "", "password"):
            raise NotAuthorizedException(
                "invalid credentials: grant_type must be 'password'", headers={"WWW-Authenticate": "Bearer"}
            )
        issued = sign_in(request, data.username, data.password)
        return token_out(issued, logged_in=True)

    @post(
        "/refresh",
        status_code=200,
        sync_to_thread=True,
        security=[],
        opt={"access": "public"},
        responses=error_responses(400, 401, 413),
        summary="Exchange a refresh token for a new access token and refresh token",
    )
    def refresh(self, request: Request[Any, Any, Any], data: JSONBody[RefreshIn]) -> TokenOut:
        """Return a new token pair; the refresh token sent works only this once.

        Sending a refresh token a second time revokes every token issued from the same
        sign-in, because one of the two senders must have stolen it.
        """
        tokens: TokenService = request.app.state.tokens
        try:
            issued = tokens.refresh(data.refresh_token.strip())
        except InvalidTokenError as error:
            raise NotAuthorizedException(str(error), headers=token_challenge(error)) from None
        return token_out(issued, logged_in=True)

    @get(
        "/me",
        sync_to_thread=True,
        responses=error_responses(401),
        opt={"access": "signed_in"},
        summary="The signed-in user",
    )
    def me(self, request: Request[UserRecord, Any, Any]) -> UserOut:
        return user_out(request.user)

    @post(
        "/register",
        status_code=200,
        sync_to_thread=True,
        security=[],
        opt={"access": "public"},
        responses=error_responses(400, 403, 409, 413),
        summary="Create an account (only when auth.allow_registration is true)",
    )
    def register(self, request: Request[Any, Any, Any], data: JSONBody[RegistrationIn]) -> RegistrationOut:
        catalog: Catalog = request.app.state.catalog
        if not request.app.state.settings.auth.allow_registration:
            raise PermissionDeniedException(
                "registration is disabled on this server; ask an administrator to create your account "
                "with 'depictiod users add'"
            )

        email = check_email(data.email)
        check_new_password(data.password)
        # Addresses are not verified, so one that carries a role must be added by an administrator:
        # otherwise anyone could register it, or the address of a deleted user, and take the role.
        named = named_user_ids([record.project for record in catalog.projects.list()])
        if user_id_for(email) in named | {request.app.state.admin_id}:
            raise PermissionDeniedException(
                f"{email!r} is named in a project's permissions or is the administrator address; "
                "ask an administrator to create this account with 'depictiod users add'"
            )
        user = UserRecord(
            id=user_id_for(email),
            email=email,
            password_hash=hash_password(data.password),
            is_admin=False,
            is_active=True,
            registration_date=utc_now(),
            last_login=None,
        )
        catalog.users.add(user)
        logger.info("registered user %s (%r)", user.id, email)
        return RegistrationOut(success=True, message="User created successfully", user=user_out(user))

    @post(
        "/edit_password",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "signed_in"},
        responses=error_responses(400, 401, 413, 429),
        summary="Change the signed-in user's password and sign out their other sessions",
    )
    def edit_password(
        self, request: Request[UserRecord, TokenRecord, Any], data: JSONBody[EditPasswordIn]
    ) -> SuccessOut:
        """Set a new password; every other token of the user, long-lived ones included, is deleted."""
        catalog: Catalog = request.app.state.catalog
        user = request.user
        address = client_address(request)
        # A wrong old password counts as a failed sign-in, so a stolen token cannot guess the password.
        _check_rate_limit(request, user.email, address)
        if not verify_password(user.password_hash, data.old_password):
            _limiter(request).record_failure(user.email, address)
            raise ClientException("the old password is incorrect")

        check_new_password(data.new_password)
        revoked = catalog.users.set_password(user.id, hash_password(data.new_password), keep_token_id=request.auth.id)
        logger.info("user %s changed their password; %d other tokens deleted", user.id, revoked)
        return SuccessOut(success=True, message=f"password changed; {revoked} other sessions and tokens were revoked")

    @post(
        "/check_token_validity",
        status_code=200,
        sync_to_thread=True,
        security=[],
        opt={"access": "public"},
        responses=error_responses(),
        summary="Tell whether the bearer token is valid, or can be refreshed",
    )
    def check_token_validity(self, request: Request[Any, Any, Any]) -> TokenValidityOut:
        """Return the state of the optional bearer token: valid, refresh (the access token expired) or logout."""
        tokens: TokenService = request.app.state.tokens
        token = bearer_token(request)
        if token is None:
            return TokenValidityOut(success=False, can_refresh=False, action="logout")
        valid, can_refresh = tokens.check_validity(token)
        if valid:
            return TokenValidityOut(success=True, can_refresh=can_refresh, action="valid")
        return TokenValidityOut(success=False, can_refresh=can_refresh, action="refresh" if can_refresh else "logout")


def sign_in(request: Request[Any, Any, Any], email: str, password: str) -> IssuedToken:
    """Check an e-mail address and password and issue a session's token pair; 401 or 429 when that fails.

    Failed sign-ins are counted per account and per client address; over the limit the
    request gets 429 with Retry-After before the password is checked.
    """
    catalog: Catalog = request.app.state.catalog
    tokens: TokenService = request.app.state.tokens
    account = email.strip()
    address = client_address(request)
    _check_rate_limit(request, account, address)

    user = catalog.users.get_by_email(account)
    if user is None:
        verify_unknown_user(password)
    if user is None or not user.is_active or not verify_password(user.password_hash, password):
        _limiter(request).record_failure(account, address)
        logger.info("failed sign-in for %r from %s", account, address)
        raise NotAuthorizedException("invalid credentials", headers={"WWW-Authenticate": "Bearer"})

    _limiter(request).record_success(account, address)
    issued = tokens.issue_session(user)
    catalog.users.record_login(user.id)
    return issued


def _limiter(request: Request[Any, Any, Any]) -> LoginRateLimiter:
    limiter: LoginRateLimiter = request.app.state.login_limiter
    return limiter


def _check_rate_limit(request: Request[Any, Any, Any], account: str, address: str) -> None:
    wait = _limiter(request).retry_after(account, address)
    if wait is None:
        return
    logger.warning("rejected sign-in for %r from %s: too many failed attempts; retry in %d s", account, address, wait)
    raise TooManyRequestsException(
        f"too many failed sign-ins for this account or address; try again in {wait} s",
        headers={"Retry-After": str(wait)},
    )


def client_address(request: Request[Any, Any, Any]) -> str:
    """Return the peer address of the connection.

    NOTE: behind a reverse proxy this is the proxy's address, so all clients share one
    per-address count; X-Forwarded-For is not trusted.
    """
    return request.client.host if request.client else "unknown"


def user_out(user: UserRecord) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        is_admin=user.is_admin,
        is_active=user.is_active,
        registration_date=format_time(user.registration_date),
        last_login=format_time(user.last_login),
    )


def token_out(issued: IssuedToken, logged_in: bool) -> TokenOut:
    """Return a token pair with its secrets, which only the response that creates them contains."""
    record = issued.record
    return TokenOut(
        id=record.id,
        user_id=record.user_id,
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        token_type="bearer",
        token_lifetime=record.token_lifetime,
        expire_datetime=format_time(record.expire_datetime) or "",
        refresh_expire_datetime=format_time(record.refresh_expire_datetime),
        name=record.name,
        created_at=format_time(record.created_at) or "",
        logged_in=logged_in,
    )
