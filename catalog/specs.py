"""Column specs: the per-column statistics that Depictio dashboards read."""

from __future__ import annotations

import logging
import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import duckdb

from catalog.records import ColumnSpec
from catalog.store import Connection
from catalog.widen import INTEGER_TYPES

logger = logging.getLogger(__name__)

_INTEGER_PREFIXES = INTEGER_TYPES
# Columns whose statistics one query computes.
COLUMNS_PER_QUERY = 64
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
        # NaN and infinities make variance and its kin fail, so statistics use finite values.
        value = f"(CASE WHEN isfinite(CAST({quoted} AS DOUBLE)) THEN CAST({quoted} AS DOUBLE) END)"
        exact = quoted if duckdb_type.startswith(_INTEGER_PREFIXES) else value
        return common + [
            ("min", f"min({exact})"),
            ("max", f"max({exact})"),
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
    """Compute the specs of every column of `table`, in one scan per COLUMNS_PER_QUERY columns.

    When a scan fails, each of its columns is computed on its own, and a column that still
    fails keeps only its counts, so one odd column does not block the table.
    """
    plan = [(name, kind, _aggregates(name, kind)) for name, kind in columns]
    stats: list[dict[str, Any]] = []
    # DuckDB takes minutes and gigabytes to plan one query of thousands of aggregates, so a
    # wide table is described a slice of columns at a time.
    for start in range(0, len(plan), COLUMNS_PER_QUERY):
        part = plan[start : start + COLUMNS_PER_QUERY]
        try:
            values = iter(_run(connection, table, [aggregate for _, _, aggregates in part for aggregate in aggregates]))
            stats += [{method: next(values) for method, _ in aggregates} for _, _, aggregates in part]
        except duckdb.Error as error:
            logger.warning(
                "column statistics of %s failed in one scan (%s); computing them column by column", table, error
            )
            stats += [_column_stats(connection, table, name, aggregates) for name, _, aggregates in part]

    result = []
    for (name, kind, _), column_stats in zip(plan, stats, strict=True):
        # Depictio reads the distinct count as `unique` for numbers and `nunique` for text.
        column_stats["nunique"] = column_stats.get("unique")
        result.append(
            ColumnSpec(
                name=name,
                duckdb_type=kind,
                type=depictio_type(kind),
                description=descriptions.get(name),
                specs=column_stats,
            )
        )
    return result


def _run(connection: Connection, table: str, aggregates: list[tuple[str, str]]) -> list[Any]:
    row = connection.execute(f"SELECT {', '.join(sql for _, sql in aggregates)} FROM {table}").fetchone() or ()
    return [_json_value(value) for value in row]


def _column_stats(connection: Connection, table: str, name: str, aggregates: list[tuple[str, str]]) -> dict[str, Any]:
    try:
        return dict(zip([method for method, _ in aggregates], _run(connection, table, aggregates), strict=True))
    except duckdb.Error as error:
        logger.warning("column statistics of %s.%s failed (%s); keeping only its counts", table, name, error)
        counts = aggregates[:2]
        return dict(zip([method for method, _ in counts], _run(connection, table, counts), strict=True))


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
