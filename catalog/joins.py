"""Build the table of a persisted join from the tables of its two data collections.

The rules follow Depictio 1.5.1's `data join`:

- The keys are `on_columns`, plus `depictio_run_id` when both sides have it and neither
  side's metatype is exactly `Metadata`.
- A key whose type differs between the sides is cast on both sides to the common
  supertype of the widening rule (catalog.widen), which is VARCHAR when there is none.
  Depictio casts every differing key to text.
- A right-side column that is not a key and whose name the left side has too is
  dropped: the left side wins, and no suffix is added.
- With `granularity`, the side with more rows per key is first rolled up to one row per
  key.
- A full join coalesces each key, so a row found on one side only keeps its key.

The result is built under a scratch name and swapped in within one transaction, with its
table record and column specs, so a reader never sees a half-built join. The table has
no constraint or index.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, datetime

import duckdb
import msgspec

from catalog import specs
from catalog.build import SCRATCH_SUFFIX, store_table_record, table_name
from catalog.events import EventLog
from catalog.join_plans import METADATA_METATYPE, JoinPlan, JoinSide
from catalog.lake import claim_table_writes, is_lake
from catalog.records import ColumnSpec, TableRecord
from catalog.row_filters import quote_name
from catalog.runs_files import utc_now
from catalog.schema import DATA_SCHEMA
from catalog.store import Connection, Store, rollback
from catalog.tables import fingerprint, table_state
from catalog.widen import INTEGER_TYPES, common_type
from catalog.write_faults import classify_write_error
from config import Granularity

logger = logging.getLogger(__name__)

RUN_KEY = "depictio_run_id"
# The column in which every aggregated row records when it was written.
BUILD_TIME_COLUMN = "aggregation_time"
# Roll-up functions of `granularity`, as Depictio 1.5.1 names them, and their SQL.
# `first` and `last` follow the order in which the rows were stored (DuckDB's rowid).
ROLLUP_FUNCTIONS = {
    "mean": "avg({column})",
    "sum": "sum({column})",
    "min": "min({column})",
    "max": "max({column})",
    "first": "first({column} ORDER BY {row})",
    "last": "last({column} ORDER BY {row})",
    "count": "count({column})",
    "median": "median({column})",
}
# Functions that need a number: they fail or mean nothing on text, dates or booleans.
_NUMERIC_FUNCTIONS = ("mean", "sum", "median")
_NUMERIC_PREFIXES = (*INTEGER_TYPES, "FLOAT", "DOUBLE", "DECIMAL")
_SQL_HOW = {"inner": "INNER JOIN", "left": "LEFT JOIN", "right": "RIGHT JOIN", "full": "FULL OUTER JOIN"}
# Hidden column that carries a side's storage order into a roll-up.
_ROW_COLUMN = "depictiod_row__"
# Prefix of the catalog_meta key that stores a join's last outcome, followed by the join id.
_STATUS_KEY = "join_status:"

Columns = list[tuple[str, str]]


# A join may give at most this many times the rows of its larger side, or MIN_ROW_CAP rows when
# that is more. A many-to-many join grows with the product of its sides, and its build
# blocks every other catalog write, so past the cap it fails with a reason instead.
MAX_FAN_OUT = 10
MIN_ROW_CAP = 1_000_000


def max_join_rows(left_rows: int, right_rows: int) -> int:
    """Return the most rows that a join of sides of these sizes may give."""
    return max(MAX_FAN_OUT * max(left_rows, right_rows), MIN_ROW_CAP)


class JoinDefinitionError(Exception):
    """Raised when a join cannot run on its sides' tables as they are: a column or a function does not fit."""


class JoinStatus(msgspec.Struct, kw_only=True, frozen=True):
    """The last outcome of a join, kept in the catalog so that users can read why a join has no table."""

    # built, unchanged, skipped (a side has no table), dropped (the table went with a side's) or error.
    outcome: str
    # Why the join was skipped, dropped or failed.
    message: str | None = None
    # The fan-out warning of the last build, when the result had more rows than its larger input.
    warning: str | None = None
    # The inputs at that outcome: the join's definition and the aggregation hash of each side.
    inputs_fingerprint: str = ""
    rows: int = 0
    updated_at: str = ""


class JoinOutcome(msgspec.Struct, kw_only=True, frozen=True):
    join_id: str
    name: str
    status: JoinStatus
    # False when the inputs and the outcome are the same as at the previous run, so there is nothing to log.
    changed: bool
    seconds: float = 0.0


class _Side(msgspec.Struct, kw_only=True, frozen=True):
    side: JoinSide
    label: str
    columns: Columns
    aggregation_hash: str
    row_count: int
    size_bytes: int


class JoinRepository:
    def __init__(self, store: Store, events: EventLog) -> None:
        self._store = store
        self._events = events

    def run(self, plan: JoinPlan) -> JoinOutcome:
        """Bring the join's table up to date with its sides' tables, record the outcome, and publish a change."""
        before = table_state(self._store, plan.join_id)
        outcome = self._store.write_steps_retrying(lambda connection: run_join(connection, plan))
        status = outcome.status
        if outcome.changed and status.outcome in ("built", "dropped"):
            after = table_state(self._store, plan.join_id)
            self._events.table_updated(
                plan.join_id,
                outcome=status.outcome,
                rows=status.rows,
                rows_before=before[0] if before else None,
                aggregation_version=None,
            )
            self._events.schema_changed(plan.join_id, before[1] if before else {}, after[1] if after else {})
        return outcome

    def status(self, join_id: str) -> JoinStatus | None:
        """Return the last recorded outcome of a join, or None before its first run."""
        row = self._store.query_one("SELECT value FROM catalog_meta WHERE key = ?", [_STATUS_KEY + join_id])
        return msgspec.json.decode(str(row[0]), type=JoinStatus) if row else None


def run_join(connection: Connection, plan: JoinPlan) -> JoinOutcome:
    """Build, keep, drop or skip the join's table on the writer connection, as its sides' tables require."""
    started = time.monotonic()
    previous = _stored_status(connection, plan.join_id)
    left = _side_table(connection, plan.left, "left")
    right = _side_table(connection, plan.right, "right")
    inputs = fingerprint(
        [plan.definition, *(side.aggregation_hash if side is not None else "none" for side in (left, right))]
    )

    if plan.problem is not None or left is None or right is None:
        message = plan.problem or _missing_sides_message(plan, left, right)
        if _table_version(connection, plan.join_id) is not None:
            # The join's rows came from a side's table that is gone, so they go too.
            status = _new_status("dropped", inputs, message=message)
            _drop(connection, plan.join_id, status)
            return _finish(connection, plan, status, previous, started, stored=True)
        return _finish(connection, plan, _new_status("skipped", inputs, message=message), previous, started)

    existing = connection.execute(
        "SELECT inputs_fingerprint, row_count FROM aggregated_tables WHERE data_collection_id = ?", [plan.join_id]
    ).fetchone()
    if existing is not None and existing[0] == inputs:
        if previous is not None and previous.inputs_fingerprint == inputs and previous.outcome != "error":
            status = msgspec.structs.replace(previous, outcome="unchanged")
            return JoinOutcome(join_id=plan.join_id, name=plan.name, status=status, changed=False)
        # The table fits the inputs, but the recorded outcome is of other inputs.
        return _finish(connection, plan, _new_status("built", inputs, rows=int(existing[1])), previous, started)
    if previous is not None and previous.outcome == "error" and previous.inputs_fingerprint == inputs:
        return JoinOutcome(join_id=plan.join_id, name=plan.name, status=previous, changed=False)

    try:
        status = _build(connection, plan, left, right, inputs)
    except (JoinDefinitionError, duckdb.Error) as error:
        failure = classify_write_error(error)
        if failure is not None:
            # Recorded as the join's error, it would not be tried again until its sides change.
            raise failure from error
        # The old table, if any, stays: it matches the last inputs the join could use.
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        return _finish(connection, plan, _new_status("error", inputs, message=message), previous, started)
    return _finish(connection, plan, status, previous, started, stored=True)


def _finish(
    connection: Connection,
    plan: JoinPlan,
    status: JoinStatus,
    previous: JoinStatus | None,
    started: float,
    stored: bool = False,
) -> JoinOutcome:
    """Record the status unless `stored` (a build or a drop stores it in the transaction that changes the table)."""
    changed = previous is None or (previous.outcome, previous.message, previous.inputs_fingerprint) != (
        status.outcome,
        status.message,
        status.inputs_fingerprint,
    )
    if changed and not stored:
        connection.execute("BEGIN TRANSACTION")
        try:
            _store_status(connection, plan.join_id, status)
            connection.execute("COMMIT")
        except BaseException:
            rollback(connection)
            raise
    return JoinOutcome(
        join_id=plan.join_id, name=plan.name, status=status, changed=changed, seconds=time.monotonic() - started
    )


def _build(connection: Connection, plan: JoinPlan, left: _Side, right: _Side, inputs: str) -> JoinStatus:
    keys = _keys(plan, left, right)
    key_types = _key_types(keys, left, right)
    left_names = {name for name, _ in left.columns}
    kept_right = [(name, kind) for name, kind in right.columns if name not in keys and name not in left_names]

    left_rows, right_rows = left.row_count, right.row_count
    left_sql = _side_select(left, keys, key_types, [c for c in left.columns if c[0] not in keys])
    right_sql = _side_select(right, keys, key_types, kept_right)
    if plan.granularity is not None:
        rolled = _rolled_up_side(connection, left_sql, right_sql, keys)
        if rolled == "left":
            left_sql = _rollup(left, left_sql, keys, [c for c in left.columns if c[0] not in keys], plan.granularity)
            left_rows = _count(connection, left_sql)
        elif rolled == "right":
            right_sql = _rollup(right, right_sql, keys, kept_right, plan.granularity)
            right_rows = _count(connection, right_sql)

    built_at = utc_now()
    selected = []
    for name, _kind in left.columns:
        quoted = quote_name(name)
        if name in keys:
            selected.append(f"COALESCE(l.{quoted}, r.{quoted}) AS {quoted}")
        elif name == BUILD_TIME_COLUMN:
            # Each build stamps its own time, so a page cursor of an earlier build is known to be stale.
            selected.append(f"CAST(? AS TIMESTAMP) AS {quoted}")
        else:
            selected.append(f"l.{quoted}")
    selected += [f"r.{quote_name(name)}" for name, _ in kept_right]
    condition = " AND ".join(f"l.{quote_name(key)} = r.{quote_name(key)}" for key in keys)
    query = (
        f"SELECT {', '.join(selected)} FROM ({left_sql}) AS l {_SQL_HOW[plan.how]} ({right_sql}) AS r ON {condition}"
    )

    # On a lake, processes share the data schema, so each builds in its own temporary database.
    in_lake = is_lake(connection)
    scratch = f'{"temp.main" if in_lake else DATA_SCHEMA}."dc_{plan.join_id}{SCRATCH_SUFFIX}"'
    connection.execute(f"DROP TABLE IF EXISTS {scratch}")
    try:
        stamps = [built_at] if BUILD_TIME_COLUMN in left_names and BUILD_TIME_COLUMN not in keys else []
        cap = max_join_rows(left_rows, right_rows)
        kind = "TEMP TABLE" if in_lake else "TABLE"
        connection.execute(f"CREATE {kind} {scratch} AS {query} LIMIT ?", [*stamps, cap + 1])
        if _count(connection, f"SELECT * FROM {scratch}") > cap:
            raise JoinDefinitionError(
                f"the join gives more than {cap:,} rows ({MAX_FAN_OUT} times its larger side, or "
                f"{MIN_ROW_CAP:,}), so its keys {keys} match many rows on both sides; join on more columns, or "
                "roll one side up with granularity"
            )
        # A temporary table is listed under the database "temp", schema "main".
        database = "temp" if in_lake else None
        schema = "main" if in_lake else DATA_SCHEMA
        columns = [
            (str(name), str(kind))
            for name, kind in connection.execute(
                "SELECT column_name, data_type FROM duckdb_columns() "
                "WHERE database_name = coalesce(?, current_database()) AND schema_name = ? AND table_name = ? "
                "ORDER BY column_index",
                [database, schema, f"dc_{plan.join_id}{SCRATCH_SUFFIX}"],
            ).fetchall()
        ]
        rows = _count(connection, f"SELECT * FROM {scratch}")
        warning = _fan_out_warning(plan, rows, left_rows, right_rows)
        descriptions = _descriptions(connection, [left.side.collection_id, right.side.collection_id])
        column_specs = specs.compute(connection, scratch, columns, descriptions)
        status = _new_status("built", inputs, warning=warning, rows=rows)
        table = TableRecord(
            data_collection_id=plan.join_id,
            table_name=table_name(plan.join_id),
            row_count=rows,
            column_count=len(columns),
            # As for a table of files, the bytes of its inputs.
            size_bytes=left.size_bytes + right.size_bytes,
            aggregation_version=0,
            aggregation_time=built_at,
            aggregation_hash="",
            inputs_fingerprint=inputs,
            settings_fingerprint=fingerprint([plan.definition]),
            drift=[],
        )
        _swap(connection, scratch, table, column_specs, status)
        return status
    finally:
        connection.execute(f"DROP TABLE IF EXISTS {scratch}")


def _keys(plan: JoinPlan, left: _Side, right: _Side) -> list[str]:
    """Return the join keys; raise JoinDefinitionError naming the `on_columns` that a side lacks."""
    problems = []
    for side in (left, right):
        names = [name for name, _ in side.columns]
        absent = [column for column in plan.on_columns if column not in names]
        if absent:
            problems.append(
                f"join columns {absent!r} not found in the {side.label} data collection {side.side.tag!r} "
                f"({side.side.collection_id}), whose columns are {', '.join(names)}"
            )
    if problems:
        raise JoinDefinitionError("; ".join(problems) + "; fix on_columns or the files")

    keys = list(plan.on_columns)
    has_run = all(RUN_KEY in {name for name, _ in side.columns} for side in (left, right))
    metadata = METADATA_METATYPE in (left.side.metatype, right.side.metatype)
    if has_run and not metadata and RUN_KEY not in keys:
        keys.append(RUN_KEY)
    return keys


def _key_types(keys: list[str], left: _Side, right: _Side) -> dict[str, str]:
    """Return the type of each key on both sides: its own when the sides agree, else their common supertype."""
    left_types, right_types = dict(left.columns), dict(right.columns)
    return {key: common_type(left_types[key], right_types[key]) for key in keys}


def _side_select(side: _Side, keys: list[str], key_types: dict[str, str], others: Columns) -> str:
    """Return a SELECT of a side's keys, cast to their join types, its other `others` columns and its row order."""
    types = dict(side.columns)
    selected = []
    for key in keys:
        quoted = quote_name(key)
        if types[key] == key_types[key]:
            selected.append(quoted)
        else:
            selected.append(f"CAST({quoted} AS {key_types[key]}) AS {quoted}")
    selected += [quote_name(name) for name, _ in others]
    # NOTE: rowid is DuckDB's; DuckLake would need a stored row number for `first` and `last`.
    selected.append(f"rowid AS {_ROW_COLUMN}")
    return f"SELECT {', '.join(selected)} FROM {table_name(side.side.collection_id)}"


def _rolled_up_side(connection: Connection, left_sql: str, right_sql: str, keys: list[str]) -> str | None:
    """Return the side with more rows per key (`left` or `right`), or None when both have one row per key.

    On a tie above one row per key, the right side is rolled up.
    """
    ratios = []
    key_list = ", ".join(quote_name(key) for key in keys)
    for sql in (left_sql, right_sql):
        rows = _count(connection, sql)
        distinct = _count(connection, f"SELECT DISTINCT {key_list} FROM ({sql}) AS side")
        ratios.append(rows / distinct if distinct else 0.0)
    left_ratio, right_ratio = ratios
    if left_ratio > right_ratio and left_ratio > 1:
        return "left"
    if right_ratio > 1:
        return "right"
    return None


def _rollup(side: _Side, side_sql: str, keys: list[str], others: Columns, granularity: Granularity) -> str:
    """Return a SELECT of one row per key of the side, each other column reduced by the functions of `granularity`."""
    overrides = {}
    for override in granularity.column_overrides:
        column, function = override.get("column"), override.get("function")
        if column is None or function is None:
            raise JoinDefinitionError(
                f"granularity.column_overrides entry {override!r} needs the keys 'column' and 'function'"
            )
        overrides[column] = function

    selected = [quote_name(key) for key in keys]
    row = quote_name(_ROW_COLUMN)
    for name, kind in others:
        numeric = kind.startswith(_NUMERIC_PREFIXES)
        function = overrides.get(name, granularity.numeric_default if numeric else granularity.categorical_default)
        if function not in ROLLUP_FUNCTIONS:
            raise JoinDefinitionError(
                f"granularity: unknown function {function!r} for column {name!r} of {side.side.tag!r}; "
                f"use one of {', '.join(ROLLUP_FUNCTIONS)}"
            )
        if function in _NUMERIC_FUNCTIONS and not numeric:
            raise JoinDefinitionError(
                f"granularity: function {function!r} needs numbers, but column {name!r} of {side.side.tag!r} "
                f"is {kind}; use first, last, min, max or count for it in column_overrides or categorical_default"
            )
        quoted = quote_name(name)
        selected.append(f"{ROLLUP_FUNCTIONS[function].format(column=quoted, row=row)} AS {quoted}")
    key_list = ", ".join(quote_name(key) for key in keys)
    return f"SELECT {', '.join(selected)} FROM ({side_sql}) AS side GROUP BY {key_list}"


def _count(connection: Connection, sql: str) -> int:
    row = connection.execute(f"SELECT count(*) FROM ({sql}) AS counted").fetchone()
    return int(row[0]) if row else 0


def _fan_out_warning(plan: JoinPlan, rows: int, left_rows: int, right_rows: int) -> str | None:
    """Return a warning when an inner, left or right join gave more rows than its larger input."""
    larger = max(left_rows, right_rows)
    if plan.how == "full" or rows <= larger:
        return None
    return (
        f"join {plan.name!r} gave {rows} rows, more than its larger input ({larger} rows), so some keys match "
        "several rows on both sides; check on_columns, or set granularity to roll up one side"
    )


def _descriptions(connection: Connection, collection_ids: list[str]) -> dict[str, str]:
    """Return the column descriptions of the sides' tables; the left side's come last and win."""
    descriptions: dict[str, str] = {}
    for collection_id in reversed(collection_ids):
        rows = connection.execute(
            "SELECT name, description FROM column_specs WHERE data_collection_id = ? AND description IS NOT NULL",
            [collection_id],
        ).fetchall()
        descriptions.update({str(name): str(text) for name, text in rows})
    return descriptions


def _swap(
    connection: Connection, scratch: str, table: TableRecord, column_specs: list[ColumnSpec], status: JoinStatus
) -> TableRecord:
    """Replace the join's table by the scratch table, with its record, specs and status, in one transaction."""
    collection_id = table.data_collection_id
    connection.execute("BEGIN TRANSACTION")
    try:
        claim_table_writes(connection)
        version = (_table_version(connection, collection_id) or 0) + 1
        table = msgspec.structs.replace(
            table,
            aggregation_version=version,
            aggregation_hash=hashlib.sha256(f"{table.inputs_fingerprint}:{version}".encode()).hexdigest(),
        )
        connection.execute(f"DROP TABLE IF EXISTS {table_name(collection_id)}")
        if scratch.startswith("temp."):
            connection.execute(f"CREATE TABLE {table_name(collection_id)} AS SELECT * FROM {scratch}")
        else:
            connection.execute(f'ALTER TABLE {scratch} RENAME TO "dc_{collection_id}"')
        store_table_record(connection, table, column_specs)
        _store_status(connection, collection_id, status)
        connection.execute("COMMIT")
    except BaseException:
        rollback(connection)
        raise
    return table


def _drop(connection: Connection, collection_id: str, status: JoinStatus) -> None:
    connection.execute("BEGIN TRANSACTION")
    try:
        claim_table_writes(connection)
        connection.execute(f"DROP TABLE IF EXISTS {table_name(collection_id)}")
        connection.execute("DELETE FROM aggregated_tables WHERE data_collection_id = ?", [collection_id])
        connection.execute("DELETE FROM column_specs WHERE data_collection_id = ?", [collection_id])
        _store_status(connection, collection_id, status)
        connection.execute("COMMIT")
    except BaseException:
        rollback(connection)
        raise


def _table_version(connection: Connection, collection_id: str) -> int | None:
    row = connection.execute(
        "SELECT aggregation_version FROM aggregated_tables WHERE data_collection_id = ?", [collection_id]
    ).fetchone()
    return int(row[0]) if row else None


def _side_table(connection: Connection, side: JoinSide | None, label: str) -> _Side | None:
    """Return a side's table as it is now, or None when the side has no table."""
    if side is None:
        return None
    record = connection.execute(
        "SELECT aggregation_hash, row_count, size_bytes FROM aggregated_tables WHERE data_collection_id = ?",
        [side.collection_id],
    ).fetchone()
    columns = [
        (str(name), str(kind))
        for name, kind in connection.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [DATA_SCHEMA, f"dc_{side.collection_id}"],
        ).fetchall()
    ]
    if record is None or not columns:
        return None
    return _Side(
        side=side,
        label=label,
        columns=columns,
        aggregation_hash=str(record[0]),
        row_count=int(record[1]),
        size_bytes=int(record[2] or 0),
    )


def _missing_sides_message(plan: JoinPlan, left: _Side | None, right: _Side | None) -> str:
    missing = [
        f"the {label} data collection {side.tag!r} ({side.collection_id})"
        for label, side, table in (("left", plan.left, left), ("right", plan.right, right))
        if side is not None and table is None
    ]
    return f"{' and '.join(missing)} {'have' if len(missing) > 1 else 'has'} no table yet; the join is built once both sides have one"


def _new_status(
    outcome: str, inputs: str, message: str | None = None, warning: str | None = None, rows: int = 0
) -> JoinStatus:
    return JoinStatus(
        outcome=outcome,
        message=message,
        warning=warning,
        inputs_fingerprint=inputs,
        rows=rows,
        updated_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _stored_status(connection: Connection, join_id: str) -> JoinStatus | None:
    row = connection.execute("SELECT value FROM catalog_meta WHERE key = ?", [_STATUS_KEY + join_id]).fetchone()
    return msgspec.json.decode(str(row[0]), type=JoinStatus) if row else None


def _store_status(connection: Connection, join_id: str, status: JoinStatus) -> None:
    connection.execute("DELETE FROM catalog_meta WHERE key = ?", [_STATUS_KEY + join_id])
    connection.execute(
        "INSERT INTO catalog_meta (key, value) VALUES (?, ?)",
        [_STATUS_KEY + join_id, msgspec.json.encode(status).decode()],
    )


def delete_status(connection: Connection, join_id: str) -> None:
    """Forget a join's outcome, when its collection is removed."""
    connection.execute("DELETE FROM catalog_meta WHERE key = ?", [_STATUS_KEY + join_id])
