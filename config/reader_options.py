"""Map Depictio's `polars_kwargs` to the reader options depictiod applies with DuckDB."""

from __future__ import annotations

from typing import Any

import msgspec


class ReaderOptions(msgspec.Struct, kw_only=True, frozen=True):
    """Options for reading delimited files; None means "detect from the file"."""

    separator: str | None = None
    has_header: bool = True
    skip_rows: int = 0
    null_values: tuple[str, ...] = ()
    quote_char: str | None = None
    comment_prefix: str | None = None
    # Extra column types, by column name, as DuckDB type names.
    column_types: tuple[tuple[str, str], ...] = ()


# Polars dtype names accepted in `schema_overrides`/`dtypes`, with their DuckDB types.
POLARS_TO_DUCKDB: dict[str, str] = {
    "Int8": "TINYINT",
    "Int16": "SMALLINT",
    "Int32": "INTEGER",
    "Int64": "BIGINT",
    "UInt8": "UTINYINT",
    "UInt16": "USMALLINT",
    "UInt32": "UINTEGER",
    "UInt64": "UBIGINT",
    "Float32": "FLOAT",
    "Float64": "DOUBLE",
    "Boolean": "BOOLEAN",
    "Utf8": "VARCHAR",
    "String": "VARCHAR",
    "Date": "DATE",
    "Datetime": "TIMESTAMP",
}

# Keys that only tune polars' own inference; DuckDB's detection replaces them.
_ACCEPTED_AND_IGNORED = ("try_parse_dates", "infer_schema_length", "infer_schema", "low_memory", "rechunk")

SUPPORTED_KEYS = (
    "separator",
    "has_header",
    "skip_rows",
    "null_values",
    "quote_char",
    "comment_prefix",
    "schema_overrides",
    "dtypes",
    *_ACCEPTED_AND_IGNORED,
)


def parse_reader_options(kwargs: dict[str, Any]) -> tuple[ReaderOptions | None, list[tuple[str, str]]]:
    """Convert `polars_kwargs` into ReaderOptions, or return (key, message) problems."""
    problems: list[tuple[str, str]] = []
    values: dict[str, Any] = {}

    for key, value in kwargs.items():
        message = _check_option(key, value)
        if message:
            problems.append((key, message))
            continue
        if key in _ACCEPTED_AND_IGNORED:
            continue
        if key in ("schema_overrides", "dtypes"):
            values["column_types"] = tuple((name, POLARS_TO_DUCKDB[kind]) for name, kind in value.items())
            continue
        if key == "null_values":
            values[key] = (value,) if isinstance(value, str) else tuple(value)
            continue
        values[key] = value

    if problems:
        return None, problems
    return ReaderOptions(**values), []


def _check_option(key: str, value: Any) -> str | None:
    if key not in SUPPORTED_KEYS:
        return f"polars_kwargs key {key!r} is not supported; supported keys: {', '.join(SUPPORTED_KEYS)}"

    if key == "separator" and not (isinstance(value, str) and len(value) == 1):
        return f'separator must be one character, got {value!r}; use "\\t" for tab-separated files'
    if key in ("quote_char", "comment_prefix") and not (value is None or (isinstance(value, str) and len(value) == 1)):
        return f"{key} must be one character or null, got {value!r}"
    if key == "has_header" and not isinstance(value, bool):
        return f"has_header must be true or false, got {value!r}"
    if key == "skip_rows" and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return f"skip_rows must be a non-negative integer, got {value!r}"
    if key == "null_values" and not (
        isinstance(value, str) or (isinstance(value, list) and all(isinstance(item, str) for item in value))
    ):
        return f"null_values must be a string or a list of strings, got {value!r}"
    if key in ("schema_overrides", "dtypes"):
        return _check_column_types(key, value)
    return None


def _check_column_types(key: str, value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"{key} must map column names to polars types, got {value!r}"
    for column, kind in value.items():
        if not isinstance(kind, str) or kind not in POLARS_TO_DUCKDB:
            choices = ", ".join(POLARS_TO_DUCKDB)
            return f"{key} gives column {column!r} the unknown type {kind!r}; valid types: {choices}"
    return None
