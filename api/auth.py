"""Bearer authentication: resolve the request's token to a user, before the access rule applies.

A request without an Authorization header is anonymous (user None); the route's access
rule decides whether that is enough (api.access). A header that is present must hold a
valid token, except on public routes, which ignore it.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware.authentication import AbstractAuthenticationMiddleware, AuthenticationResult

from api.security import InvalidTokenError, TokenService

API_PREFIX = "/depictio/api/v1"

# Regular expressions of paths where this middleware does not run. Their routes declare the
# access rule "public" as well; the rule, not this list, is what the access guard checks.
PUBLIC_PATHS = [
    r"^/health$",
    rf"^{API_PREFIX}/auth/login$",
    rf"^{API_PREFIX}/utils/status$",
    r"^/docs",
]

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


class BearerAuthenticationMiddleware(AbstractAuthenticationMiddleware):
    """Resolve `Authorization: Bearer <token>` to a user; an invalid token gets 401."""

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        if connection.route_handler.opt.get("access") == "public":
            return AuthenticationResult(user=None, auth=None)
        header = connection.headers.get("authorization")
        if not header:
            return AuthenticationResult(user=None, auth=None)

        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException(
                "not authenticated: the Authorization header must be 'Bearer <token>'", headers=_CHALLENGE
            )

        tokens: TokenService = connection.app.state.tokens
        try:
            user = await _verify(tokens, token.strip())
        except InvalidTokenError as error:
            raise NotAuthorizedException(str(error), headers=_CHALLENGE) from None
        return AuthenticationResult(user=user, auth=token)


async def _verify(tokens: TokenService, token: str) -> Any:
    # Verification reads the catalog, a blocking call, so it runs in a worker thread.
    from anyio import to_thread

    return await to_thread.run_sync(tokens.verify, token)
