"""Query parameters of `GET /datacollections/{id}/rows`, and its opaque page cursor."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ClientException

from catalog.row_filters import FilterError, RowPosition, RowsQuery, parse_filters

DEFAULT_ROWS = 100
MAX_ROWS = 10_000
# Query parameters of the rows route that are not filters.
RESERVED = {"columns", "sort", "limit", "next", "total"}


class RowsOut(msgspec.Struct, kw_only=True):
    columns: list[str]
    rows: list[dict[str, Any]]
    # Pass as `next` to get the following page; null on the last page.
    next: str | None
    # The number of rows that pass the filters, with `total=true`.
    total: int | None = None


def rows_query(request: Request[Any, Any, Any]) -> RowsQuery:
    """Return the page that a request names; raise 400 naming the parameter at fault."""
    query = request.query_params
    selection = selection_query(request, RESERVED)
    limit_text = query.get("limit")
    try:
        limit = DEFAULT_ROWS if limit_text is None else int(limit_text)
    except ValueError:
        raise ClientException(f"invalid request: limit: {limit_text!r} is not a whole number") from None
    if not 1 <= limit <= MAX_ROWS:
        raise ClientException(f"invalid request: limit: {limit}; ask for 1 to {MAX_ROWS} rows")
    total = (query.get("total") or "false").lower()
    if total not in ("true", "false"):
        raise ClientException("invalid request: total: must be true or false")
    cursor = query.get("next")
    after = decode_cursor(cursor) if cursor else None
    return msgspec.structs.replace(selection, limit=limit, after=after, count_total=total == "true")


def selection_query(request: Request[Any, Any, Any], reserved: set[str]) -> RowsQuery:
    """Return the columns, filters and sort order that a request names; raise 400 naming the parameter at fault.

    Query parameters other than `reserved` ones must be filters.
    """
    query = request.query_params
    try:
        filters = parse_filters(list(query.multi_items()), reserved)
    except FilterError as error:
        raise ClientException(f"invalid filter: {error}") from None
    repeated = sorted(name for name in reserved if len(query.getall(name, [])) > 1)
    if repeated:
        raise ClientException(f"invalid request: {repeated[0]} is given more than once; give it once")
    columns = _names(query.get("columns"))
    if columns and len(set(columns)) != len(columns):
        raise ClientException("invalid request: columns: a column is listed twice; list each column once")
    sort = tuple((name.removeprefix("-"), name.startswith("-")) for name in _names(query.get("sort")) or ())
    return RowsQuery(columns=columns, filters=tuple(filters), sort=sort)


def _names(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    return names or None


def encode_cursor(position: RowPosition) -> str:
    """Return the opaque `next` value for a position: the row that ended a page, as JSON in base64."""
    return base64.urlsafe_b64encode(msgspec.json.encode(position)).decode().rstrip("=")


def decode_cursor(text: str) -> RowPosition:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return msgspec.json.decode(raw, type=RowPosition)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise ClientException("invalid request: next: not a cursor that this route returned") from None
