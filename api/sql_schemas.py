"""Request and response bodies of `POST /sql`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

# The maximum length of the query text, in characters.
MAX_QUERY_CHARS = 100_000


class SqlIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One SELECT statement, and the number of rows to return at most."""

    query: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_QUERY_CHARS)]
    # 1 to `sql.max_rows`; by default `sql.max_rows`.
    limit: int | None = None
    # json (the default) for an SqlOut body, or a streamed file: csv, tsv, parquet or arrow.
    format: Literal["json", "csv", "tsv", "parquet", "arrow"] = "json"


class SqlColumnOut(msgspec.Struct, kw_only=True):
    name: str
    # The DuckDB type, such as BIGINT, VARCHAR or TIMESTAMP.
    type: str


class SqlOut(msgspec.Struct, kw_only=True):
    """The result of a query: its columns in order, and its rows as lists of values in that order."""

    columns: list[SqlColumnOut]
    rows: list[list[Any]]
    row_count: int
    # True when the query has more rows than `limit` and the rows were cut there.
    truncated: bool
