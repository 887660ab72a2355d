"""The bare reference app of api_throughput: Litestar and msgspec with the same JWT check, nothing else.

It verifies the bearer token as depictiod does (pyjwt, EdDSA, the claims that depictiod
requires, 30 s of leeway) but looks nothing up in a catalog, and returns a constant list
read at start. `python -m bench.bare_app --port N --key FILE --body FILE` serves it with
uvicorn and the options of `depictiod serve`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import jwt
import msgspec
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from litestar import Litestar, get
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware.authentication import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.base import DefineMiddleware

ALGORITHM = "EdDSA"
ROUTE = "/depictio/api/v1/projects/get/all"


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


def create_bare_app(public_key: Ed25519PublicKey, body: list[Any]) -> Litestar:
    """Build an app with one route that returns `body` to requests with a valid bearer token."""

    class BearerCheck(AbstractAuthenticationMiddleware):
        async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
            scheme, _, token = connection.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer":
                raise NotAuthorizedException("not authenticated")
            try:
                claims = jwt.decode(
                    token.strip(),
                    public_key,
                    algorithms=[ALGORITHM],
                    options={"require": ["exp", "iat", "sub", "jti"]},
                    leeway=30,
                )
            except jwt.InvalidTokenError:
                raise NotAuthorizedException("invalid token") from None
            return AuthenticationResult(user=claims["sub"], auth=claims)

    @get(ROUTE, sync_to_thread=False)
    def projects() -> list[Any]:
        return body

    return Litestar(
        route_handlers=[projects],
        middleware=[DefineMiddleware(BearerCheck)],
        openapi_config=None,
        logging_config=None,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_app", description=__doc__)
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    parser.add_argument("--key", type=Path, required=True, help="PEM file of the Ed25519 key that signed the tokens")
    parser.add_argument("--body", type=Path, required=True, help="JSON file with the list to return")
    arguments = parser.parse_args(argv)

    public_key = load_private_key(arguments.key).public_key()
    body = msgspec.json.decode(arguments.body.read_bytes(), type=list[Any])
    app = create_bare_app(public_key, body)
    # The options of `depictiod serve` (depictiod.cli), so that only the app differs.
    config = uvicorn.Config(
        app, host="127.0.0.1", port=arguments.port, loop="auto", http="auto", log_config=None, lifespan="on"
    )
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
