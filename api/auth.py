"""Bearer authentication for every route except login, status, health and the docs."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware.authentication import AbstractAuthenticationMiddleware, AuthenticationResult

from api.security import InvalidTokenError, TokenService

API_PREFIX = "/depictio/api/v1"

# Regular expressions of the paths anyone may call.
PUBLIC_PATHS = [
    r"^/health$",
    rf"^{API_PREFIX}/auth/login$",
    rf"^{API_PREFIX}/utils/status$",
    r"^/docs",
]

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


class BearerAuthenticationMiddleware(AbstractAuthenticationMiddleware):
    """Resolve `Authorization: Bearer <token>` to a user, or reject the request with 401."""

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        header = connection.headers.get("authorization")
        if not header:
            raise NotAuthorizedException(
                "not authenticated: send the header 'Authorization: Bearer <token>'", headers=_CHALLENGE
            )

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
