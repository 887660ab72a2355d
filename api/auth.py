"""Bearer authentication: resolve the request's token to a user, before the access rule applies.

A request without an Authorization header is anonymous (user None); the route's access
rule decides whether that is enough (api.access). A header that is present must hold a
valid token, except on public routes, which ignore it.

Without that header, a GET request may carry the web page's session cookie
(SESSION_COOKIE) instead: it holds an access token of the same kind. Other methods never
read it, so a page of another site cannot make a browser change anything. A rejected cookie
leaves the request anonymous and sets `session_rejected` in the request state, so the web
pages can renew the session.

A 401 response keeps the one error body and carries the challenge of RFC 6750 in
`WWW-Authenticate`. Without credentials it is plain `Bearer`. For a rejected token it adds
`error="invalid_token"` and one of two fixed descriptions that clients may compare:
EXPIRED_DESCRIPTION (refreshing or signing in again helps) or INVALID_DESCRIPTION.
"""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware.authentication import AbstractAuthenticationMiddleware, AuthenticationResult

from api.tokens import InvalidTokenError, TokenService

API_PREFIX = "/depictio/api/v1"

# Regular expressions of paths where this middleware does not run. Their routes declare the
# access rule "public" as well; the rule, not this list, is what the access guard checks.
PUBLIC_PATHS = [
    # /health, and the liveness and readiness probes /health/live and /health/ready.
    r"^/health(/live|/ready)?$",
    rf"^{API_PREFIX}/auth/login$",
    rf"^{API_PREFIX}/auth/register$",
    # The refresh token in the body is the credential.
    rf"^{API_PREFIX}/auth/refresh$",
    # Reads an optional bearer token itself, and responds without one too.
    rf"^{API_PREFIX}/auth/check_token_validity$",
    rf"^{API_PREFIX}/utils/status$",
    r"^/docs",
]

# The web page's session: an access token in an HttpOnly cookie (see api.web.session).
SESSION_COOKIE = "depictiod_session"
_COOKIE_METHODS = frozenset({"GET"})

EXPIRED_DESCRIPTION = "The token expired"
INVALID_DESCRIPTION = "The token is invalid"
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def token_challenge(error: InvalidTokenError) -> dict[str, str]:
    """Return the WWW-Authenticate header of a 401 response to a rejected token."""
    description = EXPIRED_DESCRIPTION if error.expired else INVALID_DESCRIPTION
    return {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{description}"'}


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """Return the token of an `Authorization: Bearer <token>` header, or None without one."""
    header = connection.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def request_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """Return the token that authenticates a request: its bearer token, else the session cookie of a GET."""
    token = bearer_token(connection)
    if token is not None or connection.headers.get("authorization"):
        return token
    if connection.scope.get("method") not in _COOKIE_METHODS:
        return None
    return connection.cookies.get(SESSION_COOKIE) or None


class BearerAuthenticationMiddleware(AbstractAuthenticationMiddleware):
    """Resolve `Authorization: Bearer <token>` to a user and its token record; an invalid token gets 401."""

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        if connection.route_handler.opt.get("access") == "public":
            return AuthenticationResult(user=None, auth=None)
        header = connection.headers.get("authorization")
        if not header:
            return await _session_result(connection)
        token = bearer_token(connection)
        if token is None:
            raise NotAuthorizedException(
                "not authenticated: the Authorization header must be 'Bearer <token>'", headers=_CHALLENGE
            )

        tokens: TokenService = connection.app.state.tokens
        try:
            # Verification reads the catalog, a blocking call, so it runs in a worker thread.
            user, record = await to_thread.run_sync(tokens.verify_access, token)
        except InvalidTokenError as error:
            raise NotAuthorizedException(str(error), headers=token_challenge(error)) from None
        return AuthenticationResult(user=user, auth=record)


async def _session_result(connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
    """Resolve the session cookie of a GET request; anonymous without one or when it is rejected."""
    cookie = connection.cookies.get(SESSION_COOKIE)
    if not cookie or connection.scope.get("method") not in _COOKIE_METHODS:
        return AuthenticationResult(user=None, auth=None)

    tokens: TokenService = connection.app.state.tokens
    try:
        user, record = await to_thread.run_sync(tokens.verify_access, cookie)
    except InvalidTokenError:
        connection.state.session_rejected = True
        return AuthenticationResult(user=None, auth=None)
    return AuthenticationResult(user=user, auth=record)
