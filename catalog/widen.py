"""The widening rule: the one column type that can store the values of several files."""

from __future__ import annotations

import msgspec

_INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER")
_WIDE_INTEGERS = ("HUGEINT", "UBIGINT", "UHUGEINT")
_FLOATS = ("FLOAT", "DOUBLE")
_DATES = ("DATE", "TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S")
INTEGER_TYPES = _INTEGERS + _WIDE_INTEGERS
TEXT = "VARCHAR"
# A column with only nulls in one file gives no information about its type.
NULL = "NULL"


def _is_integer(kind: str) -> bool:
    return kind in _INTEGERS or kind in _WIDE_INTEGERS


def _is_number(kind: str) -> bool:
    return _is_integer(kind) or kind in _FLOATS or kind.startswith("DECIMAL")


def common_type(first: str, second: str) -> str:
    """Return the narrowest type that can store both: int → bigint → double, date → timestamp, else text."""
    if first == second:
        return first
    if first == NULL:
        return second
    if second == NULL:
        return first

    if _is_integer(first) and _is_integer(second):
        if "UHUGEINT" in (first, second):
            return "DOUBLE"  # No integer type stores both UHUGEINT and negative values.
        if first in _WIDE_INTEGERS or second in _WIDE_INTEGERS:
            return "HUGEINT"
        return "BIGINT"
    if _is_number(first) and _is_number(second):
        return "DOUBLE"
    if first in _DATES and second in _DATES:
        return "TIMESTAMP"
    if {first, second} == {"TIMESTAMP WITH TIME ZONE", "TIMESTAMP"} or {first, second} == {
        "TIMESTAMP WITH TIME ZONE",
        "DATE",
    }:
        return "TIMESTAMP WITH TIME ZONE"
    return TEXT


class UnifiedSchema(msgspec.Struct, kw_only=True):
    # (name, type) in order of first appearance across the files.
    columns: list[tuple[str, str]]
    # (file id, column, file type, table type) for every column whose type was widened.
    drift: list[tuple[str, str, str, str]]


def unify(schemas: list[tuple[str, list[tuple[str, str]]]]) -> UnifiedSchema:
    """Combine per-file (file id, columns) schemas by column name with the widening rule."""
    types: dict[str, str] = {}
    for _file_id, columns in schemas:
        for name, kind in columns:
            types[name] = common_type(types[name], kind) if name in types else kind

    drift = [
        (file_id, name, kind, types[name])
        for file_id, columns in schemas
        for name, kind in columns
        if kind != types[name] and kind != NULL
    ]
    # A column that is null in every file is stored as text.
    ordered = [(name, TEXT if kind == NULL else kind) for name, kind in types.items()]
    return UnifiedSchema(columns=ordered, drift=drift)
