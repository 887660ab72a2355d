"""Row filters on aggregated tables, turned into SQL with bound values.

A filter names a column of the table, an operator from a fixed list and a value. The SQL
contains only column names taken from the table's own schema (quoted) and types from that
schema. Every value a client sends is a bound parameter, so nothing a client writes
becomes SQL text.
"""

from __future__ import annotations

from typing import Any

import msgspec

# Operators that compare the column with one value, cast to the column's type.
COMPARISONS = {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
# Operators on the column's text form.
TEXT_OPERATORS = {"contains": "contains", "startswith": "starts_with"}
OPERATORS = (*COMPARISONS, "in", *TEXT_OPERATORS, "isnull")
# The maximum number of values in one `in` filter, and of filters in one request.
MAX_IN_VALUES = 1000
MAX_FILTERS = 50


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
            parameters.append(_single(item))
        elif item.operator == "in":
            values = [value for text in item.values for value in text.split(",")]
            if not 1 <= len(values) <= MAX_IN_VALUES:
                raise FilterError(f"{item.column}__in lists {len(values)} values; list 1 to {MAX_IN_VALUES}")
            parts.append(f"{column} IN ({', '.join([f'CAST(? AS {kind})'] * len(values))})")
            parameters.extend(values)
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


class RowsQuery(msgspec.Struct, kw_only=True, frozen=True):
    """A page of a table: projection, filters, sort order and the position after which it starts."""

    columns: tuple[str, ...] | None = None
    filters: tuple[RowFilter, ...] = ()
    # (column, descending) pairs; rows with equal keys keep the order in which they were added.
    sort: tuple[tuple[str, bool], ...] = ()
    limit: int = 100
    # The sort key values and the row id of the last row of the previous page.
    after: tuple[tuple[Any, ...], int] | None = None
    count_total: bool = False


def order_clause(sort: tuple[tuple[str, bool], ...], types: dict[str, str]) -> str:
    """Return an ORDER BY clause for `sort`, then the row id, with NULL values last."""
    keys = []
    for column, descending in sort:
        if column not in types:
            raise FilterError(f"sort: unknown column {column!r}; the table has {', '.join(sorted(types))}")
        keys.append(f"{quote_name(column)} {'DESC' if descending else 'ASC'} NULLS LAST")
    return " ORDER BY " + ", ".join([*keys, "rowid ASC"])


def after_clause(query: RowsQuery, types: dict[str, str]) -> tuple[str, list[Any]]:
    """Return the condition (or "") that keeps the rows after the cursor of `query`, and its parameters.

    Rows come in the order of `order_clause`. A row comes after the cursor when its keys are
    equal up to some position and its key there comes later, with NULL values last.
    """
    if query.after is None:
        return "", []
    values, row_id = query.after
    if len(values) != len(query.sort):
        raise FilterError("next: the cursor belongs to another sort order; start again without it")
    alternatives: list[str] = []
    parameters: list[Any] = []
    equal: list[str] = []
    equal_parameters: list[Any] = []
    for (column, descending), value in zip(query.sort, values, strict=True):
        name, kind = quote_name(column), types[column]
        if value is not None:
            comparison = "<" if descending else ">"
            alternatives.append(
                "(" + " AND ".join([*equal, f"({name} {comparison} CAST(? AS {kind}) OR {name} IS NULL)"]) + ")"
            )
            parameters += [*equal_parameters, value]
            equal.append(f"{name} = CAST(? AS {kind})")
            equal_parameters.append(value)
        else:
            equal.append(f"{name} IS NULL")
    alternatives.append("(" + " AND ".join([*equal, "rowid > ?"]) + ")")
    parameters += [*equal_parameters, row_id]
    return "(" + " OR ".join(alternatives) + ")", parameters
