"""Exports of a collection's rows, and `/rows` pages in the same formats through the Accept header."""

from __future__ import annotations

import io
import logging
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
import duckdb
import pyarrow as pa
import pyarrow.csv
import pyarrow.ipc
import pyarrow.parquet
import pytest
from litestar.testing import TestClient

from api import create_app
from api.controllers.deltatables import json_value
from api.export_formats import attachment
from catalog.build import table_name
from config import load_projects, load_settings
from tests.api.conftest import ADMIN_PASSWORD, API, login
from tests.examples import BUNDLED_PHYSICAL_FEATURES_ID, copy_bundled_examples, write_settings

PENGUINS_EXPORT = f"{API}/datacollections/{BUNDLED_PHYSICAL_FEATURES_ID}/export"
PENGUINS_ROWS = f"{API}/datacollections/{BUNDLED_PHYSICAL_FEATURES_ID}/rows"
MEDIA_TYPES = {
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.stream",
}
# The generated project: a table of a million rows, a smaller one for streaming, and one with
# columns that CSV cannot hold.
MILLION_ID = "6b0001000000000000000003"
STREAMED_ID = "6b0001000000000000000004"
NESTED_ID = "6b0001000000000000000005"
WORKFLOW_ID = "6b0001000000000000000002"
MILLION_ROWS = 1_000_000
STREAMED_ROWS = 150_000
PROJECT_YAML = f"""
id: "6b0001000000000000000001"
name: "Generated export tables"
project_type: advanced
is_public: false
workflows:
  - id: "{WORKFLOW_ID}"
    name: generated
    engine:
      name: python
    data_location:
      structure: sequencing-runs
      runs_regex: "run_.*"
      locations:
        - data
    data_collections:
""" + "".join(
    f"""
      - id: "{collection_id}"
        data_collection_tag: {tag}
        config:
          type: table
          metatype: Aggregate
          scan:
            mode: recursive
            scan_parameters:
              regex_config:
                pattern: "{tag}\\\\.parquet$"
          dc_specific_properties:
            format: parquet
"""
    for collection_id, tag in ((MILLION_ID, "million"), (STREAMED_ID, "streamed"), (NESTED_ID, "nested"))
)
# Rows of a generated table. `shuffled` is a permutation of the row numbers, so sorting by it
# gives an order unlike the order of insertion. Every tenth `measure` is NULL.
GENERATED_ROWS = """
SELECT range AS row_number, (range * 7919) % 1000003 AS shuffled,
       CASE WHEN range % 10 = 0 THEN NULL ELSE range / 3.0 END AS measure,
       'label_' || (range % 1000) AS label, TIMESTAMP '2024-01-01' + to_seconds(range) AS measured_at,
       range % 2 = 0 AS even
FROM range({rows})
"""


def _client(root: Path, projects: list[Path]) -> Iterator[TestClient]:
    write_settings(root, projects)
    settings = load_settings(str(root / "depictio.toml"), environ={})
    with TestClient(create_app(settings, load_projects(settings.projects), admin_password=ADMIN_PASSWORD)) as client:
        yield client


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("export")
    yield from _client(root, list(copy_bundled_examples(root)))


@pytest.fixture(scope="module")
def admin(client: TestClient) -> dict[str, str]:
    return login(client, "admin@example.org", ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def generated_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("generated")
    run = root / "project" / "data" / "run_1"
    run.mkdir(parents=True)
    (root / "project" / "project.yaml").write_text(PROJECT_YAML, encoding="utf-8")
    with duckdb.connect() as connection:
        for tag, rows in (("million", MILLION_ROWS), ("streamed", STREAMED_ROWS)):
            connection.execute(f"COPY ({GENERATED_ROWS.format(rows=rows)}) TO '{run / tag}.parquet' (FORMAT parquet)")
        connection.execute(
            f"COPY (SELECT 1 AS id, [1, 2] AS numbers, '\\xAA'::BLOB AS payload) TO '{run}/nested.parquet' (FORMAT parquet)"
        )
    return root


@pytest.fixture(scope="module")
def generated(generated_root: Path) -> Iterator[TestClient]:
    yield from _client(generated_root, [generated_root / "project" / "project.yaml"])


@pytest.fixture(scope="module")
def generated_admin(generated: TestClient) -> dict[str, str]:
    return login(generated, "admin@example.org", ADMIN_PASSWORD)


def read_back(content: bytes, format_name: str, schema: pa.Schema | None = None) -> pa.Table:
    """Read an export with pyarrow; CSV and TSV columns get the types of `schema`."""
    if format_name == "parquet":
        return pyarrow.parquet.read_table(io.BytesIO(content))
    if format_name == "arrow":
        return pyarrow.ipc.open_stream(content).read_all()
    return pyarrow.csv.read_csv(
        io.BytesIO(content),
        parse_options=pyarrow.csv.ParseOptions(delimiter="\t" if format_name == "tsv" else ","),
        convert_options=pyarrow.csv.ConvertOptions(column_types=schema),
    )


def as_json_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Return a table's rows as `/rows` sends them in JSON."""
    return [{name: json_value(value) for name, value in row.items()} for row in table.to_pylist()]


def table_in_catalog(client: TestClient, collection_id: str, order: str) -> pa.Table:
    with client.app.state.catalog.store.read() as cursor:
        return cursor.execute(f"SELECT * FROM {table_name(collection_id)} ORDER BY {order}").to_arrow_table()


def open_connections(client: TestClient) -> int:
    """Return the number of DuckDB connections open on the catalog, this query's own included."""
    row = client.app.state.catalog.store.query_one("SELECT count FROM duckdb_connection_count()")
    assert row is not None
    return int(row[0])


# Penguins: every format against /rows.


@pytest.mark.parametrize("format_name", list(MEDIA_TYPES))
def test_export_equals_rows(client: TestClient, admin: dict[str, str], format_name: str) -> None:
    query = {"sort": "-body_mass_g,individual_id"}
    expected = client.get(PENGUINS_ROWS, params={**query, "limit": 10_000}, headers=admin).json()
    arrow = read_back(client.get(PENGUINS_EXPORT, params={**query, "format": "arrow"}, headers=admin).content, "arrow")

    response = client.get(PENGUINS_EXPORT, params={**query, "format": format_name}, headers=admin)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == MEDIA_TYPES[format_name]
    extension = "arrows" if format_name == "arrow" else format_name
    assert response.headers["content-disposition"] == f'attachment; filename="physical_features.{extension}"'
    table = read_back(response.content, format_name, arrow.schema)
    assert table.column_names == expected["columns"]
    assert as_json_rows(table) == expected["rows"]
    assert table.num_rows == 344


def test_export_applies_filters_columns_and_sort(client: TestClient, admin: dict[str, str]) -> None:
    query = {
        "columns": "individual_id,body_mass_g",
        "body_mass_g__ge": "4500",
        "depictio_run_id__in": "run_1_adelie,run_3_gentoo",
        "sort": "-body_mass_g,individual_id",
    }
    expected = client.get(PENGUINS_ROWS, params={**query, "limit": 10_000}, headers=admin).json()

    response = client.get(PENGUINS_EXPORT, params={**query, "format": "parquet"}, headers=admin)

    table = read_back(response.content, "parquet")
    assert table.column_names == ["individual_id", "body_mass_g"]
    assert as_json_rows(table) == expected["rows"]
    masses = table.column("body_mass_g").to_pylist()
    assert masses == sorted(masses, reverse=True)
    assert min(masses) >= 4500
    assert 0 < table.num_rows < 344


def test_export_limit_caps_rows(client: TestClient, admin: dict[str, str]) -> None:
    response = client.get(PENGUINS_EXPORT, params={"format": "csv", "limit": 7}, headers=admin)

    assert read_back(response.content, "csv").num_rows == 7


def test_export_of_no_rows_has_a_header(client: TestClient, admin: dict[str, str]) -> None:
    response = client.get(
        PENGUINS_EXPORT,
        params={"format": "csv", "individual_id__eq": "nobody", "columns": "individual_id"},
        headers=admin,
    )

    assert response.status_code == 200
    assert response.text == '"individual_id"\n'


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"format": "xlsx"}, "format"),
        ({}, "format: missing"),
        ({"format": "csv", "body_mass_g__eq": "1; DROP TABLE users; --"}, "is not a whole number"),
        ({"format": "csv", 'individual_id" OR 1=1 --__eq': "x"}, "unknown column"),
        ({"format": "csv", "columns": "individual_id,password_hash"}, "unknown column"),
        ({"format": "csv", "sort": 'body_mass_g" DESC; --'}, "unknown column"),
        ({"format": "csv", "offset": "3"}, "unknown parameter"),
        ({"format": "csv", "limit": "0"}, "limit"),
        ({"format": "csv", "limit": "all"}, "limit"),
        ({"format": "csv", "limit": "9" * 30}, "ask for 1 to"),
    ],
)
def test_bad_export_is_400_without_rows(
    client: TestClient, admin: dict[str, str], query: dict[str, str], named: str
) -> None:
    response = client.get(PENGUINS_EXPORT, params=query, headers=admin)

    assert response.status_code == 400, response.text
    assert response.json() == {"status_code": 400, "detail": response.json()["detail"]}
    assert named in response.json()["detail"]
    assert "content-disposition" not in response.headers


def test_export_needs_read_access(client: TestClient) -> None:
    response = client.get(PENGUINS_EXPORT, params={"format": "csv"})

    assert response.status_code == 401


@pytest.mark.parametrize(
    "stem", ['a"b', "x; filename=evil.exe", "line\r\nSet-Cookie: a=b", "../../etc/passwd", "", "données"]
)
def test_attachment_name_is_safe(stem: str) -> None:
    header = attachment(stem, "csv")

    name = header.removeprefix('attachment; filename="').removesuffix('.csv"')
    assert header.startswith('attachment; filename="')
    assert all(character.isascii() and (character.isalnum() or character in "._-") for character in name)
    assert not name.startswith(".")
    assert name


# Accept negotiation on /rows.


@pytest.mark.parametrize("format_name", list(MEDIA_TYPES))
def test_rows_page_in_accepted_format(client: TestClient, admin: dict[str, str], format_name: str) -> None:
    query = {"sort": "individual_id", "limit": 50, "total": "true", "body_mass_g__ge": "4000"}
    expected = client.get(PENGUINS_ROWS, params=query, headers=admin).json()
    arrow = read_back(client.get(PENGUINS_EXPORT, params={"format": "arrow"}, headers=admin).content, "arrow")

    response = client.get(PENGUINS_ROWS, params=query, headers={**admin, "Accept": MEDIA_TYPES[format_name]})

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == MEDIA_TYPES[format_name]
    assert as_json_rows(read_back(response.content, format_name, arrow.schema)) == expected["rows"]
    assert response.headers["x-total-count"] == str(expected["total"])
    assert response.headers["link"].endswith('>; rel="next"')
    assert f"next={expected['next']}" in response.headers["link"]


def test_rows_link_header_walks_every_page(client: TestClient, admin: dict[str, str]) -> None:
    expected = client.get(PENGUINS_ROWS, params={"sort": "-bill_length_mm", "limit": 10_000}, headers=admin).json()
    headers = {**admin, "Accept": "application/vnd.apache.arrow.stream"}
    url: str | None = f"{PENGUINS_ROWS}?{urlencode({'sort': '-bill_length_mm', 'limit': 100})}"
    pages = []

    while url is not None:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        pages.append(read_back(response.content, "arrow"))
        link = response.headers.get("link")
        url = link[1 : link.index(">")] if link else None

    assert [len(page) for page in pages] == [100, 100, 100, 44]
    assert [row for page in pages for row in as_json_rows(page)] == expected["rows"]


@pytest.mark.parametrize(
    ("accept", "json"),
    [
        (None, True),
        ("*/*", True),
        ("application/json", True),
        ("text/html, */*;q=0.1", True),
        ("text/*", False),
        ("application/vnd.apache.parquet;q=0.9, text/csv;q=0.5", False),
    ],
)
def test_rows_default_to_json(client: TestClient, admin: dict[str, str], accept: str | None, json: bool) -> None:
    headers = {**admin, "Accept": accept} if accept is not None else admin

    response = client.get(PENGUINS_ROWS, params={"limit": 3}, headers=headers)

    assert response.status_code == 200
    assert (response.headers["content-type"] == "application/json") == json
    assert response.headers["vary"] == "Accept"


@pytest.mark.parametrize("accept", ["image/png", "text/html", "text/csv;q=0"])
def test_rows_unserved_accept_is_406(client: TestClient, admin: dict[str, str], accept: str) -> None:
    response = client.get(PENGUINS_ROWS, params={"limit": 3}, headers={**admin, "Accept": accept})

    assert response.status_code == 406
    assert response.json()["status_code"] == 406
    for media_type in MEDIA_TYPES.values():
        assert media_type in response.json()["detail"]


@pytest.mark.parametrize(
    ("accept", "status"),
    [("text/csv;q=inf", 406), ("text/csv;q=1e400", 406), ("text/csv;q=nan, application/json;q=0.5", 200)],
)
def test_rows_invalid_weights_ignored(client: TestClient, admin: dict[str, str], accept: str, status: int) -> None:
    response = client.get(PENGUINS_ROWS, params={"limit": 2}, headers={**admin, "Accept": accept})

    assert response.status_code == status, response.text
    if status == 200:
        assert response.headers["content-type"].startswith("application/json")


def test_rows_bad_filter_is_400_in_any_format(client: TestClient, admin: dict[str, str]) -> None:
    response = client.get(PENGUINS_ROWS, params={"body_mass_g__gt": "heavy"}, headers={**admin, "Accept": "text/csv"})

    assert response.status_code == 400
    assert "is not a whole number" in response.json()["detail"]


# A million rows through the real service: files scanned into the catalog, then exported.


@pytest.mark.parametrize("format_name", ["parquet", "arrow"])
def test_million_rows_round_trip(
    generated: TestClient, generated_admin: dict[str, str], generated_root: Path, format_name: str
) -> None:
    source = pyarrow.parquet.read_table(generated_root / "project" / "data" / "run_1" / "million.parquet")
    expected = table_in_catalog(generated, MILLION_ID, "shuffled")

    response = generated.get(
        f"{API}/datacollections/{MILLION_ID}/export",
        params={"format": format_name, "sort": "shuffled"},
        headers=generated_admin,
    )

    assert response.status_code == 200, response.text
    table = read_back(response.content, format_name)
    assert table.num_rows == MILLION_ROWS
    assert table.schema == expected.schema
    assert table.equals(expected)
    assert table.select(source.column_names).equals(source.sort_by("shuffled"))


def test_csv_rejects_nested_and_binary_columns(generated: TestClient, generated_admin: dict[str, str]) -> None:
    url = f"{API}/datacollections/{NESTED_ID}/export"

    nested = generated.get(url, params={"format": "csv", "columns": "id,numbers"}, headers=generated_admin)
    binary = generated.get(url, params={"format": "tsv", "columns": "id,payload"}, headers=generated_admin)
    parquet = generated.get(url, params={"format": "parquet"}, headers=generated_admin)

    assert nested.status_code == 400
    assert "column 'numbers' of nested type" in nested.json()["detail"]
    assert binary.status_code == 400
    assert "column 'payload' of binary type" in binary.json()["detail"]
    assert read_back(parquet.content, "parquet").column("numbers").to_pylist() == [[1, 2]]


# Streaming, seen from the ASGI side: chunks, disconnects and a table changed meanwhile.

OnChunk = Callable[[int], Awaitable[bool]]


def stream_export(
    client: TestClient, path: str, query: dict[str, str], headers: dict[str, str], on_chunk: OnChunk
) -> list[dict[str, Any]]:
    """Call the app with a GET and return the ASGI messages it sends.

    `on_chunk(n)` runs when body chunk n (from 0) arrives; when it returns True, the client
    disconnects and the app receives `http.disconnect`.
    """
    messages: list[dict[str, Any]] = []

    async def call() -> None:
        disconnected = anyio.Event()
        requested = False

        async def receive() -> dict[str, Any]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)
            if message["type"] != "http.response.body":
                return
            if not message.get("more_body"):
                # As an HTTP server does, report the connection closed once the response is complete.
                disconnected.set()
                return
            chunks = sum(1 for item in messages if item["type"] == "http.response.body")
            if await on_chunk(chunks - 1):
                disconnected.set()

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": urlencode(query).encode(),
            "headers": [
                (b"host", b"testserver"),
                *((key.lower().encode(), value.encode()) for key, value in headers.items()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
            "extensions": {},
        }
        await client.app(scope, receive, send)
        disconnected.set()

    client.blocking_portal.call(call)
    return messages


def body_of(messages: list[dict[str, Any]]) -> bytes:
    return b"".join(message.get("body", b"") for message in messages if message["type"] == "http.response.body")


def test_export_streams_chunks_while_transaction_is_open(
    generated: TestClient, generated_admin: dict[str, str]
) -> None:
    before = open_connections(generated)
    open_while_sending: list[int] = []

    async def count(_: int) -> bool:
        open_while_sending.append(await anyio.to_thread.run_sync(open_connections, generated))
        return False

    messages = stream_export(
        generated, f"{API}/datacollections/{STREAMED_ID}/export", {"format": "arrow"}, generated_admin, count
    )

    chunks = [message for message in messages if message["type"] == "http.response.body"]
    assert messages[0]["status"] == 200
    # One chunk per record batch of 65,536 rows (three here) and a closing one. No chunk contains the whole table.
    assert len(chunks) >= 3
    assert max(len(chunk["body"]) for chunk in chunks) < len(body_of(messages)) / 2
    # The export's cursor stays open while its chunks go out, and is closed at the end.
    assert open_while_sending[0] == before + 1
    assert open_connections(generated) == before
    assert read_back(body_of(messages), "arrow").num_rows == STREAMED_ROWS


def test_disconnect_closes_the_transaction(
    generated: TestClient, generated_admin: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    before = open_connections(generated)

    async def leave(_: int) -> bool:
        return True

    with caplog.at_level(logging.INFO, logger="api.export_formats"):
        messages = stream_export(
            generated, f"{API}/datacollections/{MILLION_ID}/export", {"format": "parquet"}, generated_admin, leave
        )

    chunks = [message for message in messages if message["type"] == "http.response.body"]
    assert not any(chunk.get("more_body") is False for chunk in chunks)
    assert len(body_of(messages)) < 20 * 2**20
    assert open_connections(generated) == before
    assert any(record.getMessage().startswith("stopped") for record in caplog.records)


def test_table_changed_during_export_is_not_mixed(
    generated: TestClient, generated_admin: dict[str, str], generated_root: Path
) -> None:
    before = table_in_catalog(generated, STREAMED_ID, "rowid")
    added = generated_root / "project" / "data" / "run_2" / "streamed.parquet"

    async def change_table(chunk: int) -> bool:
        if chunk == 0:
            # A file with an extra column makes the service rebuild the table and swap it in.
            await anyio.to_thread.run_sync(_add_streamed_run, generated, added)
        return False

    try:
        messages = stream_export(
            generated, f"{API}/datacollections/{STREAMED_ID}/export", {"format": "arrow"}, generated_admin, change_table
        )
        after = table_in_catalog(generated, STREAMED_ID, "rowid")
    finally:
        added.unlink()
        added.parent.rmdir()
        generated.app.state.ingestor.rescan_workflow(WORKFLOW_ID, trigger="api")

    assert "extra" in after.column_names
    assert after.num_rows == STREAMED_ROWS + 5
    assert read_back(body_of(messages), "arrow").equals(before)


def _add_streamed_run(client: TestClient, path: Path) -> None:
    path.parent.mkdir()
    with duckdb.connect() as connection:
        connection.execute(
            f"COPY (SELECT *, 'added' AS extra FROM ({GENERATED_ROWS.format(rows=5)})) TO '{path}' (FORMAT parquet)"
        )
    client.app.state.ingestor.rescan_workflow(WORKFLOW_ID, trigger="api")
