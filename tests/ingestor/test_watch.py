"""Choosing how to watch a location, and change events that trigger a rescan."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from api import create_app
from config import load_projects, load_settings
from ingestor.watch import Watcher, choose_mode, file_system_type
from tests.examples import BUNDLED_PENGUINS_WORKFLOW_ID, copy_bundled_examples

API = "/depictio/api/v1"
PASSWORD = "watch-test-password"
CHANGE_DEADLINE_SECONDS = 30


def _mount_table(tmp_path: Path, lines: list[str]) -> str:
    table = tmp_path / "mounts"
    table.write_text("\n".join(lines) + "\n")
    return str(table)


def test_network_file_system_is_polled(tmp_path: Path) -> None:
    table = _mount_table(tmp_path, ["/dev/sda1 / ext4 rw 0 0", f"server:/export {tmp_path} nfs4 rw 0 0"])

    mode, reason = choose_mode(str(tmp_path / "runs"), "auto", table)

    assert mode == "polling"
    assert "nfs4" in reason


def test_fuse_file_system_is_polled(tmp_path: Path) -> None:
    table = _mount_table(tmp_path, ["/dev/sda1 / ext4 rw 0 0", f"sshfs#host: {tmp_path} fuse.sshfs rw 0 0"])

    assert choose_mode(str(tmp_path), "auto", table)[0] == "polling"


def test_local_file_system_uses_events(tmp_path: Path) -> None:
    table = _mount_table(tmp_path, ["/dev/sda1 / ext4 rw 0 0"])

    assert choose_mode(str(tmp_path), "auto", table) == ("events", "local file system (ext4)")


def test_longest_mount_point_wins(tmp_path: Path) -> None:
    table = _mount_table(tmp_path, [f"a {tmp_path} nfs rw 0 0", f"b {tmp_path}/local ext4 rw 0 0"])

    assert file_system_type(str(tmp_path / "local" / "x"), table) == "ext4"
    assert file_system_type(str(tmp_path / "other"), table) == "nfs"


def test_requested_mode_is_kept(tmp_path: Path) -> None:
    table = _mount_table(tmp_path, [f"a {tmp_path} nfs rw 0 0"])

    assert choose_mode(str(tmp_path), "events", table)[0] == "events"


def _client(tmp_path: Path, watch_mode: str) -> TestClient:
    projects = copy_bundled_examples(tmp_path)
    settings_path = tmp_path / "depictio.toml"
    listed = ", ".join(f'"{path}"' for path in projects)
    settings_path.write_text(
        f"projects = [{listed}]\n"
        f'[catalog]\npath = "{tmp_path / "catalog.duckdb"}"\n'
        f'[auth]\nkey_file = "{tmp_path / "auth.key"}"\n'
        f'[ingest]\nreconcile_seconds = 0\nsettle_seconds = 0.3\npoll_seconds = 0.5\nwatch_mode = "{watch_mode}"\n'
    )
    settings = load_settings(str(settings_path), environ={})
    return TestClient(create_app(settings, load_projects(settings.projects), admin_password=PASSWORD))


@pytest.fixture(params=["events", "polling"])
def watched(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    with _client(tmp_path, request.param) as client:
        yield client, tmp_path / "bundled" / "penguins" / "data"


def _run_tags(client: TestClient, headers: dict[str, str]) -> list[str]:
    runs = client.get(f"{API}/runs/list/{BUNDLED_PENGUINS_WORKFLOW_ID}", headers=headers).json()
    return sorted(run["run_tag"] for run in runs)


def _wait_for_runs(client: TestClient, headers: dict[str, str], expected: list[str]) -> list[str]:
    deadline = time.monotonic() + CHANGE_DEADLINE_SECONDS
    tags = _run_tags(client, headers)
    while tags != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        tags = _run_tags(client, headers)
    return tags


def test_new_run_arrives_without_reconcile(watched: tuple[TestClient, Path]) -> None:
    client, data = watched
    login = client.post(f"{API}/auth/login", data={"username": "admin@example.org", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    before = _run_tags(client, headers)

    new_run = data / "run_4_extra"
    new_run.mkdir()
    (new_run / "physical_features.part").write_text("individual_id,bill_length_mm\nextra_001,40.5\n")
    (new_run / "physical_features.part").rename(new_run / "physical_features.csv")

    assert _wait_for_runs(client, headers, sorted([*before, "run_4_extra"])) == sorted([*before, "run_4_extra"])


def test_removed_run_leaves_without_reconcile(watched: tuple[TestClient, Path]) -> None:
    client, data = watched
    login = client.post(f"{API}/auth/login", data={"username": "admin@example.org", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    before = _run_tags(client, headers)

    for path in sorted((data / "run_2_chinstrap").iterdir()):
        path.unlink()
    (data / "run_2_chinstrap").rmdir()

    expected = [tag for tag in before if tag != "run_2_chinstrap"]
    assert _wait_for_runs(client, headers, expected) == expected


def test_status_names_watch_mode(watched: tuple[TestClient, Path]) -> None:
    client, _ = watched
    login = client.post(f"{API}/auth/login", data={"username": "admin@example.org", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

    ingest = client.get(f"{API}/utils/status", headers=headers).json()["ingest"]
    locations = ingest["locations"]

    assert {location["mode"] for location in locations} <= {"events", "polling"}
    assert len(locations) == 2
    assert ingest["scans_timed_out"] == 0


def test_status_hides_locations_from_others(watched: tuple[TestClient, Path]) -> None:
    client, _ = watched

    ingest = client.get(f"{API}/utils/status").json()["ingest"]

    # Folder paths and workflow ids would name private projects to anyone.
    assert ingest["locations"] == []
    assert ingest["last_error"] is None


def test_polling_skips_symlinked_folders(tmp_path: Path) -> None:
    projects = load_projects([str(path) for path in copy_bundled_examples(tmp_path)])
    run = tmp_path / "bundled" / "penguins" / "data" / "run_1_adelie"
    # Two links back up the tree: followed, they would make about 2^40 paths to poll.
    (run / "loop").symlink_to(".")
    (run / "up").symlink_to("../run_1_adelie")
    (run / "usr").symlink_to("/usr")
    rescans: list[str] = []
    settle = {workflow.id or "": 0.2 for project in projects for workflow in project.workflows}
    watcher = Watcher(
        projects, lambda workflow_id, trigger: rescans.append(workflow_id), settle, "polling", poll_seconds=0.5
    )
    starting = threading.Thread(target=watcher.start, daemon=True)
    starting.start()
    starting.join(timeout=CHANGE_DEADLINE_SECONDS)
    try:
        assert not starting.is_alive(), "the polling observer did not finish its first walk"
        (run / "new.csv").write_text("a\n1\n")
        deadline = time.monotonic() + CHANGE_DEADLINE_SECONDS
        while BUNDLED_PENGUINS_WORKFLOW_ID not in rescans and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        watcher.stop()

    assert BUNDLED_PENGUINS_WORKFLOW_ID in rescans
