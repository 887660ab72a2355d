"""The page's style sheet and script under versioned URLs, cached for a year, since a new version gets a new URL."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

from api.web.render import STATIC, asset_version

# Litestar adds "; charset=utf-8" to text types itself.
_MEDIA_TYPES = {".css": "text/css", ".js": "text/javascript"}
_FILES = {path.name: path for path in STATIC.iterdir() if path.suffix in _MEDIA_TYPES}


@get("/static/{version:str}/{name:str}", sync_to_thread=False, opt={"access": "public"}, include_in_schema=False)
def static_file(request: Request[Any, Any, Any], version: FromPath[str], name: FromPath[str]) -> Response[bytes]:
    path = _FILES.get(name)
    if path is None:
        raise NotFoundException(f"static file {name!r} not found")
    # An old page may still name an earlier version: it gets the current file, not cached.
    cache = "public, max-age=31536000, immutable" if version == asset_version() else "no-cache"
    return Response(
        content=path.read_bytes(),
        media_type=_MEDIA_TYPES[path.suffix],
        headers={"Cache-Control": cache, "X-Content-Type-Options": "nosniff"},
    )
