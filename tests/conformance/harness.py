"""A live depictiod and the real Depictio CLI talking to it, with failures that show both sides.

Every CLI call returns a `CLIResult` that contains its output and the lines that the service
logged while it ran. The checks at the bottom fail with all of it, so a failed step
shows which requests the CLI sent and how depictiod responded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

API = "/depictio/api/v1"
USER_EMAIL = "conformance@example.org"
USER_PASSWORD = "conformance-password"
START_DEADLINE_SECONDS = 60
STOP_DEADLINE_SECONDS = 30
COMMAND_DEADLINE_SECONDS = 300
OUTPUT_TAIL_LINES = 60
# The data folder that the example projects inside the Depictio wheel name, a path in
# Depictio's Docker image. The copies are rewritten to their own folder.
IMAGE_PROJECTS_ROOT = "/app/depictio/projects/init"
# A closed port on loopback: the CLI's S3 probe fails at once and reaches no real S3.
CLOSED_PORT = 9
# The uvicorn access log line: `127.0.0.1:PORT - "GET /path HTTP/1.1" 200`.
ACCESS_LINE = re.compile(r'uvicorn\.access: \S+ - "(?P<method>\S+) (?P<target>\S+) HTTP/[\d.]+" (?P<status>\d+)')


class DepictiodServer:
    """`depictiod serve` on a free loopback port over an empty catalog, with one administrator."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = root / "server.log"
        self.settings = root / "depictio.toml"
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        """Write settings that list no project, add the administrator and start the service."""
        self.settings.write_text(
            "projects = []\n"
            f"[server]\nport = {self.port}\n"
            f'[catalog]\npath = "{self.root / "catalog.duckdb"}"\n'
            f'[auth]\nkey_file = "{self.root / "auth.key"}"\nadmin_email = "{USER_EMAIL}"\n',
            encoding="utf-8",
        )
        added = subprocess.run(
            [sys.executable, "-m", "depictiod", "users", "add", USER_EMAIL, "--admin", "--config", str(self.settings)],
            input=f"{USER_PASSWORD}\n",
            capture_output=True,
            text=True,
            env=_without_depictio_variables(os.environ),
            timeout=START_DEADLINE_SECONDS,
        )
        if added.returncode != 0:
            raise RuntimeError(f"depictiod users add failed with exit code {added.returncode}:\n{added.stderr}")

        with self.log.open("w") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "depictiod", "serve", "--config", str(self.settings)],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=_without_depictio_variables(os.environ),
                text=True,
            )
        self._wait_until_healthy()

    def _wait_until_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"depictiod exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(
            f"depictiod did not answer /health within {START_DEADLINE_SECONDS} s:\n{self.log.read_text()}"
        )

    def stop(self) -> None:
        """Send SIGINT and wait; kill the process when it outlives the deadline."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=STOP_DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_DEADLINE_SECONDS)

    def sign_in(self) -> str:
        """Return an access token of the administrator from the password sign-in."""
        response = httpx.post(
            f"{self.base_url}{API}/auth/login", data={"username": USER_EMAIL, "password": USER_PASSWORD}, timeout=10
        )
        if response.status_code != 200:
            raise RuntimeError(f"sign-in failed with HTTP {response.status_code}: {response.text}")
        token: str = response.json()["access_token"]
        return token

    def write_cli_config(self, path: Path) -> dict[str, Any]:
        """Write the CLI config that depictiod builds for the administrator, with S3 on a closed port; return it."""
        response = httpx.post(
            f"{self.base_url}{API}/auth/generate_agent_config",
            headers={"Authorization": f"Bearer {self.sign_in()}"},
            timeout=10,
        )
        if response.status_code != 200:
            raise RuntimeError(f"generate_agent_config failed with HTTP {response.status_code}: {response.text}")
        config: dict[str, Any] = response.json()
        config["s3_storage"] = {
            "external_host": "127.0.0.1",
            "external_port": CLOSED_PORT,
            "external_protocol": "http",
            "root_user": "conformance",
            "root_password": "conformance-secret",
            "bucket": "depictio-bucket",
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return config

    def log_size(self) -> int:
        return self.log.stat().st_size

    def log_since(self, offset: int) -> str:
        with self.log.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", errors="replace")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _without_depictio_variables(environ: os._Environ[str] | dict[str, str]) -> dict[str, str]:
    """Copy the environment without DEPICTIO_* variables, which would change the settings of either program."""
    return {name: value for name, value in environ.items() if not name.startswith("DEPICTIO_")}


def cli_environment(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Return the environment of a CLI call: the caller's, minus DEPICTIO_*, with telemetry and S3 lookups off."""
    environment = _without_depictio_variables(os.environ)
    environment.update(
        {
            "HOME": str(home),
            "DO_NOT_TRACK": "1",
            "DEPICTIO_TELEMETRY_ENABLED": "false",
            "DEPICTIO_TELEMETRY_ENDPOINT": "http://127.0.0.1:9/",
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_COLOR": "1",
            "COLUMNS": "120",
            # botocore retries a refused connection with back-off: `config check` took 15 s
            # with the default attempts and 1 s with one.
            "AWS_MAX_ATTEMPTS": "1",
            # The checks read the ✓ and ✗ symbols, which an ASCII locale would replace.
            "PYTHONIOENCODING": "utf-8",
            # Requests to the service never go through a proxy that the caller's environment names.
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    environment.update(extra or {})
    return environment


def copy_example_projects(site_packages: Path, target: Path) -> None:
    """Copy the iris and penguins projects of the Depictio wheel to `target`, rewriting their data locations."""
    source = site_packages / "depictio" / "projects" / "init"
    for name in ("iris", "penguins"):
        shutil.copytree(source / name, target / name)
        project = target / name / "project.yaml"
        text = project.read_text(encoding="utf-8")
        if IMAGE_PROJECTS_ROOT not in text:
            raise RuntimeError(f"{project} no longer contains {IMAGE_PROJECTS_ROOT!r}; update the conformance test")
        project.write_text(text.replace(IMAGE_PROJECTS_ROOT, str(target)), encoding="utf-8")


@dataclass
class Request:
    method: str
    target: str
    status: int

    def __str__(self) -> str:
        return f"{self.method} {self.target.removeprefix(API)} -> {self.status}"


@dataclass(repr=False)
class CLIResult:
    """One CLI call: the command line, its exit code, its output and the service log written meanwhile."""

    command: list[str]
    returncode: int
    output: str
    server_log: str
    seconds: float
    server_log_path: Path

    def __repr__(self) -> str:
        return f"<CLIResult of {' '.join(self.command)!r}: exit code {self.returncode}>"

    @property
    def requests(self) -> list[Request]:
        return [
            Request(match["method"], match["target"], int(match["status"]))
            for match in ACCESS_LINE.finditer(self.server_log)
        ]

    def status_lines(self, symbol: str) -> list[str]:
        """Return the text after `symbol` of every output line that starts with it."""
        lines = []
        for line in self.output.splitlines():
            stripped = line.strip()
            if stripped.startswith(symbol):
                lines.append(stripped.removeprefix(symbol).strip())
        return lines

    def explain(self, failure: str) -> str:
        """Describe the failure with the command, its output and the requests that the service saw."""
        output_lines = self.output.splitlines()
        shown_output = "\n".join("    " + line for line in output_lines[-OUTPUT_TAIL_LINES:])
        if len(output_lines) > OUTPUT_TAIL_LINES:
            shown_output = f"    ... {len(output_lines) - OUTPUT_TAIL_LINES} earlier lines left out\n{shown_output}"
        requests = "\n".join(f"    {request}" for request in self.requests) or "    (none)"
        service_lines = [line for line in self.server_log.splitlines() if "uvicorn.access" not in line]
        shown_service = "\n".join("    " + line for line in service_lines[-OUTPUT_TAIL_LINES:]) or "    (none)"
        return (
            f"{failure}\n"
            f"  command: {' '.join(self.command)}\n"
            f"  exit code: {self.returncode} after {self.seconds:.1f} s\n"
            f"  output:\n{shown_output}\n"
            f"  requests that depictiod received:\n{requests}\n"
            f"  other lines of the depictiod log:\n{shown_service}\n"
            f"  the whole depictiod log: {self.server_log_path}"
        )


class DepictioCLI:
    """Runs the real CLI against one server, with one HOME and one CLI config for the whole plan."""

    def __init__(self, executable: Path, server: DepictiodServer, home: Path, workdir: Path) -> None:
        self.executable = executable
        self.server = server
        self.home = home
        self.workdir = workdir
        # CLI.yaml in the work folder, so that commands name it as `--server CLI.yaml`.
        config = server.write_cli_config(workdir / "CLI.yaml")
        self.user_id: str = config["user"]["id"]
        self.access_token: str = config["user"]["token"]["access_token"]

    def run(self, *arguments: str, extra_environment: dict[str, str] | None = None) -> CLIResult:
        """Run `depictio *arguments` in the work folder and return what it did."""
        command = [str(self.executable), *arguments]
        offset = self.server.log_size()
        started = time.monotonic()
        try:
            completed = subprocess.run(
                command,
                cwd=self.workdir,
                env=cli_environment(self.home, extra_environment),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=COMMAND_DEADLINE_SECONDS,
            )
            returncode, output = completed.returncode, completed.stdout
        except subprocess.TimeoutExpired as timeout:
            partial = timeout.stdout.decode() if isinstance(timeout.stdout, bytes) else (timeout.stdout or "")
            returncode, output = -1, f"{partial}\n[timed out after {COMMAND_DEADLINE_SECONDS} s and was killed]"
        displayed_command = ["depictio", *(self._shorten(argument) for argument in arguments)]
        seconds = time.monotonic() - started
        server_log = self.server.log_since(offset)
        return CLIResult(displayed_command, returncode, output, server_log, seconds, self.server.log)

    def _shorten(self, argument: str) -> str:
        return argument.replace(f"{self.workdir}/", "")


def expect_exit_code(result: CLIResult, expected: int) -> None:
    __tracebackhide__ = True
    assert result.returncode == expected, result.explain(f"expected exit code {expected}, got {result.returncode}")


def expect_status_line(result: CLIResult, symbol: str, pattern: str) -> None:
    """Check that a line starting with `symbol` matches the regular expression `pattern`."""
    __tracebackhide__ = True
    lines = result.status_lines(symbol)
    matching = [line for line in lines if re.search(pattern, line)]
    assert matching, result.explain(f"expected a line '{symbol} ...' matching {pattern!r}; the {symbol} lines: {lines}")


def expect_output(result: CLIResult, pattern: str, count: int | None = None) -> None:
    """Check that the output matches the multi-line regular expression `pattern` (exactly `count` times when given)."""
    __tracebackhide__ = True
    found = len(re.findall(pattern, result.output, flags=re.MULTILINE))
    if count is None:
        assert found > 0, result.explain(f"expected output matching {pattern!r}")
    else:
        assert found == count, result.explain(f"expected {count} output matches of {pattern!r}, found {found}")


def expect_request_count(result: CLIResult, method: str, path: str, status: int, count: int) -> None:
    """Check that depictiod responded `count` times to `method path` (under the API prefix, query left out) with `status`."""
    __tracebackhide__ = True
    found = [
        request
        for request in result.requests
        if request.method == method and request.target.split("?")[0] == API + path and request.status == status
    ]
    assert len(found) == count, result.explain(
        f"expected {count} requests {method} {path} answered with {status}, found {len(found)}"
    )


def json_after(result: CLIResult, heading: str) -> Any:
    """Parse the JSON document that the CLI printed after the line containing `heading`."""
    __tracebackhide__ = True
    output = result.output
    position = output.find(heading)
    assert position >= 0, result.explain(f"expected a line containing {heading!r}")
    text = output[output.index("\n", position) + 1 :]
    try:
        document, _ = json.JSONDecoder().raw_decode(text.lstrip())
    except json.JSONDecodeError as error:
        raise AssertionError(result.explain(f"the JSON after {heading!r} does not parse: {error}")) from None
    return document
