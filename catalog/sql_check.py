"""Check a client's SQL query and rewrite its table names, through DuckDB's own parser.

The query text goes to DuckDB only as a bound parameter of `json_serialize_sql`, which
parses it without running it. This module walks the parse tree (JSON) and rejects
anything but one SELECT that reads the tables it is given, calls functions of an
allow-list and uses no parameters. It replaces every table name with the collection's
aggregated table, or for administrators with a catalog table without its secret columns.
`json_deserialize_sql` turns the tree back into SQL, which is parsed again and must give
the same tree. The SQL that runs is therefore DuckDB's own rendering of a checked tree,
never the client's text.

The tree's JSON layout is that of DuckDB 1.5.5.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
import msgspec

from catalog.schema import DATA_SCHEMA
from catalog.store import Connection

# Table functions that read nothing but their arguments.
TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})

# Functions that reveal the host, the settings or the session, change the connection's
# state, write, sleep, or parse or plan other SQL. Every other scalar, aggregate and macro
# function of DuckDB's `main` schema is allowed. No `pg_catalog` function is.
DENIED_FUNCTIONS = frozenset(
    {
        "getenv",
        "getvariable",
        "current_setting",
        "current_query",
        "current_query_id",
        "current_connection_id",
        "current_transaction_id",
        "txid_current",
        "current_database",
        "current_catalog",
        "current_schema",
        "current_schemas",
        "current_role",
        "current_user",
        "session_user",
        "user",
        "in_search_path",
        "get_block_size",
        "nextval",
        "currval",
        "setseed",
        "sleep_ms",
        "write_log",
        "parse_duckdb_log_message",
        "json_serialize_sql",
        "json_deserialize_sql",
        "json_serialize_plan",
        "json_execute_serialized_sql",
    }
)
# Functions whose result grows with a number they are given (a list of n items, a string of
# n characters): one call can allocate gigabytes before the time limit can interrupt it,
# outside DuckDB's memory limit. `range` and `generate_series` stay allowed as table functions.
SIZED_FUNCTIONS = frozenset(
    {"range", "generate_series", "repeat", "lpad", "rpad", "list_resize", "array_resize", "bar", "format", "printf"}
)
DENIED_PREFIXES = ("__internal", "duckdb_", "pragma_", "pg_", "read_", "parquet_")
# Functions that DuckDB accepts in the select list but does not list in duckdb_functions().
EXTRA_FUNCTIONS = frozenset({"unnest", "unlist"})

# FROM clause items other than tables and table functions that need no check of their own.
_PLAIN_TABLE_REFS = frozenset({"SUBQUERY", "JOIN", "EXPRESSION_LIST", "EMPTY", "PIVOT"})
# The keys that every table reference of the tree has; expressions also have "class".
_TABLE_REF_KEYS = frozenset({"type", "alias", "sample", "query_location"})
# CTEs get these names, numbered, so a name in the query can never reach a table by accident.
_CTE_PREFIX = "depictiod_cte_"


class SqlError(ValueError):
    """Raised when a query is not one read-only SELECT over the tables that the caller may read."""


class CatalogTable(msgspec.Struct, kw_only=True, frozen=True):
    """A catalog table as administrators see it: the columns they may read."""

    name: str
    columns: tuple[str, ...]


class QuerySources(msgspec.Struct, kw_only=True, frozen=True):
    """The tables that one query may read, under the names that the caller writes."""

    # (project, workflow, collection tag) or (project, collection tag) -> collection id.
    collections: dict[tuple[str, ...], str]
    # Catalog tables by their bare names; empty for users who are not administrators.
    catalog_tables: dict[str, CatalogTable] = msgspec.field(default_factory=dict)


class CheckedQuery(msgspec.Struct, kw_only=True, frozen=True):
    sql: str
    # The collections that the query reads.
    collection_ids: tuple[str, ...]


def allowed_functions(cursor: Connection) -> frozenset[str]:
    """Return the names of the scalar, aggregate and macro functions that queries may call."""
    rows = cursor.execute(
        "SELECT DISTINCT function_name FROM duckdb_functions() "
        "WHERE function_type IN ('scalar', 'aggregate', 'macro') AND schema_name = 'main'"
    ).fetchall()
    names = {str(name).lower() for (name,) in rows} | EXTRA_FUNCTIONS
    denied = DENIED_FUNCTIONS | SIZED_FUNCTIONS
    return frozenset(name for name in names if name not in denied and not name.startswith(DENIED_PREFIXES))


def check_query(
    cursor: Connection,
    text: str,
    sources: QuerySources,
    functions: frozenset[str],
    row_cap: int,
) -> CheckedQuery:
    """Return the SQL to run for the client's query `text`; raise SqlError naming what is not allowed.

    `row_cap` becomes the query's LIMIT when it has none, so DuckDB can stop early (a sort
    keeps only the top rows). Collection tables must exist in the data schema.
    """
    tree = _parse(cursor, text)
    database = str(_one_value(cursor, "SELECT current_database()"))
    rewriter = _Rewriter(cursor, sources, functions, database)
    try:
        rewriter.walk(tree, {})
    except RecursionError:
        raise SqlError("the query is nested too deeply; write it with fewer levels") from None
    _cap_rows(cursor, tree, row_cap)

    statement = {"error": False, "statements": [{"node": tree, "named_param_map": []}]}
    try:
        sql = str(_one_value(cursor, "SELECT json_deserialize_sql(?)", [json.dumps(statement)]))
        rendered = _parse(cursor, sql)
    except (duckdb.Error, SqlError):
        rendered = None
    if rendered is None or _without_locations(rendered) != _without_locations(tree):
        # DuckDB's rendering of the tree would run something else than what was checked.
        raise SqlError("the query uses a form that cannot be checked; write it in plainer SQL")
    return CheckedQuery(sql=sql, collection_ids=tuple(rewriter.collection_ids))


def _parse(cursor: Connection, text: str) -> dict[str, Any]:
    """Return the tree of the one SELECT statement in `text`."""
    try:
        statements = cursor.extract_statements(text)
    except duckdb.Error as error:
        raise SqlError(f"the query is not valid SQL: {_first_line(error)}") from None
    if len(statements) != 1:
        raise SqlError(f"send exactly one statement, not {len(statements)}")
    kind = statements[0].type.name
    if kind != "SELECT":
        raise SqlError(f"only SELECT statements may run, not {kind}")

    serialized = str(_one_value(cursor, "SELECT json_serialize_sql(?)", [text]))
    try:
        document = json.loads(serialized)
    except RecursionError:
        raise SqlError("the query is nested too deeply; write it with fewer levels") from None
    if document.get("error"):
        # PRAGMA, SHOW and other statements that DuckDB rewrites into a SELECT end here.
        raise SqlError(f"only plain SELECT statements may run: {document.get('error_message')}")
    node: dict[str, Any] = document["statements"][0]["node"]
    return node


class _Rewriter:
    """Walks a parse tree, checks every table and function, and replaces table names in place."""

    def __init__(self, cursor: Connection, sources: QuerySources, functions: frozenset[str], database: str) -> None:
        self._cursor = cursor
        self._sources = sources
        self._functions = functions
        self._database = database
        self._folded = _folded_names(sources.collections)
        self._tables = _existing_tables(cursor)
        self._cte_count = 0
        self.collection_ids: list[str] = []

    def walk(self, value: Any, scope: dict[str, str]) -> None:
        """Check `value` and everything under it; `scope` maps CTE names in scope to their new names."""
        if isinstance(value, list):
            for item in value:
                self.walk(item, scope)
            return
        if not isinstance(value, dict):
            return
        if "cte_map" in value:
            self._walk_query_node(value, scope)
            return
        if value.keys() >= _TABLE_REF_KEYS and "class" not in value and "modifiers" not in value:
            self._walk_table_ref(value, scope)
            return
        if value.get("class") == "PARAMETER":
            raise SqlError("the query has a parameter ($1 or ?); write the values into the query")
        if "function_name" in value:
            self._check_function(value, self._functions, "function")
        for item in value.values():
            self.walk(item, scope)

    def _walk_query_node(self, node: dict[str, Any], scope: dict[str, str]) -> None:
        """Rename the node's CTEs and walk its parts with the CTEs in scope.

        A CTE is in scope in the CTEs after it and in the node's body, not in its own
        definition: `WITH t AS (SELECT * FROM t)` reads a table `t` in DuckDB. A name treated here as a CTE that DuckDB does not see as one
        names no table at all, so a wrong guess fails instead of reading a table.
        """
        inner = dict(scope)
        for entry in node["cte_map"]["map"]:
            original = str(entry["key"])
            self._cte_count += 1
            renamed = f"{_CTE_PREFIX}{self._cte_count}"
            definition = entry["value"]["query"]["node"]
            if definition.get("type") == "RECURSIVE_CTE_NODE":
                # Each step can double a string or a list, so a few steps outgrow memory before an interrupt.
                raise SqlError("WITH RECURSIVE is not allowed; write the query without recursion")
            entry["key"] = renamed
            self.walk(entry["value"], inner)
            inner[original.casefold()] = renamed
        for key, item in node.items():
            if key != "cte_map":
                self.walk(item, inner)

    def _walk_table_ref(self, ref: dict[str, Any], scope: dict[str, str]) -> None:
        kind = ref["type"]
        if kind == "BASE_TABLE":
            self._replace_table(ref, scope)
            return
        if kind == "TABLE_FUNCTION":
            function = ref["function"]
            self._check_function(function, TABLE_FUNCTIONS, "table function")
            for key, item in ref.items():
                if key != "function":
                    self.walk(item, scope)
            for item in function.values():
                self.walk(item, scope)
            return
        if kind not in _PLAIN_TABLE_REFS:
            # SHOW_REF comes from DESCRIBE, SHOW and SUMMARIZE.
            raise SqlError(f"a FROM clause item of type {kind} is not allowed; read tables, subqueries and joins")
        for item in ref.values():
            self.walk(item, scope)

    def _check_function(self, function: dict[str, Any], allowed: frozenset[str], kind: str) -> None:
        name = str(function["function_name"])
        schema = str(function.get("schema") or "")
        if function.get("catalog") or schema not in ("", "main"):
            raise SqlError(f"{kind} {name!r} is named with a schema or catalog; call it by its bare name")
        if name.lower() not in allowed:
            hint = (
                f"allowed: {', '.join(sorted(TABLE_FUNCTIONS))}"
                if allowed is TABLE_FUNCTIONS
                else ("functions that read files, settings, the environment or the catalog are not allowed")
            )
            raise SqlError(f"{kind} {name!r} is not allowed; {hint}")

    def _replace_table(self, ref: dict[str, Any], scope: dict[str, str]) -> None:
        """Point a table reference at the CTE, collection table or catalog table that its name means."""
        parts = _name_parts(ref)
        if ref.get("at_clause"):
            raise SqlError(f"table {_display(parts)}: AT (time travel) is not supported")
        alias = ref.get("alias") or parts[-1]
        if len(parts) == 1 and parts[0].casefold() in scope:
            ref["table_name"] = scope[parts[0].casefold()]
            ref["alias"] = alias
            return

        collection_id = self._collection_id(parts)
        if collection_id is not None:
            if f"dc_{collection_id}" not in self._tables:
                raise SqlError(f"table {_display(parts)} has no aggregated table yet; try again after its scan")
            ref.update(catalog_name=self._database, schema_name=DATA_SCHEMA, table_name=f"dc_{collection_id}")
            ref["alias"] = alias
            self.collection_ids.append(collection_id)
            return

        table = self._sources.catalog_tables.get(parts[0].lower()) if len(parts) == 1 else None
        if table is None:
            # The same message for a table that exists but is not readable, so names do not leak.
            raise SqlError(
                f"unknown table {_display(parts)}; name a data collection you may read as "
                "project.workflow.collection, or project.collection for one without a workflow"
            )
        columns = ", ".join(_quote(column) for column in table.columns)
        source = f"SELECT {columns} FROM {_quote(self._database)}.main.{_quote(table.name)}"
        replacement = {
            "type": "SUBQUERY",
            "alias": alias,
            "sample": ref.get("sample"),
            "query_location": ref.get("query_location"),
            "subquery": {"node": _parse(self._cursor, source), "named_param_map": []},
            "column_name_alias": ref.get("column_name_alias", []),
        }
        ref.clear()
        ref.update(replacement)

    def _collection_id(self, parts: tuple[str, ...]) -> str | None:
        """Return the collection that a name means: the exact spelling first, then any case."""
        exact = self._sources.collections.get(parts)
        if exact is not None:
            return exact
        matches = self._folded.get(tuple(part.casefold() for part in parts), [])
        if len(matches) > 1:
            raise SqlError(f"table {_display(parts)} matches several collections in other cases; write its exact case")
        return matches[0] if matches else None


def _name_parts(ref: dict[str, Any]) -> tuple[str, ...]:
    catalog, schema, table = (str(ref.get(key) or "") for key in ("catalog_name", "schema_name", "table_name"))
    if catalog:
        return (catalog, schema, table)
    if schema:
        return (schema, table)
    return (table,)


def _folded_names(collections: dict[tuple[str, ...], str]) -> dict[tuple[str, ...], list[str]]:
    folded: dict[tuple[str, ...], list[str]] = {}
    for parts, collection_id in collections.items():
        folded.setdefault(tuple(part.casefold() for part in parts), []).append(collection_id)
    return folded


def _existing_tables(cursor: Connection) -> set[str]:
    rows = cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [DATA_SCHEMA])
    return {str(name) for (name,) in rows.fetchall()}


def _cap_rows(cursor: Connection, node: dict[str, Any], row_cap: int) -> None:
    """Add `LIMIT row_cap` to the query's outermost node when it has no limit of its own."""
    modifiers = node.setdefault("modifiers", [])
    if any(modifier.get("type") in ("LIMIT_MODIFIER", "LIMIT_PERCENT_MODIFIER") for modifier in modifiers):
        return
    # The parser's own LIMIT node, so that the rendered query parses back to the same tree.
    modifiers.extend(_parse(cursor, f"SELECT 1 LIMIT {int(row_cap)}")["modifiers"])


def _without_locations(value: Any) -> Any:
    """Return a tree without its source positions, which differ between two renderings of one query."""
    if isinstance(value, dict):
        return {key: _without_locations(item) for key, item in value.items() if key != "query_location"}
    if isinstance(value, list):
        return [_without_locations(item) for item in value]
    return value


def _one_value(cursor: Connection, sql: str, parameters: list[Any] | None = None) -> Any:
    row = cursor.execute(sql, parameters or []).fetchone()
    assert row is not None, f"{sql} returned no row"
    return row[0]


def _display(parts: tuple[str, ...]) -> str:
    return ".".join(_quote(part) if not part.isidentifier() else part for part in parts)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__
