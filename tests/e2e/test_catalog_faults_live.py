"""`depictiod serve` whose catalog cannot be written for a while, driven over HTTP.

Every fault is real. The one in `make test` needs no privileges: the test sets the server
process's file size limit (RLIMIT_FSIZE) to 0 with prlimit, so every write DuckDB makes
fails with EFBIG, "File too large". The server's output goes to a pipe, which the limit
does not cover. `make faults` (DEPICTIOD_FAULTS=all) adds faults that need root, mounts and
loop devices: a full tmpfs (ENOSPC), an ext4 file system that turns read-only after an
error (EROFS), and a start on a read-only file system.
"""

from __future__ import annotations

import errno
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
import yaml

from tests.e2e.test_live_server import API, PASSWORD, _free_port
from tests.examples import write_settings
from tests.ingestor.helpers import table_collection

PROJECT_ID = "6fa000000000000000000001"
COUNTS_ID = "6fa000000000000000000003"
SUMMARY_ID = "6fa000000000000000000004"
RUNS_BEFORE = 6
# Runs added once the fault is on: some before ingestion notices it, some while it is paused.
RUNS_BEFORE_PAUSE = 4
RUNS_WHILE_PAUSED = 2
ROWS_PER_FILE = 200
DEADLINE_SECONDS = 60
STOP_DEADLINE_SECONDS = 30
# Every variable the fault-free reference scan shares with the server.
ENVIRONMENT = {
    "DEPICTIO_ADMIN_PASSWORD": PASSWORD,
    # Quick retries, and reconciles that run while ingestion is paused.
    "DEPICTIO_CATALOG_WRITE_RETRY_SECONDS": "1",
    "DEPICTIO_INGEST_RECONCILE_SECONDS": "2",
}
# The size of the file system that contains the catalog, in the faults that need one of their own.
DISK_BYTES = 64 * 2**20
# Seconds the fault lasts at least, so that scheduled reconciles (every 2 s) and several
# attempts to write again run while ingestion is paused.
FAULT_SECONDS = 4


def _write_project(root: Path) -> Path:
    collections = [table_collection("counts", r"counts\.csv$"), table_collection("summary", r"summary\.tsv$", "tsv")]
    collections[0]["id"] = COUNTS_ID
    collections[1]["id"] = SUMMARY_ID
    project = {
        "id": PROJECT_ID,
        "name": "faults",
        "workflows": [
            {
                "id": "6fa000000000000000000002",
                "name": "pipeline",
                "engine": {"name": "snakemake"},
                "data_location": {"structure": "sequencing-runs", "runs_regex": "run_.*", "locations": ["data"]},
                "data_collections": collections,
            }
        ],
    }
    (root / "data").mkdir()
    path = root / "project.yaml"
    path.write_text(yaml.safe_dump(project, sort_keys=False), encoding="utf-8")
    return path


def _write_run(root: Path, index: int) -> None:
    generator = random.Random(index)
    folder = root / "data" / f"run_{index:03d}"
    folder.mkdir()
    rows = "".join(f"g{row},{generator.randint(0, 999)},{generator.random():.4f}\n" for row in range(ROWS_PER_FILE))
    (folder / "counts.csv").write_text("gene,count,score\n" + rows, encoding="utf-8")
    (folder / "summary.tsv").write_text(f"sample\treads\ns{index}\t{generator.randint(1, 10**6)}\n", encoding="utf-8")


def _tables(catalog_path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Return every aggregated table's rows without depictiod's own time and file columns."""
    connection = duckdb.connect(str(catalog_path), read_only=True)
    try:
        names = [
            row[0]
            for row in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'data' ORDER BY 1"
            ).fetchall()
        ]
        return {
            name: connection.execute(
                f'SELECT * EXCLUDE (aggregation_time, depictio_file_id) FROM data."{name}" ORDER BY ALL'
            ).fetchall()
            for name in names
        }
    finally:
        connection.close()


def _run(*command: str) -> str:
    """Run a system command that the privileged faults need; fail the test with its output."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=DEADLINE_SECONDS)
    assert result.returncode == 0, f"{' '.join(command)} failed with {result.returncode}: {result.stderr}"
    return result.stdout


class Fault:
    """A way to make the folder of the catalog unwritable while the server runs, and to undo it."""

    name = ""
    # The cause that /utils/status reports while the fault lasts.
    summary = ""

    def prepare(self, folder: Path) -> None:
        folder.mkdir()

    def impose(self, server: PipedServer) -> None:
        raise NotImplementedError

    def lift(self, server: PipedServer) -> None:
        raise NotImplementedError

    def release(self, folder: Path) -> None:
        """Undo what prepare() did, once the server has stopped."""


class FileSizeLimit(Fault):
    """RLIMIT_FSIZE of 0 on the server process: every write to a file fails with EFBIG."""

    name = "file-size-limit"
    summary = "a file size limit is reached"

    def impose(self, server: PipedServer) -> None:
        server.limit_file_size(0)

    def lift(self, server: PipedServer) -> None:
        server.limit_file_size(resource.RLIM_INFINITY)


class FullDisk(Fault):
    """A tmpfs that the test fills up: every write that needs a new page fails with ENOSPC."""

    name = "full-disk"
    summary = "the disk is full"

    def prepare(self, folder: Path) -> None:
        folder.mkdir()
        _run("mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(folder))
        self.filler = folder / "filler"

    def impose(self, server: PipedServer) -> None:
        chunk = b"\0" * 4096
        with self.filler.open("wb", buffering=0) as handle:
            while True:
                try:
                    handle.write(chunk)
                except OSError as error:
                    assert error.errno == errno.ENOSPC, error
                    return

    def lift(self, server: PipedServer) -> None:
        self.filler.unlink()

    def release(self, folder: Path) -> None:
        _run("umount", str(folder))


class ReadOnlyAfterError(Fault):
    """An ext4 file system on a loop device that turns read-only after an error reported to it.

    ext4's errors=remount-ro makes the mount read-only at once, with files open for writing.
    Only a new mount is writable, so lifting the fault mounts a checked copy of the disk
    image at the same folder, as an administrator who repairs the disk would.
    """

    name = "read-only-after-error"
    summary = "the file system is read-only"

    def prepare(self, folder: Path) -> None:
        folder.mkdir()
        self.image = folder.parent / "catalog-disk.img"
        with self.image.open("wb") as handle:
            handle.truncate(DISK_BYTES)
        _run("mkfs.ext4", "-q", "-F", str(self.image))
        _run("mount", "-o", "loop,errors=remount-ro", str(self.image), str(folder))
        self.folder = folder

    def impose(self, server: PipedServer) -> None:
        device = Path(_run("findmnt", "-n", "-o", "SOURCE", str(self.folder)).strip()).name
        Path(f"/sys/fs/ext4/{device}/trigger_fs_error").write_text("depictiod fault test\n", encoding="ascii")

    def lift(self, server: PipedServer) -> None:
        repaired = self.image.with_name("catalog-disk-repaired.img")
        shutil.copyfile(self.image, repaired)
        # e2fsck exits with 1 when it corrected errors, such as the error flag set by impose().
        result = subprocess.run(["e2fsck", "-f", "-y", str(repaired)], capture_output=True, timeout=DEADLINE_SECONDS)
        assert result.returncode in (0, 1), result.stdout
        # The server still has files of the old mount open, so it can only be detached.
        _run("umount", "-l", str(self.folder))
        _run("mount", "-o", "loop", str(repaired), str(self.folder))

    def release(self, folder: Path) -> None:
        _run("umount", "-l", str(folder))


# DEPICTIOD_FAULTS=all adds the faults that need root, mounts and loop devices.
FAULTS: list[Fault] = [FileSizeLimit()]
if os.environ.get("DEPICTIOD_FAULTS") == "all":
    FAULTS += [FullDisk(), ReadOnlyAfterError()]


def _serve(folder: Path, project: Path) -> PipedServer:
    """Start a server with its settings, catalog and key in `folder`."""
    port = _free_port()
    return PipedServer(write_settings(folder, [project], port=port), port)


class PipedServer:
    """`depictiod serve` with its output read from a pipe into `lines`."""

    def __init__(self, settings: Path, port: int) -> None:
        self.base_url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "depictiod", "serve", "--config", str(settings)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **ENVIRONMENT},
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read_output, name="server-output", daemon=True)
        self._reader.start()

    def _read_output(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def limit_file_size(self, max_bytes: int) -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.prlimit(self.process.pid, resource.RLIMIT_FSIZE, (max_bytes, hard))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=STOP_DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_DEADLINE_SECONDS)
        self._reader.join(STOP_DEADLINE_SECONDS)


def _wait_for(server: PipedServer, description: str, check: Any) -> Any:
    """Call `check` every 0.2 s until it returns a true value, and return that value."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"depictiod exited with {server.process.returncode} while waiting for {description}:\n{server.log}"
            )
        try:
            value = check()
        except httpx.TransportError:
            value = None
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {DEADLINE_SECONDS} s waiting for {description}:\n{server.log}")


@dataclass
class Observed:
    """What the scenario saw, for the tests below to check one by one."""

    status_during: dict[str, Any] = field(default_factory=dict)
    public_status_during: dict[str, Any] = field(default_factory=dict)
    projects_during: int = 0
    shape_before: dict[str, Any] = field(default_factory=dict)
    shape_during: dict[str, Any] = field(default_factory=dict)
    rows_during: httpx.Response | None = None
    login_during: httpx.Response | None = None
    status_after: dict[str, Any] = field(default_factory=dict)
    shape_after: dict[str, Any] = field(default_factory=dict)
    log: str = ""
    returncode: int | None = None
    tables: dict[str, list[tuple[object, ...]]] = field(default_factory=dict)
    expected_tables: dict[str, list[tuple[object, ...]]] = field(default_factory=dict)
    fault: Fault = field(default_factory=FileSizeLimit)
    # From lifting the fault to every run in the table, polled every 0.2 s: reported in
    # docs/reliability.md, not checked, because it depends on the machine.
    catch_up_seconds: float = 0.0


def _run_scenario(root: Path, fault: Fault) -> Observed:
    """Ingest, make the catalog unwritable, add runs, read, lift the fault, and wait for the runs."""
    observed = Observed()
    project = _write_project(root)
    for index in range(RUNS_BEFORE):
        _write_run(root, index)
    folder = root / "state"
    fault.prepare(folder)
    try:
        server = _serve(folder, project)
        try:
            _drive(server, fault, root, observed)
        finally:
            server.stop()
        observed.log = server.log
        observed.returncode = server.process.returncode
        observed.tables = _tables(folder / "catalog.duckdb")
    finally:
        fault.release(folder)
    observed.expected_tables = _reference_tables(root, project)
    return observed


def _drive(server: PipedServer, fault: Fault, root: Path, observed: Observed) -> None:
    client = httpx.Client(base_url=server.base_url, timeout=10)
    admin = {"Authorization": f"Bearer {_sign_in(server, client)}"}

    def status(headers: dict[str, str] | None = None) -> dict[str, Any]:
        return dict(client.get(f"{API}/utils/status", headers=headers).json())

    def shape() -> dict[str, Any]:
        return dict(client.get(f"{API}/deltatables/shape/{COUNTS_ID}", headers=admin).json())

    _wait_for(server, "the start-up scan", lambda: status(admin)["ingest"]["state"] == "idle")
    observed.shape_before = shape()

    # The fault: runs arrive, ingestion notices and pauses, and more runs arrive meanwhile.
    fault.impose(server)
    fault_started = time.monotonic()
    runs = RUNS_BEFORE
    for _ in range(RUNS_BEFORE_PAUSE):
        _write_run(root, runs)
        runs += 1
    observed.status_during = _wait_for(
        server, "ingestion to pause", lambda: (found := status(admin))["ingest"]["state"] == "paused" and found
    )
    for _ in range(RUNS_WHILE_PAUSED):
        _write_run(root, runs)
        runs += 1
    observed.public_status_during = status()
    observed.projects_during = client.get(f"{API}/projects/get/all", headers=admin).status_code
    observed.shape_during = shape()
    observed.rows_during = client.get(f"{API}/datacollections/{COUNTS_ID}/rows", params={"limit": 5}, headers=admin)
    observed.login_during = client.post(
        f"{API}/auth/login", data={"username": "admin@example.org", "password": PASSWORD}
    )

    # The fault is lifted: every run lands without any request.
    time.sleep(max(0.0, fault_started + FAULT_SECONDS - time.monotonic()))
    fault.lift(server)
    lifted = time.monotonic()

    def caught_up() -> dict[str, Any] | None:
        current = shape()
        done = status(admin)["ingest"]["state"] == "idle" and current["num_rows"] == runs * ROWS_PER_FILE
        return current if done else None

    observed.shape_after = _wait_for(server, "the runs added during the fault", caught_up)
    observed.catch_up_seconds = time.monotonic() - lifted
    observed.status_after = status(admin)
    client.close()


def _sign_in(server: PipedServer, client: httpx.Client) -> str:
    def login() -> str | None:
        response = client.post(f"{API}/auth/login", data={"username": "admin@example.org", "password": PASSWORD})
        return str(response.json()["access_token"]) if response.status_code == 200 else None

    return str(_wait_for(server, "the server to accept a sign-in", login))


def _reference_tables(root: Path, project: Path) -> dict[str, list[tuple[object, ...]]]:
    """Aggregate the same files into a fresh catalog with `depictiod scan`, without any fault."""
    reference = root / "reference"
    reference.mkdir()
    settings = write_settings(reference, [project])
    result = subprocess.run(
        [sys.executable, "-m", "depictiod", "scan", "--config", str(settings)],
        capture_output=True,
        text=True,
        timeout=DEADLINE_SECONDS,
        env={**os.environ, **ENVIRONMENT, "DEPICTIO_INGEST_WATCH_MODE": "off"},
    )
    assert result.returncode == 0, result.stderr
    return _tables(reference / "catalog.duckdb")


@pytest.fixture(scope="module", params=FAULTS, ids=lambda fault: fault.name)
def observed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Observed:
    fault: Fault = request.param
    scenario = _run_scenario(tmp_path_factory.mktemp(fault.name), fault)
    scenario.fault = fault
    return scenario


def test_status_shows_paused_with_reason(observed: Observed) -> None:
    ingest = observed.status_during["ingest"]

    assert ingest["state"] == "paused"
    assert ingest["write_error"].startswith(f"{observed.fault.summary} (")
    assert "Could not write file" in ingest["write_error"]


def test_public_status_hides_file_paths(observed: Observed) -> None:
    assert observed.public_status_during["ingest"]["write_error"] == observed.fault.summary


def test_projects_readable_during_fault(observed: Observed) -> None:
    assert observed.projects_during == 200


def test_shape_readable_during_fault(observed: Observed) -> None:
    assert observed.shape_during == observed.shape_before
    assert observed.shape_before["num_rows"] == RUNS_BEFORE * ROWS_PER_FILE


def test_rows_readable_during_fault(observed: Observed) -> None:
    assert observed.rows_during is not None
    assert observed.rows_during.status_code == 200
    assert len(observed.rows_during.json()["rows"]) == 5


def test_sign_in_rejected_with_503_during_fault(observed: Observed) -> None:
    response = observed.login_during
    assert response is not None

    assert response.status_code == 503
    assert set(response.json()) == {"status_code", "detail"}
    assert "cannot be written" in response.json()["detail"]
    assert response.headers["Retry-After"].isdigit()


def test_runs_added_during_fault_land(observed: Observed) -> None:
    runs = RUNS_BEFORE + RUNS_BEFORE_PAUSE + RUNS_WHILE_PAUSED
    assert observed.shape_after["num_rows"] == runs * ROWS_PER_FILE
    assert observed.status_after["ingest"]["write_error"] is None


def test_tables_equal_fresh_aggregation(observed: Observed) -> None:
    assert observed.tables == observed.expected_tables


def test_fault_logged_once_at_error(observed: Observed) -> None:
    errors = [line for line in observed.log.splitlines() if " ERROR " in line]

    assert len(errors) == 1
    assert "catalog.write_state: catalog " in errors[0]
    assert f"cannot be written: {observed.fault.summary}" in errors[0]


def test_recovery_logged_once(observed: Observed) -> None:
    assert observed.log.count("can be written again after") == 1


def test_server_stops_cleanly_after_fault(observed: Observed) -> None:
    assert observed.returncode == 0
    assert "Traceback" not in observed.log


def _start_read_only(root: Path) -> Observed:
    """Start on a catalog whose file system is mounted read-only, read, make it writable, and wait for new runs."""
    observed = Observed()
    project = _write_project(root)
    for index in range(RUNS_BEFORE):
        _write_run(root, index)
    folder = root / "state"
    folder.mkdir()
    _run("mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(folder))
    try:
        # A first start creates the catalog and issues the administrator's token. A read-only
        # catalog cannot issue one, because a sign-in records its time.
        first = _serve(folder, project)
        try:
            client = httpx.Client(base_url=first.base_url, timeout=10)
            admin = {"Authorization": f"Bearer {_sign_in(first, client)}"}
            _wait_for(
                first,
                "the start-up scan",
                lambda: client.get(f"{API}/utils/status", headers=admin).json()["ingest"]["state"] == "idle",
            )
            client.close()
        finally:
            first.stop()
        port = _free_port()
        settings = write_settings(folder, [project], port=port)
        _run("mount", "-o", "remount,ro", str(folder))

        server = PipedServer(settings, port)
        try:
            client = httpx.Client(base_url=server.base_url, timeout=10)

            def status() -> dict[str, Any]:
                return dict(client.get(f"{API}/utils/status", headers=admin).json())

            def shape() -> dict[str, Any]:
                return dict(client.get(f"{API}/deltatables/shape/{COUNTS_ID}", headers=admin).json())

            observed.status_during = _wait_for(
                server,
                "the server to start paused",
                lambda: (found := status())["ingest"]["state"] == "paused" and found,
            )
            observed.shape_during = shape()
            for index in range(RUNS_BEFORE, RUNS_BEFORE + RUNS_WHILE_PAUSED):
                _write_run(root, index)
            _run("mount", "-o", "remount,rw", str(folder))
            runs = RUNS_BEFORE + RUNS_WHILE_PAUSED

            def caught_up() -> dict[str, Any] | None:
                current = shape()
                done = status()["ingest"]["state"] == "idle" and current["num_rows"] == runs * ROWS_PER_FILE
                return current if done else None

            observed.shape_after = _wait_for(server, "the runs added while read-only", caught_up)
            client.close()
        finally:
            server.stop()
        observed.log = server.log
        observed.returncode = server.process.returncode
    finally:
        _run("umount", str(folder))
    return observed


# Defined only with DEPICTIOD_FAULTS=all, because it needs root to mount: without it, it is
# not collected at all, so `make test` runs no skipped test.
if os.environ.get("DEPICTIOD_FAULTS") == "all":

    @pytest.fixture(scope="module")
    def read_only_start(tmp_path_factory: pytest.TempPathFactory) -> Observed:
        return _start_read_only(tmp_path_factory.mktemp("read-only-start"))

    def test_read_only_start_pauses(read_only_start: Observed) -> None:
        ingest = read_only_start.status_during["ingest"]

        assert ingest["state"] == "paused"
        assert ingest["write_error"].startswith("the file system is read-only (")

    def test_read_only_start_serves_reads(read_only_start: Observed) -> None:
        assert read_only_start.shape_during["num_rows"] == RUNS_BEFORE * ROWS_PER_FILE

    def test_read_only_start_ingests_once_writable(read_only_start: Observed) -> None:
        assert read_only_start.shape_after["num_rows"] == (RUNS_BEFORE + RUNS_WHILE_PAUSED) * ROWS_PER_FILE

    def test_read_only_start_stops_cleanly(read_only_start: Observed) -> None:
        assert read_only_start.returncode == 0
        assert "Traceback" not in read_only_start.log
