"""A file's rows are counted once, whatever mix of restarts, events and rescans reaches it.

The service runs with its watcher and is read through the API, as users read it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from api import create_app
from config import load_projects, load_settings
from tests.ingestor.helpers import table_collection, write_file, write_project

API = "/depictio/api/v1"
PASSWORD = "idempotent-test-password"
DEADLINE_SECONDS = 30
STATS = "".join(f"S{number},{number * 10}\n" for number in range(10))


class Service:
    """A project with a watched location, and the app that serves it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        project = write_project(root, [table_collection("stats", r"stats\.tsv$", "tsv")])
        settings_path = root / "depictio.toml"
        settings_path.write_text(
            f'projects = ["{project}"]\n'
            f'[catalog]\npath = "{root / "catalog.duckdb"}"\n'
            f'[auth]\nkey_file = "{root / "auth.key"}"\n'
            '[ingest]\nreconcile_seconds = 0\nsettle_seconds = 0.3\nwatch_mode = "events"\n'
        )
        self.settings = load_settings(str(settings_path), environ={})
        self.project = load_projects(self.settings.projects)[0]
        collection_id = self.project.workflows[0].data_collections[0].id
        assert collection_id is not None
        self.collection_id = collection_id

    def start(self) -> TestClient:
        return TestClient(create_app(self.settings, load_projects(self.settings.projects), admin_password=PASSWORD))


def _headers(client: TestClient) -> dict[str, str]:
    login = client.post(f"{API}/auth/login", data={"username": "admin@example.org", "password": PASSWORD})
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def _rows(client: TestClient, headers: dict[str, str], collection_id: str) -> int:
    """Return the number of rows the table serves, counted from the rows themselves."""
    response = client.get(f"{API}/deltatables/preview/{collection_id}", params={"limit": 1000}, headers=headers)
    assert response.status_code == 200, response.text
    return len(response.json()["rows"])


def _event_scans(client: TestClient, headers: dict[str, str]) -> int:
    response = client.get(f"{API}/scans", params={"limit": 1000}, headers=headers)
    assert response.status_code == 200, response.text
    return sum(1 for report in response.json()["scans"] if report["trigger"] == "event")


def _after_event_scan(client: TestClient, headers: dict[str, str], change: Callable[[], None]) -> None:
    """Make `change`, then wait until the watcher has rescanned after it."""
    before = _event_scans(client, headers)
    change()
    deadline = time.monotonic() + DEADLINE_SECONDS
    while _event_scans(client, headers) == before:
        assert time.monotonic() < deadline, "no rescan followed the change"
        time.sleep(0.1)
    # Events that arrive during that rescan start one more rescan, so wait for it too.
    time.sleep(1.0)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    served = Service(tmp_path)
    path = write_file(served.data / "run_1" / "stats.tsv", "sample\treads\n" + STATS.replace(",", "\t"))
    # Written a minute ago: settled, so the start-up scan reads it.
    stamp = time.time_ns() - 60_000_000_000
    os.utime(path, ns=(stamp, stamp))
    yield served


def test_restart_keeps_ten_rows(service: Service) -> None:
    for _ in range(2):
        with service.start() as client:
            assert _rows(client, _headers(client), service.collection_id) == 10


def test_touch_keeps_ten_rows(service: Service) -> None:
    path = service.data / "run_1" / "stats.tsv"
    with service.start() as client:
        headers = _headers(client)

        def touch() -> None:
            stamp = path.stat().st_mtime_ns + 2_000_000_000
            os.utime(path, ns=(stamp, stamp))

        _after_event_scan(client, headers, touch)

        assert _rows(client, headers, service.collection_id) == 10


def test_create_then_modify_keeps_ten_rows(service: Service) -> None:
    path = service.data / "run_1" / "stats.tsv"
    text = path.read_text()
    with service.start() as client:
        headers = _headers(client)

        def recreate() -> None:
            path.unlink()
            path.write_text(text)  # created
            with path.open("a") as handle:
                handle.write("")  # modified, same content
            path.write_text(text)

        _after_event_scan(client, headers, recreate)

        assert _rows(client, headers, service.collection_id) == 10


def test_manual_rescan_during_event_keeps_rows(service: Service) -> None:
    path = service.data / "run_1" / "stats.tsv"
    with service.start() as client:
        headers = _headers(client)
        scans: list[int] = []

        def rescan_while_changing() -> None:
            path.write_text("sample\treads\n" + STATS.replace(",", "\t") + "S10\t100\n")
            worker = threading.Thread(
                target=lambda: scans.append(
                    client.post(f"{API}/projects/{service.project.id}/scan", headers=headers).status_code
                )
            )
            worker.start()
            worker.join(timeout=DEADLINE_SECONDS)

        _after_event_scan(client, headers, rescan_while_changing)

        assert scans == [200]
        assert _rows(client, headers, service.collection_id) == 11
