"""API load on a live `depictiod serve` while runs arrive in its tree: the short version of `make load`.

32 clients load the read routes for 10 s while 36 runs are added to a 4-run tree. The
full version (`python -m bench.load_while_ingesting`, 200 runs for 60 s) makes the same
checks, and docs/reliability.md records its figures.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.load_while_ingesting import LoadWhileIngesting, read_routes, run
from bench.project import open_ingestor
from bench.route_load import run_route_load
from bench.run_tree import check_tables, run_tag, write_metrics, write_tree
from bench.servers import free_port

RUNS = 40
CLIENTS = 32
SECONDS = 10.0


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> LoadWhileIngesting:
    return run(tmp_path_factory.mktemp("load"), RUNS, CLIENTS, SECONDS)


def test_load_gets_only_200(loaded: LoadWhileIngesting) -> None:
    load = loaded.load

    assert load.requests > 0
    assert load.bad_statuses == 0, {route.route: route.statuses for route in load.routes}


def test_load_has_no_connection_failures(loaded: LoadWhileIngesting) -> None:
    assert loaded.load.connection_failures == 0


def test_load_has_no_timeouts(loaded: LoadWhileIngesting) -> None:
    assert loaded.load.timeouts == 0


def test_load_reaches_every_read_route(loaded: LoadWhileIngesting) -> None:
    routes = {route.route: route.requests for route in loaded.load.routes}

    assert set(routes) == set(read_routes([]))
    assert all(requests > 0 for requests in routes.values()), routes


def test_runs_are_ingested_under_load(loaded: LoadWhileIngesting) -> None:
    assert loaded.runs_listed_after_load > loaded.runs_at_start
    assert loaded.scans, "no scan ran after the start-up scan"


def test_last_write_is_ingested_after_load(loaded: LoadWhileIngesting) -> None:
    assert loaded.caught_up


def test_tables_equal_their_files_after_load(loaded: LoadWhileIngesting) -> None:
    assert [table.tag for table in loaded.tables] == ["metrics", "summary"]
    for table in loaded.tables:
        assert table.correct, table


def test_service_stops_cleanly_after_load(loaded: LoadWhileIngesting) -> None:
    assert loaded.server_exit_code == 0


def test_service_logs_no_error_under_load(loaded: LoadWhileIngesting) -> None:
    assert loaded.log_failures == []


def test_check_tables_finds_stale_rows(tmp_path: Path) -> None:
    project = write_tree(tmp_path / "tree", 3)
    with open_ingestor(project, tmp_path / "service" / "catalog.duckdb") as ingestor:
        ingestor.scan_all("command")
    # Changed after the scan, so the table still has the old values of this file's rows.
    write_metrics(tmp_path / "tree" / "data" / run_tag(1), 1, 1)

    metrics, summary = check_tables(tmp_path / "service" / "catalog.duckdb", tmp_path / "tree")

    assert not metrics.correct
    assert metrics.expected_rows == metrics.table_rows
    assert metrics.missing_rows > 0
    assert metrics.unexpected_rows == metrics.missing_rows
    assert summary.correct


def test_check_tables_finds_missing_file(tmp_path: Path) -> None:
    project = write_tree(tmp_path / "tree", 3)
    with open_ingestor(project, tmp_path / "service" / "catalog.duckdb") as ingestor:
        ingestor.scan_all("command")
    write_tree(tmp_path / "tree", 4)

    metrics, _ = check_tables(tmp_path / "service" / "catalog.duckdb", tmp_path / "tree")

    assert not metrics.correct
    assert metrics.source_files == 4
    assert metrics.file_ids == 3


def test_route_load_counts_refused_connections() -> None:
    # Nothing listens on a port just freed, so every connection is refused.
    load = run_route_load(free_port(), {"projects": ["/"]}, "token", clients=2, seconds=0.5)

    assert load.requests == 0
    assert load.connection_failures > 0
    assert load.errors == load.connection_failures


def test_route_load_counts_bad_statuses_and_timeouts() -> None:
    async def serve() -> tuple[int, int]:
        # The first request gets 503 and the next gets no response, so the client counts both kinds.
        answered = 0

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal answered
            await reader.readuntil(b"\r\n\r\n")
            if answered == 0:
                answered += 1
                writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
            await reader.read()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            # The timeout equals the load's length, so the client stops after its first timeout.
            load = await asyncio.to_thread(run_route_load, port, {"status": ["/"]}, "token", 1, 0.5, 0.5)
        return load.bad_statuses, load.timeouts

    bad_statuses, timeouts = asyncio.run(serve())

    assert bad_statuses == 1
    assert timeouts == 1
