"""`POST /sql`: one read-only SELECT over the collections a caller may read, and nothing else."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow
import pyarrow.csv
import pyarrow.ipc
import pyarrow.parquet
import pytest
from litestar.testing import TestClient

from api import create_app
from catalog import QuerySources, SqlError
from config import load_projects, load_settings
from tests.api.conftest import ADMIN_PASSWORD, API, add_user, login
from tests.examples import copy_bundled_examples, write_settings

SQL = f"{API}/sql"
VIEWER = "viewer@example.org"
PASSWORD = "sql-test-password"
MAX_ROWS = 500
PENGUINS = '"Palmer penguins (bundled example)".penguin_species_analysis'
PHYSICAL = f"{PENGUINS}.physical_features"
DEMOGRAPHIC = f"{PENGUINS}.demographic_data"
IRIS = '"Iris (bundled example)".iris_workflow.iris_table'


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The app over the bundled examples, both private: the viewer may read penguins but not iris."""
    root = tmp_path_factory.mktemp("sql")
    penguins, iris = copy_bundled_examples(root)
    penguins.write_text(
        penguins.read_text().replace("is_public: true", f"is_public: false\npermissions:\n  viewers: [{VIEWER}]")
    )
    iris.write_text(iris.read_text().replace("is_public: true", "is_public: false"))
    settings_path = write_settings(root, [penguins, iris])
    environ = {
        "DEPICTIO_SQL_TIMEOUT_SECONDS": "1",
        "DEPICTIO_SQL_MAX_ROWS": str(MAX_ROWS),
        "DEPICTIO_SQL_MAX_RESPONSE_MB": "1",
    }
    settings = load_settings(str(settings_path), environ=environ)
    with TestClient(create_app(settings, load_projects(settings.projects), admin_password=ADMIN_PASSWORD)) as client:
        yield client


@pytest.fixture(scope="module")
def admin(client: TestClient) -> dict[str, str]:
    return login(client, "admin@example.org", ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def viewer(client: TestClient) -> dict[str, str]:
    return add_user(client, VIEWER, PASSWORD)


def run(client: TestClient, headers: dict[str, str], query: str, **body: Any) -> dict[str, Any]:
    response = client.post(SQL, json={"query": query, **body}, headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def rejected(client: TestClient, headers: dict[str, str], query: str) -> str:
    """Return the detail of the 400 that `query` gets; fail on any other status."""
    response = client.post(SQL, json={"query": query}, headers=headers)
    assert response.status_code == 400, f"{query!r} got {response.status_code}: {response.text}"
    body = response.json()
    assert body["status_code"] == 400
    detail: str = body["detail"]
    return detail


def all_rows(client: TestClient, headers: dict[str, str], collection_id: str) -> list[dict[str, Any]]:
    response = client.get(f"{API}/datacollections/{collection_id}/rows", params={"limit": 10000}, headers=headers)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["rows"]
    return found


def test_join_of_two_collections(client: TestClient, viewer: dict[str, str]) -> None:
    physical = all_rows(client, viewer, "6a0001000000000000000003")
    demographic = all_rows(client, viewer, "6a0001000000000000000004")
    species = {(row["depictio_run_id"], row["individual_id"]): row["species"] for row in demographic}
    expected = sorted(
        (row["individual_id"], species[(row["depictio_run_id"], row["individual_id"])])
        for row in physical
        if (row["depictio_run_id"], row["individual_id"]) in species
    )

    result = run(
        client,
        viewer,
        f"SELECT p.individual_id, d.species FROM {PHYSICAL} AS p "
        f"JOIN {DEMOGRAPHIC} AS d USING (depictio_run_id, individual_id) ORDER BY 1, 2",
    )

    assert result["columns"] == [{"name": "individual_id", "type": "VARCHAR"}, {"name": "species", "type": "VARCHAR"}]
    assert [tuple(row) for row in result["rows"]] == expected
    assert result["row_count"] == len(expected)
    assert result["truncated"] is False


def test_aggregate_with_cte(client: TestClient, viewer: dict[str, str]) -> None:
    physical = all_rows(client, viewer, "6a0001000000000000000003")
    counts: dict[str, int] = {}
    for row in physical:
        counts[row["depictio_run_id"]] = counts.get(row["depictio_run_id"], 0) + 1

    result = run(
        client,
        viewer,
        f"WITH measured AS (SELECT depictio_run_id AS run FROM {PHYSICAL}) "
        "SELECT run, count(*) AS n FROM measured GROUP BY run ORDER BY run",
    )

    assert [row[0] for row in result["rows"]] == sorted(counts)
    assert {run: n for run, n in result["rows"]} == counts


def test_names_ignore_case_and_bare_table_alias(client: TestClient, viewer: dict[str, str]) -> None:
    result = run(
        client,
        viewer,
        'SELECT physical_features.individual_id FROM "PALMER PENGUINS (BUNDLED EXAMPLE)".Penguin_Species_Analysis'
        ".PHYSICAL_FEATURES ORDER BY 1 LIMIT 1",
    )

    assert result["rows"] == [["adelie_001"]]


def test_cte_and_table_functions(client: TestClient, viewer: dict[str, str]) -> None:
    result = run(
        client,
        viewer,
        "WITH r(n) AS (SELECT * FROM generate_series(1, 3)) "
        "SELECT n, (SELECT count(*) FROM range(n)) AS below, unnest([n]) AS same FROM r ORDER BY n",
    )

    assert result["rows"] == [[1, 1, 1], [2, 2, 2], [3, 3, 3]]


@pytest.mark.parametrize("file_format", ["parquet", "arrow", "csv"])
def test_answer_as_file(client: TestClient, viewer: dict[str, str], file_format: str) -> None:
    query = f"SELECT individual_id, body_mass_g FROM {PENGUINS}.physical_features ORDER BY individual_id"
    body = {"query": query, "format": file_format, "limit": 5}

    response = client.post(f"{API}/sql", json=body, headers=viewer)

    assert response.status_code == 200, response.text
    assert "query." in response.headers["content-disposition"]
    if file_format == "parquet":
        table = pyarrow.parquet.read_table(io.BytesIO(response.content))
    elif file_format == "arrow":
        table = pyarrow.ipc.open_stream(response.content).read_all()
    else:
        table = pyarrow.csv.read_csv(io.BytesIO(response.content))
    assert table.column_names == ["individual_id", "body_mass_g"]
    assert table.column("individual_id").to_pylist() == [row[0] for row in run(client, viewer, query)["rows"][:5]]


def test_file_answer_rejects_bad_query(client: TestClient, viewer: dict[str, str]) -> None:
    response = client.post(f"{API}/sql", json={"query": "COPY x TO 'y'", "format": "csv"}, headers=viewer)

    assert response.status_code == 400
    assert "content-disposition" not in response.headers
    assert run(client, viewer, "SELECT 1 AS one")["rows"] == [[1]]


def test_answer_over_size_cap_rejected(client: TestClient, viewer: dict[str, str]) -> None:
    # 40,000 digests of 32 characters: more than the 1 MiB that this app allows.
    query = "SELECT string_agg(md5(CAST(i AS VARCHAR)), '') AS s FROM range(40000) AS t(i)"

    response = client.post(f"{API}/sql", json={"query": query}, headers=viewer)

    assert response.status_code == 400
    assert "larger than 1 MiB" in response.json()["detail"]
    assert run(client, viewer, "SELECT 1 AS one")["rows"] == [[1]]


def test_queries_past_concurrency_cap_get_429(client: TestClient, viewer: dict[str, str]) -> None:
    slots = client.app.state.sql_slots
    held_slots = 0
    while slots.acquire(blocking=False):
        held_slots += 1
    try:
        response = client.post(f"{API}/sql", json={"query": "SELECT 1 AS one"}, headers=viewer)
    finally:
        for _ in range(held_slots):
            slots.release()

    assert held_slots == 2
    assert response.status_code == 429
    assert "sql.max_concurrent" in response.json()["detail"]
    assert run(client, viewer, "SELECT 1 AS one")["rows"] == [[1]]


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r", "RECURSIVE"),
        ("SELECT len(range(100000000))", "'range'"),
        ("SELECT unnest(generate_series(1, 5))", "'generate_series'"),
        ("SELECT length(repeat('x', 3000000000))", "'repeat'"),
        ("SELECT lpad('x', 2000000000, 'y')", "'lpad'"),
        ("SELECT list_resize([1], 1000000000)", "'list_resize'"),
        ("SELECT printf('%1000000000d', 1)", "'printf'"),
        ("SELECT 1 AS a\x00; DROP TABLE users", "NUL"),
    ],
)
def test_memory_amplifiers_rejected(client: TestClient, viewer: dict[str, str], query: str, named: str) -> None:
    response = client.post(f"{API}/sql", json={"query": query}, headers=viewer)

    assert response.status_code == 400, response.text
    assert named in response.json()["detail"]


def test_values_become_json(client: TestClient, viewer: dict[str, str]) -> None:
    result = run(
        client,
        viewer,
        "SELECT DATE '2020-01-02' AS d, TIMESTAMP '2020-01-02 03:04:05' AS t, 1.25::DECIMAL(4, 2) AS x, "
        "'NaN'::DOUBLE AS nan, [1, 2] AS l, {'a': DATE '2021-01-01'} AS s, MAP {1: 'one'} AS m, "
        "'a''b; DROP TABLE users; --' AS text, 1 AS text",
    )

    assert [column["name"] for column in result["columns"]] == ["d", "t", "x", "nan", "l", "s", "m", "text", "text"]
    assert result["rows"] == [
        ["2020-01-02", "2020-01-02 03:04:05", 1.25, None, [1, 2], {"a": "2021-01-01"}, {"1": "one"},
         "a'b; DROP TABLE users; --", 1]
    ]  # fmt: skip


def test_row_limit_truncates(client: TestClient, viewer: dict[str, str]) -> None:
    limited = run(client, viewer, f"SELECT individual_id FROM {PHYSICAL} ORDER BY 1", limit=100)
    whole = run(client, viewer, f"SELECT individual_id FROM {PHYSICAL} ORDER BY 1", limit=MAX_ROWS)
    capped = run(client, viewer, "SELECT * FROM range(100000)")

    assert limited["row_count"] == 100
    assert limited["truncated"] is True
    assert limited["rows"] == whole["rows"][:100]
    assert whole["truncated"] is False
    assert capped["row_count"] == MAX_ROWS
    assert capped["truncated"] is True


def test_query_limit_smaller_than_row_limit(client: TestClient, viewer: dict[str, str]) -> None:
    result = run(client, viewer, "SELECT * FROM range(10) LIMIT 3", limit=5)

    assert result["rows"] == [[0], [1], [2]]
    assert result["truncated"] is False


@pytest.mark.parametrize("limit", [0, MAX_ROWS + 1, -1])
def test_limit_out_of_range(client: TestClient, viewer: dict[str, str], limit: int) -> None:
    response = client.post(SQL, json={"query": "SELECT 1", "limit": limit}, headers=viewer)

    assert response.status_code == 400
    assert "limit" in response.json()["detail"]


def test_slow_query_is_interrupted(client: TestClient, viewer: dict[str, str]) -> None:
    detail = rejected(
        client,
        viewer,
        f"SELECT sum(a.body_mass_g * b.body_mass_g * c.body_mass_g * d.body_mass_g) "
        f"FROM {PHYSICAL} a, {PHYSICAL} b, {PHYSICAL} c, {PHYSICAL} d",
    )

    assert "timed out after 1 seconds" in detail
    assert run(client, viewer, "SELECT 42")["rows"] == [[42]]


# Statements and tricks that must never run, each with a word of the message it must get.
REJECTED = {
    "copy": ("COPY (SELECT 1) TO '/tmp/depictiod-sql-test.csv'", "only SELECT"),
    "attach": ("ATTACH '/tmp/depictiod-sql-test.duckdb' AS other", "only SELECT"),
    "detach": ("DETACH other", "only SELECT"),
    "install": ("INSTALL httpfs", "only SELECT"),
    "load": ("LOAD httpfs", "only SELECT"),
    "pragma": ("PRAGMA version", "only plain SELECT"),
    "pragma-table-info": ("PRAGMA table_info('users')", "only plain SELECT"),
    "set": ("SET threads = 1", "only SELECT"),
    "reset": ("RESET threads", "only SELECT"),
    "create": ("CREATE TABLE stolen AS SELECT 1", "only SELECT"),
    "create-macro": ("CREATE MACRO twice(x) AS x * 2", "only SELECT"),
    "insert": ("INSERT INTO users VALUES ('x')", "only SELECT"),
    "update": ("UPDATE users SET is_admin = true", "only SELECT"),
    "delete": ("DELETE FROM users", "only SELECT"),
    "drop": ("DROP TABLE users", "only SELECT"),
    "export": ("EXPORT DATABASE '/tmp/depictiod-sql-export'", "only SELECT"),
    "call": ("CALL pragma_version()", "only SELECT"),
    "explain": (f"EXPLAIN SELECT * FROM {PHYSICAL}", "only SELECT"),
    "checkpoint": ("CHECKPOINT", "only SELECT"),
    "use": ("USE data", "only SELECT"),
    "begin": ("BEGIN TRANSACTION", "only SELECT"),
    "describe": (f"DESCRIBE {PHYSICAL}", "SHOW_REF"),
    "summarize": (f"SUMMARIZE {PHYSICAL}", "SHOW_REF"),
    "show-tables": ("SHOW TABLES", "SHOW_REF"),
    "two-statements": ("SELECT 1; SELECT 2", "exactly one statement"),
    "statement-after-comment": ("SELECT 1; -- harmless\nDROP TABLE users", "exactly one statement"),
    "statement-in-comment-block": ("/* SELECT 1; */ DROP TABLE users", "only SELECT"),
    "read-csv": ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
    "read-csv-escaped-path": ("SELECT * FROM read_csv(E'\\x2fetc\\x2fpasswd')", "read_csv"),
    "read-csv-case": ("SeLeCt * FrOm ReAd_CsV('/etc/passwd')", "read_csv"),
    "read-text-in-subquery": ("SELECT (SELECT count(*) FROM read_text('/etc/passwd')) AS n", "read_text"),
    "glob-in-nested-subquery": (
        "SELECT * FROM (SELECT * FROM (SELECT * FROM range(3) WHERE range IN (SELECT 1 FROM glob('/*'))))",
        "glob",
    ),
    "read-parquet-in-cte": ("WITH f AS (SELECT * FROM read_parquet('/tmp/x.parquet')) SELECT * FROM f", "read_parquet"),
    "replacement-scan": ("SELECT * FROM '/etc/passwd'", "unknown table"),
    "replacement-scan-csv": ("FROM 'file.csv'", "unknown table"),
    "quoted-path": ('SELECT * FROM "/etc/passwd"', "unknown table"),
    "query": ("SELECT * FROM query('SELECT * FROM users')", "query"),
    "query-table": ("SELECT * FROM query_table('users')", "query_table"),
    "duckdb-settings": ("SELECT * FROM duckdb_settings()", "duckdb_settings"),
    "duckdb-tables": ("SELECT * FROM duckdb_tables()", "duckdb_tables"),
    "pragma-function": ("SELECT * FROM pragma_database_list()", "pragma_database_list"),
    "pragma-table-function": ("SELECT * FROM pragma_table_info('users')", "pragma_table_info"),
    "getenv": ("SELECT getenv('HOME')", "getenv"),
    "getenv-upper": ("SELECT GETENV('HOME')", "getenv"),
    "getenv-schema": ("SELECT main.getenv('HOME')", "getenv"),
    "getenv-catalog": ("SELECT system.main.getenv('HOME')", "schema or catalog"),
    "current-setting": ("SELECT current_setting('temp_directory')", "current_setting"),
    "current-setting-in-where": ("SELECT 1 WHERE current_setting('threads') IS NOT NULL", "current_setting"),
    "nextval": ("SELECT nextval('seq')", "nextval"),
    "serialize-plan": ("SELECT json_serialize_plan('SELECT * FROM users')", "json_serialize_plan"),
    "pg-catalog": ("SELECT pg_get_viewdef(1)", "pg_get_viewdef"),
    "lookalike-function": ("SELECT g\u0435tenv('HOME')", "not allowed"),
    "lookalike-table-function": ("SELECT * FROM r\u0435ad_csv('/etc/passwd')", "not allowed"),
    "catalog-table": ("SELECT * FROM users", "unknown table"),
    "catalog-table-qualified": ("SELECT email FROM main.users", "unknown table"),
    "internal-table-name": ("SELECT * FROM data.dc_6a0001000000000000000003", "unknown table"),
    "internal-table-catalog": ("SELECT * FROM catalog.data.dc_6a0001000000000000000003", "unknown table"),
    "cte-shadowing-table": ("WITH users AS (SELECT * FROM users) SELECT * FROM users", "unknown table"),
    "cte-out-of-scope": ("SELECT * FROM (WITH users AS (SELECT 1) SELECT * FROM users), users", "unknown table"),
    "parameter": ("SELECT $1", "parameter"),
    "time-travel": (f"SELECT * FROM {PHYSICAL} AT (VERSION => 1)", "time travel"),
    "not-sql": ("SELEKT 1", "not valid SQL"),
}


@pytest.mark.parametrize(("query", "word"), list(REJECTED.values()), ids=list(REJECTED))
def test_rejected_query(client: TestClient, viewer: dict[str, str], query: str, word: str) -> None:
    detail = rejected(client, viewer, query)

    assert word in detail


def test_rejections_do_not_change_catalog(client: TestClient, viewer: dict[str, str], admin: dict[str, str]) -> None:
    tables = "SELECT count(*) FROM information_schema.tables"
    with client.app.state.catalog.store.read() as cursor:
        before = cursor.execute(tables).fetchall()
    for query, word in REJECTED.values():
        rejected(client, viewer, query)
        if word.startswith("only"):
            rejected(client, admin, query)

    with client.app.state.catalog.store.read() as cursor:
        after = cursor.execute(tables).fetchall()
    assert after == before
    assert not Path("/tmp/depictiod-sql-test.csv").exists()
    assert not Path("/tmp/depictiod-sql-export").exists()


def test_unreadable_collection_looks_missing(client: TestClient, viewer: dict[str, str], admin: dict[str, str]) -> None:
    hidden = rejected(client, viewer, f"SELECT * FROM {IRIS}")
    missing = rejected(client, viewer, 'SELECT * FROM "Iris (bundled example)".iris_workflow.no_such_table')

    assert "unknown table" in hidden
    assert hidden.replace("iris_table", "NAME") == missing.replace("no_such_table", "NAME")
    assert run(client, admin, f"SELECT count(*) FROM {IRIS}")["rows"] == [[150]]


def test_unreadable_collection_in_subquery(client: TestClient, viewer: dict[str, str]) -> None:
    detail = rejected(client, viewer, f"SELECT * FROM {PHYSICAL} WHERE EXISTS (SELECT 1 FROM {IRIS})")

    assert "unknown table" in detail


def test_admin_reads_catalog_without_secrets(client: TestClient, admin: dict[str, str]) -> None:
    users = run(client, admin, "SELECT * FROM users ORDER BY email")
    tokens = run(client, admin, "SELECT * FROM tokens")
    projects = run(client, admin, "SELECT name FROM projects ORDER BY name")

    user_columns = [column["name"] for column in users["columns"]]
    token_columns = [column["name"] for column in tokens["columns"]]
    assert "email" in user_columns
    assert "password_hash" not in user_columns
    assert "jti" not in token_columns
    assert "refresh_jti" not in token_columns
    assert "$argon2" not in str(users["rows"])
    assert projects["rows"] == [["Iris (bundled example)"], ["Palmer penguins (bundled example)"]]


def test_admin_cannot_name_hidden_columns(client: TestClient, admin: dict[str, str]) -> None:
    detail = rejected(client, admin, "SELECT password_hash FROM users")

    assert "password_hash" in detail


def test_anonymous_request_needs_sign_in(client: TestClient) -> None:
    response = client.post(SQL, json={"query": "SELECT 1"})

    assert response.status_code == 401


@pytest.mark.parametrize(
    "body", [{}, {"query": ""}, {"query": "SELECT 1", "limit": "ten"}, {"query": "SELECT 1", "format": "xlsx"}]
)
def test_invalid_body(client: TestClient, viewer: dict[str, str], body: dict[str, Any]) -> None:
    response = client.post(SQL, json=body, headers=viewer)

    assert response.status_code == 400
    assert response.json()["status_code"] == 400


def test_route_is_documented(client: TestClient) -> None:
    document = client.get("/docs/openapi.json").json()

    operation = document["paths"][SQL]["post"]
    schemas = document["components"]["schemas"]
    response_name = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    request_name = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert operation["summary"]
    assert "project.workflow.collection" in operation["description"]
    assert set(schemas[response_name]["properties"]) == {"columns", "rows", "row_count", "truncated"}
    assert set(schemas[request_name]["properties"]) == {"query", "limit", "format"}


def test_project_collection_has_two_part_name(client: TestClient) -> None:
    # The bundled projects have no collection outside a workflow, so this names one directly.
    sources = QuerySources(collections={("Lab", "samples"): "6a0001000000000000000003"})

    with client.app.state.catalog.sql.open("SELECT count(*) FROM lab.samples", sources, 10, 5) as result:
        counted = result.fetch_rows(2)
    with (
        pytest.raises(SqlError, match="unknown table"),
        client.app.state.catalog.sql.open("SELECT * FROM lab.other.samples", sources, 10, 5),
    ):
        pass

    assert counted == [(344,)]
