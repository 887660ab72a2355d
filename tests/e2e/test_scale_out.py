"""Several depictiod processes on one DuckLake catalog: ingest processes write, api processes serve.

Three ingest processes share a catalog in a throwaway PostgreSQL cluster: one scans the penguins
project, one the iris project, and one the penguins project too, so two writers update the same
collections. Two api processes serve the catalog. The tables must end equal to the files, without
duplicate rows, and a new run must show on both api processes within a second of its commit.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from catalog import Catalog
from config import CatalogSettings
from tests.examples import copy_bundled_examples, write_settings
from tests.postgres import PostgresCluster

API = "/depictio/api/v1"
PASSWORD = "scale-out-password"
PHYSICAL_FEATURES = "6a0001000000000000000003"
IRIS_TABLE = "6a0002000000000000000003"
START_DEADLINE_SECONDS = 120
VISIBLE_WITHIN_SECONDS = 1.0


@dataclass
class Process:
    name: str
    process: subprocess.Popen[str]
    log: Path
    base_url: str | None


@dataclass
class Site:
    root: Path
    lake: dict[str, str]
    ingest: list[Process]
    api: list[Process]
    penguins_data: Path


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _settings(root: Path, name: str, projects: list[Path], lake: dict[str, str], port: int) -> Path:
    """Write the settings of one process: its own local folder, the shared lake and signing key."""
    folder = root / name
    folder.mkdir()
    listed = ", ".join(f'"{path}"' for path in projects)
    lake_lines = "\n".join(f'{key} = "{value}"' for key, value in lake.items())
    path = folder / "depictio.toml"
    path.write_text(
        f"projects = [{listed}]\n"
        f"[server]\nport = {port}\n"
        f'[catalog]\npath = "{folder / "catalog.duckdb"}"\n{lake_lines}\n'
        f'[auth]\nkey_file = "{root / "auth.key"}"\nadmin_email = "admin@example.org"\n'
        "[ingest]\nreconcile_seconds = 0\nsettle_seconds = 0.5\n",
        encoding="utf-8",
    )
    return path


def _start(root: Path, name: str, role: str, projects: list[Path], lake: dict[str, str]) -> Process:
    port = _free_port()
    settings = _settings(root, name, projects, lake, port)
    log = root / f"{name}.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "depictiod", "serve", "--config", str(settings), "--role", role],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "DEPICTIO_ADMIN_PASSWORD": PASSWORD},
            text=True,
        )
    return Process(name, process, log, f"http://127.0.0.1:{port}" if role != "ingest" else None)


def _stop(process: Process) -> None:
    if process.process.poll() is None:
        process.process.send_signal(signal.SIGINT)
    try:
        process.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.process.kill()
        process.process.wait(timeout=30)


def _sign_in(server: Process) -> dict[str, str]:
    response = httpx.post(
        f"{server.base_url}{API}/auth/login", data={"username": "admin@example.org", "password": PASSWORD}, timeout=30
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _rows(server: Process, headers: dict[str, str], collection_id: str) -> list[dict[str, str]] | None:
    try:
        response = httpx.get(
            f"{server.base_url}{API}/datacollections/{collection_id}/export",
            params={"format": "csv"},
            headers=headers,
            timeout=30,
        )
    except httpx.TransportError:
        return None
    if response.status_code != 200:
        return None
    return list(csv.DictReader(io.StringIO(response.text)))


def _row_count(server: Process, headers: dict[str, str], collection_id: str) -> int | None:
    response = httpx.get(f"{server.base_url}{API}/deltatables/shape/{collection_id}", headers=headers, timeout=30)
    return int(response.json()["num_rows"]) if response.status_code == 200 else None


def _expected_rows(data: Path, file_name: str) -> int:
    return sum(max(len(path.read_text().splitlines()) - 1, 0) for path in data.glob(f"*/{file_name}"))


def _wait(condition: object, seconds: float, description: str, site: Site) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        for process in site.ingest + site.api:
            if process.process.poll() is not None:
                pytest.fail(f"{process.name} exited with {process.process.returncode}:\n{process.log.read_text()}")
        time.sleep(0.05)
    logs = "\n".join(f"--- {p.name}\n{p.log.read_text()[-3000:]}" for p in site.ingest + site.api)
    pytest.fail(f"{description} within {seconds} s\n{logs}")


@pytest.fixture(scope="module")
def site(postgres_cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("scale-out")
    penguins, iris = copy_bundled_examples(root)
    lake = {
        "backend": "ducklake",
        "postgres": postgres_cluster.dsn(postgres_cluster.create_database("scale_out")),
        "data_path": str(root / "lake-data"),
    }
    ingest = [
        _start(root, "ingest-penguins", "ingest", [penguins], lake),
        _start(root, "ingest-iris", "ingest", [iris], lake),
        _start(root, "ingest-penguins-again", "ingest", [penguins], lake),
    ]
    api = [_start(root, f"api-{index}", "api", [penguins, iris], lake) for index in (1, 2)]
    site = Site(root=root, lake=lake, ingest=ingest, api=api, penguins_data=penguins.parent / "data")
    try:
        yield site
    finally:
        for process in api + ingest:
            _stop(process)


def _complete(site: Site, server: Process, headers: dict[str, str]) -> bool:
    physical = _rows(server, headers, PHYSICAL_FEATURES)
    iris = _rows(server, headers, IRIS_TABLE)
    return (
        physical is not None
        and iris is not None
        and len(physical) == _expected_rows(site.penguins_data, "physical_features.csv")
        and len(iris) == 150
    )


def test_tables_equal_files_on_both_api_processes(site: Site) -> None:
    _wait(lambda: all(_try_health(server) for server in site.api), START_DEADLINE_SECONDS, "api processes ready", site)
    headers = _sign_in(site.api[0])
    _wait(
        lambda: all(_complete(site, server, headers) for server in site.api),
        START_DEADLINE_SECONDS,
        "tables complete",
        site,
    )

    for server in site.api:
        physical = _rows(server, headers, PHYSICAL_FEATURES)
        assert physical is not None
        keys = [(row["depictio_run_id"], row["individual_id"]) for row in physical]
        assert len(keys) == len(set(keys)), f"{server.name} serves duplicate rows"
        assert len(keys) == _expected_rows(site.penguins_data, "physical_features.csv")
    assert _rows(site.api[0], headers, PHYSICAL_FEATURES) == _rows(site.api[1], headers, PHYSICAL_FEATURES)

    # A fresh aggregation of the same files by one process on a DuckDB file gives the same rows.
    fresh = _fresh_aggregation(site)
    for collection_id in (PHYSICAL_FEATURES, IRIS_TABLE):
        served = _rows(site.api[0], headers, collection_id)
        assert served is not None
        assert _comparable(served) == _comparable(fresh[collection_id]), collection_id


def test_new_run_visible_within_a_second(site: Site) -> None:
    headers = _sign_in(site.api[0])
    _wait(
        lambda: all(_complete(site, server, headers) for server in site.api),
        START_DEADLINE_SECONDS,
        "tables complete",
        site,
    )
    # The test reads the catalog itself to learn when an ingest process committed the new run.
    observer_path = str(site.root / "observer.duckdb")
    observer = Catalog(observer_path, CatalogSettings(path=observer_path, **site.lake))  # type: ignore[arg-type]
    # An api process streams the events of the ingest process that writes the change.
    events: list[str] = []
    stream = threading.Thread(target=_read_events, args=(site.api[1], headers, events), daemon=True)
    stream.start()
    time.sleep(1)
    try:
        shutil.copytree(site.penguins_data / "run_1_adelie", site.penguins_data / "run_4_copy")
        expected = _expected_rows(site.penguins_data, "physical_features.csv")

        def committed() -> bool:
            row = observer.store.query_one(f'SELECT count(*) FROM data."dc_{PHYSICAL_FEATURES}"')
            return row is not None and row[0] == expected

        _wait(committed, 60, "the new run committed by an ingest process", site)
        committed_at = time.monotonic()
        seen: dict[str, float] = {}

        def watch(server: Process) -> None:
            # One thread per api process, so a slow response of one does not delay the other.
            while time.monotonic() - committed_at < 10:
                if _row_count(server, headers, PHYSICAL_FEATURES) == expected:
                    seen[server.name] = time.monotonic() - committed_at
                    return
                time.sleep(0.02)

        watchers = [threading.Thread(target=watch, args=(server,)) for server in site.api]
        for watcher in watchers:
            watcher.start()
        for watcher in watchers:
            watcher.join()
    finally:
        observer.close()

    stream.join(timeout=40)
    updates = [line for line in events if '"table.updated"' in line and PHYSICAL_FEATURES in line]
    assert updates, f"{site.api[1].name} streamed no table.updated of the new run: {events[-5:]}"
    assert sorted(seen) == sorted(server.name for server in site.api), seen
    for name, seconds in seen.items():
        assert seconds <= VISIBLE_WITHIN_SECONDS, f"{name} showed the new run {seconds:.2f} s after its commit"


def _fresh_aggregation(site: Site) -> dict[str, list[dict[str, str]]]:
    """Scan the projects once into a new DuckDB file with `depictiod scan`, and export its two tables as rows."""
    root = site.root / "fresh"
    root.mkdir()
    projects = [site.penguins_data.parent / "project.yaml", site.root / "bundled" / "iris" / "project.yaml"]
    settings = write_settings(root, projects)
    text = settings.read_text()
    for key in ("backend", "postgres", "data_path", "metadata_schema"):
        text = "\n".join(line for line in text.splitlines() if not line.startswith(f"{key} =")) + "\n"
    settings.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "depictiod", "scan", "--config", str(settings)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    catalog = Catalog(str(root / "catalog.duckdb"))
    try:
        tables = {}
        for collection_id in (PHYSICAL_FEATURES, IRIS_TABLE):
            with catalog.store.read() as cursor:
                result_set = cursor.execute(f'SELECT * FROM data."dc_{collection_id}"')
                names = [column[0] for column in result_set.description or []]
                tables[collection_id] = [
                    {name: "" if value is None else str(value) for name, value in zip(names, row, strict=True)}
                    for row in result_set.fetchall()
                ]
        return tables
    finally:
        catalog.close()


def _comparable(rows: list[dict[str, str]]) -> list[tuple[tuple[str, str], ...]]:
    """Return rows as sorted tuples of their columns, without the time of their aggregation, for comparison."""
    kept = [
        tuple(sorted((name, _number(value)) for name, value in row.items() if name != "aggregation_time"))
        for row in rows
    ]
    return sorted(kept)


def _number(value: str) -> str:
    # CSV exports and Python's str() write floats alike except for integral values ("2.0" and "2").
    try:
        return repr(float(value))
    except ValueError:
        return value


def _read_events(server: Process, headers: dict[str, str], lines: list[str]) -> None:
    """Collect the data lines of table.updated events that `server` streams for 30 seconds."""
    params = {"types": "table.updated", "max_seconds": "30"}
    with httpx.stream("GET", f"{server.base_url}{API}/events", params=params, headers=headers, timeout=60) as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                lines.append(line)


def _try_health(server: Process) -> bool:
    try:
        return httpx.get(f"{server.base_url}/health/ready", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
