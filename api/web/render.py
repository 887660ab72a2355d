"""Render the web page's templates into HTML responses, with the headers every page carries."""

from __future__ import annotations

import functools
import hashlib
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar import Request, Response
from litestar.enums import MediaType

from catalog import FileRecord

_HERE = Path(__file__).parent
TEMPLATES = _HERE / "templates"
STATIC = _HERE / "static"

# Pages show the catalog as of the request and may hold private data, so no cache keeps
# them. Scripts and styles come from this origin only; nothing may frame a page.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


@functools.cache
def asset_version() -> str:
    """Return a digest of the static files: their URLs change whenever one of them changes."""
    digest = hashlib.sha256()
    for path in sorted(STATIC.iterdir()):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _format_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else ""


def _format_bytes(value: int | None) -> str:
    if value is None:
        return ""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _path_in_run(record: FileRecord) -> str:
    """Return a file's path below its run folder, so that files of one name in two subfolders differ."""
    marker = f"{os.sep}{record.run_tag}{os.sep}"
    _, found, below = record.file_location.rpartition(marker)
    return below if found else record.filename


def _failure_reason(record: FileRecord) -> str:
    """Return a failed file's reason, with its line number unless the reason names the line already."""
    reason = record.error or "no reason recorded"
    if record.error_line is not None and "line" not in reason.lower():
        reason += f" (line {record.error_line})"
    return reason


@functools.cache
def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["time"] = _format_time
    environment.filters["bytes"] = _format_bytes
    environment.filters["path_in_run"] = _path_in_run
    environment.filters["reason"] = _failure_reason
    environment.globals["static"] = lambda name: f"/static/{asset_version()}/{name}"
    return environment


def render_page(
    request: Request[Any, Any, Any], template: str, status_code: int = 200, **context: Any
) -> Response[str]:
    """Return a template rendered with `context`, the signed-in user and the page headers."""
    user = request.scope.get("user")
    html = _environment().get_template(template).render(user=user, path=request.url.path, **context)
    return Response(content=html, status_code=status_code, media_type=MediaType.HTML, headers=PAGE_HEADERS)


def wants_html(request: Request[Any, Any, Any]) -> bool:
    """Return True when the Accept header lists text/html with a weight above 0, as browsers send it for a page."""
    for item in request.headers.get("accept", "").split(","):
        media_type, _, parameters = item.partition(";")
        if media_type.strip().lower() != "text/html":
            continue
        for parameter in parameters.split(";"):
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False
