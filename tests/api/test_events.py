"""`GET /events` through the real app: replay, gaps, filters, access and the events that changes publish.

Litestar's TestClient reads a response to its end, so these requests pass `max_seconds=0`:
the stream sends the events missed since `last_event_id` and ends. Live streams are tested
against a running server in tests/e2e/test_events_live.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api import create_app
from config import load_projects, load_settings
from tests.api.conftest import ADMIN_PASSWORD, API, add_user, login
from tests.examples import copy_bundled_examples, write_settings

PENGUINS = "6a0001000000000000000001"
PHYSICAL_FEATURES = "6a0001000000000000000003"
IRIS = "6a0002000000000000000001"
VIEWER = "viewer@example.org"
PASSWORD = "events-test-password"


class Stream:
    """The parsed events of one finished response: (id or None, type, data) each, and its comments."""

    def __init__(self, text: str) -> None:
        self.events: list[tuple[int | None, str, dict[str, Any]]] = []
        self.comments: list[str] = []
        for block in text.replace("\r\n", "\n").split("\n\n"):
            fields: dict[str, str] = {}
            for line in block.split("\n"):
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                elif ": " in line:
                    name, value = line.split(": ", 1)
                    fields[name] = value
            if "event" in fields:
                event_id = int(fields["id"]) if "id" in fields else None
                self.events.append((event_id, fields["event"], json.loads(fields["data"])))

    def types(self) -> list[str]:
        return [event_type for _, event_type, _ in self.events]

    def projects(self) -> set[str]:
        return {data["project_id"] for _, _, data in self.events if "project_id" in data}

    def last_id(self) -> int:
        ids = [event_id for event_id, _, _ in self.events if event_id is not None]
        return ids[-1]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("events")
    penguins, iris = copy_bundled_examples(root)
    penguins.write_text(
        penguins.read_text().replace("is_public: true", f"is_public: false\npermissions:\n  viewers: [{VIEWER}]")
    )
    iris.write_text(iris.read_text().replace("is_public: true", "is_public: false"))
    # Without a watcher, only the scans that the tests request publish events.
    settings = load_settings(str(write_settings(root, [penguins, iris])), environ={"DEPICTIO_INGEST_WATCH_MODE": "off"})
    app = create_app(settings, load_projects(settings.projects), admin_password=ADMIN_PASSWORD)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def admin(client: TestClient) -> dict[str, str]:
    return login(client, "admin@example.org", ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def viewer(client: TestClient) -> dict[str, str]:
    return add_user(client, VIEWER, PASSWORD)


def _events(client: TestClient, headers: dict[str, str], **params: str) -> Stream:
    response = client.get(f"{API}/events", params={"max_seconds": "0", **params}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return Stream(response.text)


def _penguins_folder(client: TestClient) -> Path:
    record = client.app.state.catalog.projects.get(PENGUINS)
    return Path(record.project.workflows[0].data_location.locations[0])


def test_replay_from_zero_starts_with_gap(client: TestClient, admin: dict[str, str]) -> None:
    stream = _events(client, admin, last_event_id="0")

    assert stream.types()[0] == "history.gap"
    assert stream.events[0][2]["last_event_id"] == 0
    for event_type in ("run.added", "file.added", "table.updated", "schema.changed", "scan.finished"):
        assert event_type in stream.types(), f"no {event_type} event after the start-up scan"
    ids = [event_id for event_id, _, _ in stream.events[1:]]
    assert ids == sorted(ids)
    assert stream.projects() == {PENGUINS, IRIS}


def test_stream_without_id_replays_nothing(client: TestClient, admin: dict[str, str]) -> None:
    stream = _events(client, admin)

    assert stream.events == []
    assert "connected" in stream.comments


def test_replay_after_known_id(client: TestClient, admin: dict[str, str]) -> None:
    everything = _events(client, admin, last_event_id="0")
    middle = everything.events[len(everything.events) // 2][0]
    assert middle is not None

    stream = _events(client, admin, last_event_id=str(middle))

    assert "history.gap" not in stream.types()
    assert [event_id for event_id, _, _ in stream.events] == [
        event_id for event_id, _, _ in everything.events[1:] if event_id is not None and event_id > middle
    ]


def test_header_wins_over_query_parameter(client: TestClient, admin: dict[str, str]) -> None:
    last = _events(client, admin, last_event_id="0").last_id()

    response = client.get(
        f"{API}/events",
        params={"max_seconds": "0", "last_event_id": "0"},
        headers={**admin, "Last-Event-ID": str(last)},
    )

    assert response.status_code == 200
    assert Stream(response.text).events == []


def test_viewer_sees_only_readable_project(client: TestClient, viewer: dict[str, str]) -> None:
    stream = _events(client, viewer, last_event_id="0")

    assert stream.projects() == {PENGUINS}
    assert "table.updated" in stream.types()


def test_viewer_cannot_filter_unreadable_project(client: TestClient, viewer: dict[str, str]) -> None:
    response = client.get(f"{API}/events", params={"max_seconds": "0", "project_id": IRIS}, headers=viewer)

    assert response.status_code == 404
    assert response.json() == {"status_code": 404, "detail": f"project {IRIS!r} not found"}


def test_filters_by_project_and_type(client: TestClient, admin: dict[str, str]) -> None:
    stream = _events(client, admin, last_event_id="0", project_id=IRIS, types="table.updated,scan.finished")

    assert stream.projects() == {IRIS}
    assert set(stream.types()) == {"history.gap", "table.updated", "scan.finished"}


@pytest.mark.parametrize(
    ("params", "headers", "named"),
    [
        ({"types": "table.updated,table.deleted"}, {}, "types"),
        ({"last_event_id": "yesterday"}, {}, "last_event_id"),
        ({"last_event_id": "-1"}, {}, "last_event_id"),
        ({}, {"Last-Event-ID": "abc"}, "Last-Event-ID"),
        ({"max_seconds": "-5"}, {}, "max_seconds"),
        ({"last_event_id": "9" * 5000}, {}, "9" * 40),
        ({"typ": "table.updated"}, {}, "unknown parameter 'typ'"),
    ],
)
def test_invalid_parameters_get_400(
    client: TestClient, admin: dict[str, str], params: dict[str, str], headers: dict[str, str], named: str
) -> None:
    response = client.get(f"{API}/events", params={"max_seconds": "0", **params}, headers={**admin, **headers})

    assert response.status_code == 400, response.text
    assert named in response.json()["detail"]
    assert len(response.json()["detail"]) < 300


JOINED = "6a0001000000000000000005"


def test_anonymous_request_gets_401(client: TestClient) -> None:
    response = client.get(f"{API}/events", params={"max_seconds": "0"})

    assert response.status_code == 401


def test_new_file_publishes_added_and_updated(client: TestClient, admin: dict[str, str]) -> None:
    last = _events(client, admin, last_event_id="0").last_id()
    run = _penguins_folder(client) / "run_4_more"
    run.mkdir()
    (run / "physical_features.csv").write_text(
        "individual_id,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g\nextra_001,40.1,18.0,190,3900\n"
    )

    assert client.post(f"{API}/projects/{PENGUINS}/scan", headers=admin).status_code == 200
    stream = _events(client, admin, last_event_id=str(last))

    runs = [data for _, kind, data in stream.events if kind == "run.added"]
    assert [data["run_tag"] for data in runs] == ["run_4_more"]
    files = [data for _, kind, data in stream.events if kind == "file.added"]
    assert [Path(data["file_location"]).name for data in files] == ["physical_features.csv"]
    assert files[0]["data_collection_id"] == PHYSICAL_FEATURES
    tables = [data for _, kind, data in stream.events if kind == "table.updated"]
    # The join of the two penguin tables follows the change of one of its sides.
    assert [(data["data_collection_id"], data.get("rows_before"), data["rows"]) for data in tables] == [
        (PHYSICAL_FEATURES, 344, 345),
        (JOINED, 344, 344),
    ]
    assert "schema.changed" not in stream.types()
    # The workflow's scan finishes before the project's joins run.
    assert stream.types()[-2:] == ["scan.finished", "table.updated"]
    assert stream.events[-2][2]["files_new"] == 1


def test_bad_file_publishes_failed_with_reason(client: TestClient, admin: dict[str, str]) -> None:
    last = _events(client, admin, last_event_id="0").last_id()
    run = _penguins_folder(client) / "run_5_broken"
    run.mkdir()
    (run / "physical_features.csv").write_text("")

    assert client.post(f"{API}/projects/{PENGUINS}/scan", headers=admin).status_code == 200
    stream = _events(client, admin, last_event_id=str(last), types="file.failed,scan.finished")

    failed = [data for _, kind, data in stream.events if kind == "file.failed"]
    assert len(failed) == 1
    assert failed[0]["run_tag"] == "run_5_broken"
    assert "empty" in failed[0]["reason"]
    assert stream.events[-1][2]["files_failed"] == 1


def test_new_column_publishes_schema_change(client: TestClient, admin: dict[str, str]) -> None:
    last = _events(client, admin, last_event_id="0").last_id()
    run = _penguins_folder(client) / "run_6_wider"
    run.mkdir()
    (run / "physical_features.csv").write_text(
        "individual_id,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,tag_colour\n"
        "wide_001,41.0,18.2,191,4000,red\n"
    )

    assert client.post(f"{API}/projects/{PENGUINS}/scan", headers=admin).status_code == 200
    stream = _events(client, admin, last_event_id=str(last), types="schema.changed")

    # The joined table of the penguins takes the new column too.
    assert [data["data_collection_id"] for _, _, data in stream.events] == [PHYSICAL_FEATURES, JOINED]
    for _, _, data in stream.events:
        assert data["columns_added"] == ["tag_colour"]
        assert data["columns"]["tag_colour"] == "VARCHAR"


def test_permission_change_hides_project(client: TestClient, admin: dict[str, str]) -> None:
    user = add_user(client, "reader@example.org", PASSWORD)
    body = {
        "project_id": IRIS,
        "permissions": {"owners": ["admin@example.org"], "editors": [], "viewers": ["reader@example.org"]},
    }
    assert client.post(f"{API}/projects/update_project_permissions", json=body, headers=admin).status_code == 200
    assert _events(client, user, last_event_id="0").projects() == {IRIS}

    body["permissions"] = {"owners": ["admin@example.org"], "editors": [], "viewers": []}
    assert client.post(f"{API}/projects/update_project_permissions", json=body, headers=admin).status_code == 200

    assert _events(client, user, last_event_id="0").projects() == set()
