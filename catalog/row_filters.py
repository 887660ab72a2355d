"""Row filters on aggregated tables, turned into SQL with bound values.

A filter names a column of the table, an operator from a fixed list and a value. The SQL
contains only column names taken from the table's own schema (quoted) and types from that
schema. Every value a client sends is a bound parameter, so nothing a client writes
becomes SQL text.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import msgspec

from catalog.widen import INTEGER_TYPES

# Operators that compare the column with one value, cast to the column's type.
COMPARISONS = {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
# Operators on the column's text form.
TEXT_OPERATORS = {"contains": "contains", "startswith": "starts_with"}
OPERATORS = (*COMPARISONS, "in", *TEXT_OPERATORS, "isnull")
# The maximum number of values in one `in` filter, and of filters in one request.
MAX_IN_VALUES = 1000
MAX_FILTERS = 50
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")


class RowFilter(msgspec.Struct, kw_only=True, frozen=True):
    column: str
    # One of OPERATORS.
    operator: str
    # The values as sent: one for most operators, several for `in`, "true" or "false" for `isnull`.
    values: tuple[str, ...]


class FilterError(ValueError):
    """Raised when a filter names an unknown column or operator, or has a value of the wrong form."""


def quote_name(name: str) -> str:
    """Return a column name as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def where_clause(filters: list[RowFilter], types: dict[str, str]) -> tuple[str, list[Any]]:
    """Return a WHERE clause (or "") joining `filters` with AND, and its parameters.

    `types` maps each column of the table to its DuckDB type; a filter on any other column
    raises FilterError. A value that does not convert to the column's type fails when the
    query runs (DuckDB's ConversionException), which callers report as a bad request.
    """
    if len(filters) > MAX_FILTERS:
        raise FilterError(f"{len(filters)} filters; use at most {MAX_FILTERS}")
    parts: list[str] = []
    parameters: list[Any] = []
    for item in filters:
        if item.column not in types:
            raise FilterError(f"unknown column {item.column!r}; the table has {', '.join(sorted(types))}")
        column, kind = quote_name(item.column), types[item.column]
        if item.operator in COMPARISONS:
            parts.append(f"{column} {COMPARISONS[item.operator]} CAST(? AS {kind})")
            parameters.append(_fitting(item, kind, _single(item)))
        elif item.operator == "in":
            values = [value for text in item.values for value in text.split(",")]
            if not 1 <= len(values) <= MAX_IN_VALUES:
                raise FilterError(f"{item.column}__in lists {len(values)} values; list 1 to {MAX_IN_VALUES}")
            parts.append(f"{column} IN ({', '.join([f'CAST(? AS {kind})'] * len(values))})")
            parameters.extend(_fitting(item, kind, value) for value in values)
        elif item.operator in TEXT_OPERATORS:
            parts.append(f"{TEXT_OPERATORS[item.operator]}(CAST({column} AS VARCHAR), ?)")
            parameters.append(_single(item))
        elif item.operator == "isnull":
            flag = _single(item).strip().lower()
            if flag not in ("true", "false"):
                raise FilterError(f"{item.column}__isnull must be true or false, not {flag!r}")
            parts.append(f"{column} IS {'' if flag == 'true' else 'NOT '}NULL")
        else:
            raise FilterError(f"unknown operator {item.operator!r}; use one of {', '.join(OPERATORS)}")
    return (" WHERE " + " AND ".join(parts) if parts else ""), parameters


def _fitting(item: RowFilter, kind: str, value: str) -> str:
    """Return `value`, or raise FilterError when the column is an integer and the value is not one.

    DuckDB casts the text "1.5" to the integer 2, so `id__eq=1.5` would match the row of id 2.
    """
    if kind in INTEGER_TYPES and not _INTEGER.fullmatch(value):
        raise FilterError(
            f"{item.column}__{item.operator}: {value!r} is not a whole number, and {item.column} is {kind}"
        )
    return value


def _single(item: RowFilter) -> str:
    if len(item.values) != 1:
        raise FilterError(f"{item.column}__{item.operator} takes one value, not {len(item.values)}")
    return item.values[0]


def parse_filters(parameters: list[tuple[str, str]], reserved: set[str]) -> list[RowFilter]:
    """Return the filters among query parameters `column__operator=value`, skipping `reserved` names.

    Raise FilterError for any other parameter, so a misspelt filter is not silently ignored.
    """
    grouped: dict[tuple[str, str], list[str]] = {}
    for key, value in parameters:
        if key in reserved:
            continue
        column, separator, operator = key.rpartition("__")
        if not separator or not column or operator not in OPERATORS:
            raise FilterError(
                f"unknown parameter {key!r}; filters are written column__operator=value with an operator "
                f"among {', '.join(OPERATORS)}"
            )
        grouped.setdefault((column, operator), []).append(value)
    return [
        RowFilter(column=column, operator=operator, values=tuple(values))
        for (column, operator), values in grouped.items()
    ]


class RowPosition(msgspec.Struct, array_like=True, frozen=True):
    """The last row of a page, named so that the name survives DuckDB's renumbering of rows.

    DuckDB renumbers row ids when a checkpoint compacts a table after deletes, so a page
    cursor cannot hold a row id. Rows of one file that one build inserted keep their
    relative order, though: a row is named by its file id, the time of the build that
    inserted it, and its place among those rows. A table without those columns (one
    that is always rebuilt whole) names the row by its row id and the table's version.
    """

    # A digest of the collection, filters and sort order that the position belongs to.
    query: str
    file_id: str | None
    # aggregation_time of the row, in ISO format, or the table's version as text.
    added: str
    # The row's place among the rows of its file and build, or its row id.
    ordinal: int


class StaleCursorError(Exception):
    """Raised when the row that a cursor names is gone: its file was changed or removed, or the table rebuilt."""


class RowsQuery(msgspec.Struct, kw_only=True, frozen=True):
    """A page of a table: projection, filters, sort order and the position after which it starts."""

    columns: tuple[str, ...] | None = None
    filters: tuple[RowFilter, ...] = ()
    # (column, descending) pairs; rows with equal keys keep the order in which they were added.
    sort: tuple[tuple[str, bool], ...] = ()
    limit: int = 100
    # The last row of the previous page.
    after: RowPosition | None = None
    count_total: bool = False

    def digest(self, collection_id: str) -> str:
        """Return what a cursor records of the collection, filters and sort order it was made for."""
        parts = [collection_id, sorted((f.column, f.operator, list(f.values)) for f in self.filters), self.sort]
        return hashlib.sha256(msgspec.json.encode(parts)).hexdigest()[:24]


def order_clause(sort: tuple[tuple[str, bool], ...], types: dict[str, str]) -> str:
    """Return an ORDER BY clause for `sort`, then the row id, with NULL values last."""
    keys = []
    for column, descending in sort:
        if column not in types:
            raise FilterError(f"sort: unknown column {column!r}; the table has {', '.join(sorted(types))}")
        keys.append(f"{quote_name(column)} {'DESC' if descending else 'ASC'} NULLS LAST")
    return " ORDER BY " + ", ".join([*keys, "rowid ASC"])


def after_clause(sort: tuple[tuple[str, bool], ...], table: str, anchor: int) -> tuple[str, list[Any]]:
    """Return the condition that keeps the rows after the row `anchor` (a row id) in the order of `order_clause`.

    The anchor's key values are read from the table by subqueries, so they keep their
    exact DuckDB values (NaN, nanoseconds, blobs) and no value passes through the client.
    A row comes after the anchor when its keys are equal up to some position and its key
    there comes later, with NULL values last.
    """
    alternatives: list[str] = []
    parameters: list[Any] = []
    equal: list[str] = []
    for column, descending in sort:
        name = quote_name(column)
        value = f"(SELECT {name} FROM {table} WHERE rowid = ?)"
        comparison = "<" if descending else ">"
        alternatives.append(
            "("
            + " AND ".join([*equal, f"{value} IS NOT NULL", f"({name} {comparison} {value} OR {name} IS NULL)"])
            + ")"
        )
        parameters += [anchor] * (len(equal) + 2)
        equal.append(f"{name} IS NOT DISTINCT FROM {value}")
    alternatives.append("(" + " AND ".join([*equal, "rowid > ?"]) + ")")
    parameters += [anchor] * (len(equal) + 1)
    return "(" + " OR ".join(alternatives) + ")", parameters
