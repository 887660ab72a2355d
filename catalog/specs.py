"""Column specs: the per-column statistics that Depictio dashboards read."""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from catalog.records import ColumnSpec
from catalog.store import Connection
from catalog.widen import INTEGER_TYPES

_INTEGER_PREFIXES = INTEGER_TYPES
_NUMERIC_PREFIXES = (*INTEGER_TYPES, "FLOAT", "DOUBLE", "DECIMAL")


def depictio_type(duckdb_type: str) -> str:
    """Return Depictio's name for a DuckDB column type (int64, float64, bool, datetime, time, object)."""
    if duckdb_type.startswith(_INTEGER_PREFIXES):
        return "int64"
    if duckdb_type.startswith(("FLOAT", "DOUBLE", "DECIMAL")):
        return "float64"
    if duckdb_type == "BOOLEAN":
        return "bool"
    if duckdb_type.startswith(("DATE", "TIMESTAMP")):
        return "datetime"
    if duckdb_type.startswith(("TIME", "INTERVAL")):
        return "time"
    return "object"


def _aggregates(column: str, duckdb_type: str) -> list[tuple[str, str]]:
    quoted = '"' + column.replace('"', '""') + '"'
    common = [
        ("count", f"count({quoted})"),
        ("nulls", f"count(*) - count({quoted})"),
        ("unique", f"count(DISTINCT {quoted})"),
    ]
    if duckdb_type.startswith(_NUMERIC_PREFIXES):
        value = f"CAST({quoted} AS DOUBLE)"
        return common + [
            ("min", f"min({quoted})"),
            ("max", f"max({quoted})"),
            ("sum", f"sum({value})"),
            ("average", f"avg({value})"),
            ("median", f"median({value})"),
            ("range", f"max({value}) - min({value})"),
            ("variance", f"var_samp({value})"),
            ("std_dev", f"stddev_samp({value})"),
            ("skewness", f"skewness({value})"),
            ("kurtosis", f"kurtosis({value})"),
        ]
    if duckdb_type == "BOOLEAN":
        return common + [("min", f"bool_and({quoted})"), ("max", f"bool_or({quoted})"), ("sum", f"count_if({quoted})")]
    if duckdb_type.startswith(("DATE", "TIMESTAMP", "TIME")):
        return common + [("min", f"min({quoted})"), ("max", f"max({quoted})")]
    return common + [("min", f"min({quoted})"), ("max", f"max({quoted})"), ("mode", f"mode({quoted})")]


def compute(
    connection: Connection, table: str, columns: list[tuple[str, str]], descriptions: dict[str, str]
) -> list[ColumnSpec]:
    """Compute the specs of every column of `table` in one scan."""
    plan = [(name, kind, _aggregates(name, kind)) for name, kind in columns]
    expressions = [expression for _, _, aggregates in plan for _, expression in aggregates]
    row = connection.execute(f"SELECT {', '.join(expressions)} FROM {table}").fetchone() or ()
    values = iter(row)

    result = []
    for name, kind, aggregates in plan:
        stats = {method: _json_value(next(values)) for method, _ in aggregates}
        # Depictio reads the distinct count as `unique` for numbers and `nunique` for text.
        stats["nunique"] = stats["unique"]
        result.append(
            ColumnSpec(
                name=name, duckdb_type=kind, type=depictio_type(kind), description=descriptions.get(name), specs=stats
            )
        )
    return result


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value
