"""A throwaway PostgreSQL cluster for tests: initdb into a temporary folder, serve on 127.0.0.1, remove at the end.

The binaries come from Debian's `postgresql` package (/usr/lib/postgresql/<version>/bin; `make
postgres` installs it) or from PATH. PostgreSQL refuses to run as root, so under root every
server command runs as the unprivileged user `postgres`, which the package creates, through
`runuser`. Clients connect over TCP on loopback with a password (scram-sha-256). The server's
unix socket is in the temporary folder, so the system's /var/run/postgresql stays untouched.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Debian installs each major version's server binaries here, off PATH.
DEBIAN_BINARIES = Path("/usr/lib/postgresql")
SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres", "psql")
# The account that runs the server when the tests run as root.
SERVER_ACCOUNT = "postgres"
# The superuser that the tests connect as, over TCP with a password.
TEST_USER = "depictiod"
REQUIRE_POSTGRES_VARIABLE = "DEPICTIOD_REQUIRE_POSTGRES"
# Seconds that pg_ctl waits for the server to start or stop.
SERVER_WAIT_SECONDS = 60
# The data is removed after the run, so durability is turned off to make commits cheaper.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


class PostgresUnavailableError(Exception):
    """Raised when the PostgreSQL binaries, or an account to run them as, are missing."""


@dataclass(frozen=True)
class PostgresCluster:
    """A running cluster: where it listens, and how to connect to it."""

    host: str
    port: int
    user: str
    password: str
    folder: Path
    binaries: Path
    run_as: str | None

    def dsn(self, dbname: str = "postgres") -> str:
        """Return a libpq connection string (key=value pairs) for database `dbname` over TCP."""
        return f"dbname={dbname} host={self.host} port={self.port} user={self.user} password={self.password}"

    def create_database(self, prefix: str = "test") -> str:
        """Create an empty database with a new name that starts with `prefix`, and return the name."""
        name = f"{prefix}_{secrets.token_hex(6)}"
        self.psql(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        """Drop database `name`, ending the sessions that still use it."""
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run `sql` with psql over TCP and return its unaligned output; raise CalledProcessError on failure."""
        completed = subprocess.run(
            [str(self.binaries / "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", self.dsn(dbname), "-c", sql],
            capture_output=True,
            text=True,
            check=True,
            timeout=SERVER_WAIT_SECONDS,
        )
        return completed.stdout


def find_binaries() -> Path:
    """Return the folder with initdb, pg_ctl, postgres and psql: the newest Debian version, else PATH.

    Raise PostgresUnavailableError when none has them all.
    """
    candidates = sorted(
        (folder for folder in DEBIAN_BINARIES.glob("*/bin") if folder.parent.name.isdigit()),
        key=lambda folder: int(folder.parent.name),
        reverse=True,
    )
    on_path = shutil.which("pg_ctl")
    if on_path is not None:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if all((folder / program).is_file() for program in SERVER_PROGRAMS):
            return folder
    raise PostgresUnavailableError(
        f"PostgreSQL's {', '.join(SERVER_PROGRAMS)} are missing (looked in {DEBIAN_BINARIES}/<version>/bin and PATH); "
        "install the Debian package postgresql, for example with `make postgres` as root"
    )


def server_account() -> str | None:
    """Return the account to run the server as: None for the current user, `postgres` under root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_ACCOUNT)
    except KeyError:
        raise PostgresUnavailableError(
            f"the tests run as root, which PostgreSQL refuses, and the account {SERVER_ACCOUNT!r} to run it as is "
            "missing; install the Debian package postgresql, which creates it, or run the tests as another user"
        ) from None
    if shutil.which("runuser") is None:
        raise PostgresUnavailableError("the tests run as root, and runuser (util-linux) is missing to start PostgreSQL")
    return SERVER_ACCOUNT


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(command: list[str], run_as: str | None) -> subprocess.CompletedProcess[str]:
    if run_as is not None:
        command = ["runuser", "-u", run_as, "--", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=SERVER_WAIT_SECONDS, check=False)


def _checked(command: list[str], run_as: str | None, step: str, log: Path | None = None) -> None:
    completed = _run(command, run_as)
    if completed.returncode == 0:
        return
    details = (completed.stderr or completed.stdout).strip()
    if log is not None and log.is_file():
        details += "\nserver log:\n" + log.read_text(errors="replace")[-4000:]
    raise RuntimeError(f"{step} failed with exit status {completed.returncode}: {details}")


@contextlib.contextmanager
def running_cluster() -> Iterator[PostgresCluster]:
    """Start a new cluster and stop and remove it when the block ends, also when it raises.

    Raise PostgresUnavailableError when the binaries or the server account are missing.
    """
    binaries = find_binaries()
    run_as = server_account()
    folder = Path(tempfile.mkdtemp(prefix="depictiod-postgres-"))
    try:
        if run_as is not None:
            account = pwd.getpwnam(run_as)
            os.chown(folder, account.pw_uid, account.pw_gid)
        data = folder / "data"
        log = folder / "server.log"
        password = secrets.token_urlsafe(16)
        password_file = folder / "password"
        password_file.write_text(password + "\n")
        if run_as is not None:
            os.chown(password_file, account.pw_uid, account.pw_gid)
        _checked(
            [
                str(binaries / "initdb"),
                "--pgdata",
                str(data),
                "--username",
                TEST_USER,
                "--pwfile",
                str(password_file),
                "--auth-host",
                "scram-sha-256",
                "--auth-local",
                "trust",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            run_as,
            "initdb",
        )
        password_file.unlink()
        yield from _serve(binaries, run_as, folder, data, log, password)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _serve(
    binaries: Path, run_as: str | None, folder: Path, data: Path, log: Path, password: str
) -> Iterator[PostgresCluster]:
    """Start the server of `data` on a free loopback port, yield the cluster, then stop it."""
    # Another process may take the free port between the probe and the start, so try a few.
    for attempt in range(3):
        port = _free_port()
        options = " ".join(f"-c {name}={value}" for name, value in {**SERVER_SETTINGS, "port": port}.items())
        options += f" -k {folder}"
        start = [str(binaries / "pg_ctl"), "--pgdata", str(data), "--log", str(log), "--options", options]
        start += ["--wait", "--timeout", str(SERVER_WAIT_SECONDS), "start"]
        completed = _run(start, run_as)
        if completed.returncode == 0:
            break
        log_text = log.read_text(errors="replace") if log.is_file() else ""
        if attempt == 2 or not re.search(r"could not bind|Address already in use", log_text):
            raise RuntimeError(
                f"pg_ctl start failed with exit status {completed.returncode}: "
                f"{(completed.stderr or completed.stdout).strip()}\nserver log:\n{log_text[-4000:]}"
            )
    try:
        yield PostgresCluster(
            host="127.0.0.1",
            port=port,
            user=TEST_USER,
            password=password,
            folder=folder,
            binaries=binaries,
            run_as=run_as,
        )
    finally:
        stop = [str(binaries / "pg_ctl"), "--pgdata", str(data), "--wait", "--timeout", str(SERVER_WAIT_SECONDS)]
        if _run([*stop, "--mode", "fast", "stop"], run_as).returncode != 0:
            _run([*stop, "--mode", "immediate", "stop"], run_as)
