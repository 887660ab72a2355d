"""The HTTP API: Depictio's v1 routes as a Litestar app."""

from api.app import create_app

__all__ = ["create_app"]
