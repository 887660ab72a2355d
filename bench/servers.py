"""Start and stop `depictiod serve` and the bare reference app as child processes on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.timing import process_peak_rss_mib

API = "/depictio/api/v1"
ADMIN_EMAIL = "admin@example.org"
ADMIN_PASSWORD = "bench-admin-password"
STOP_DEADLINE_SECONDS = 30


class ServerError(Exception):
    """Raised when a server exits or does not respond in time; the message ends with its log."""


class Server:
    """A server process, the address it listens on and the file it logs to."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.log = log


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(command: list[str], log: Path, port: int) -> Server:
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "DEPICTIO_ADMIN_PASSWORD": ADMIN_PASSWORD},
        )
    return Server(process, port, log)


def start_depictiod(
    folder: Path,
    project: Path,
    settle_seconds: float,
    watch_mode: str,
    reconcile_seconds: int = 0,
    log_level: str = "WARNING",
) -> Server:
    """Start `depictiod serve` with its catalog, key, settings and log in `folder`.

    `reconcile_seconds` = 0, the default, schedules no reconcile.
    """
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    settings = folder / "depictio.toml"
    settings.write_text(
        f'projects = ["{project}"]\n'
        f'[server]\nhost = "127.0.0.1"\nport = {port}\nlog_level = "{log_level}"\n'
        f'[catalog]\npath = "{folder / "catalog.duckdb"}"\n'
        f'[auth]\nkey_file = "{folder / "auth.key"}"\nadmin_email = "{ADMIN_EMAIL}"\n'
        f"[ingest]\nreconcile_seconds = {reconcile_seconds}\nsettle_seconds = {settle_seconds}\n"
        f'watch_mode = "{watch_mode}"\n',
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "depictiod", "serve", "--config", str(settings)]
    return _start(command, folder / "depictiod.log", port)


def start_bare_app(folder: Path, key_file: Path, body_file: Path) -> Server:
    """Start the bare reference app (bench.bare_app), logging to folder/bare.log."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "bench.bare_app",
        f"--port={port}",
        f"--key={key_file}",
        f"--body={body_file}",
    ]
    return _start(command, folder / "bare.log", port)


def wait_ready(server: Server, path: str, deadline_seconds: float) -> None:
    """Wait until GET `path` gets a response other than 503, the status of a service that is not ready yet.

    `depictiod serve` accepts requests during its start-up scan, and its /health/ready
    returns 503 until the scan is done.
    """
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerError(f"the server exited with {server.process.returncode}:\n{server.log.read_text()}")
        try:
            if httpx.get(f"{server.base_url}{path}", timeout=1).status_code != 503:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise ServerError(f"the server did not respond within {deadline_seconds:g} s:\n{server.log.read_text()}")


def sign_in(server: Server) -> str:
    """Sign in as the administrator; return the access token."""
    response = httpx.post(
        f"{server.base_url}{API}/auth/login", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}, timeout=30
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def stop(server: Server) -> float:
    """Read the server's peak memory in MiB, then stop it with SIGINT (killed after a deadline)."""
    peak = process_peak_rss_mib(server.process.pid)
    server.process.send_signal(signal.SIGINT)
    try:
        server.process.wait(timeout=STOP_DEADLINE_SECONDS)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=STOP_DEADLINE_SECONDS)
    return peak
