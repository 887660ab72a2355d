"""Fuzz every operation of the OpenAPI document on a live `depictiod serve`, as an administrator and as a viewer.

schemathesis reads the document that the server publishes at /docs/openapi.json and
generates requests from it: valid ones and, in its negative mode, ones that break the
document's schemas. Every response must be below 500, its status code must be listed
for its operation, and its media type, headers and body must match what the document
specifies for that status.

The catalog holds the bundled examples: penguins is private with the viewer in its
`viewers`, iris is public. Every second case of an operation names one of the two
projects (its id, name, workflow or data collection, in the path, the query and the
body), so that filters, limits, uploads and permission checks reach real objects
instead of stopping at 404. Operations that would end the test's own session or stream
get their own handling, described in `_prepare_session_case`; none is left out.

`make fuzz` runs more examples. Environment variables:
FUZZ_EXAMPLES  examples per operation and caller (default 5);
FUZZ_SEED      the seed of the generated cases (default fixed, so that CI runs are repeatable);
FUZZ_ONLY      a regular expression: fuzz only the operations whose "METHOD /path" it finds,
               to reproduce a finding quickly.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.examples import copy_bundled_examples, write_settings

API = "/depictio/api/v1"
ADMIN = "admin@example.org"
VIEWER = "viewer@example.org"
PASSWORD = "fuzz-test-password"
START_DEADLINE_SECONDS = 60
STOP_DEADLINE_SECONDS = 30
REQUEST_TIMEOUT_SECONDS = 30

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5"))
SEED = int(os.environ.get("FUZZ_SEED", "20260801"))
ONLY = re.compile(os.environ.get("FUZZ_ONLY", ""))

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

# Ids of the bundled examples, and a column of their tables, that half of the cases get in
# place of generated values.
KNOWN_IDS = {
    "project_id": ["6a0001000000000000000001", "6a0002000000000000000001"],
    "workflow_id": ["6a0001000000000000000002", "6a0002000000000000000002"],
    "data_collection_id": ["6a0001000000000000000003", "6a0002000000000000000003"],
    "project_name": ["Palmer penguins (bundled example)", "Iris (bundled example)"],
    # Every aggregated table has this column.
    "column": ["depictio_run_id", "depictio_run_id"],
}


@dataclass
class FuzzServer:
    process: subprocess.Popen[str]
    base_url: str
    log: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _make_penguins_private(projects: list[Path]) -> None:
    """Make the bundled penguins project private, with the viewer as its only member."""
    penguins = projects[0]
    text = penguins.read_text(encoding="utf-8")
    assert "\nis_public: true\n" in text, f"{penguins} no longer sets is_public; update the fuzz test"
    penguins.write_text(
        text.replace("\nis_public: true\n", f"\nis_public: false\npermissions:\n  viewers: [{VIEWER}]\n"),
        encoding="utf-8",
    )


def _add_user(settings_file: Path, email: str, *options: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "depictiod", "users", "--config", str(settings_file), "add", email, *options],
        input=f"{PASSWORD}\n",
        capture_output=True,
        text=True,
        timeout=START_DEADLINE_SECONDS,
    )
    assert result.returncode == 0, result.stderr


def _wait_until_healthy(server: FuzzServer) -> None:
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"depictiod exited with {server.process.returncode}:\n{server.log.read_text()}")
        try:
            if httpx.get(f"{server.base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"depictiod did not answer /health within {START_DEADLINE_SECONDS} s:\n{server.log.read_text()}")


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzServer]:
    root = tmp_path_factory.mktemp("fuzz")
    projects = copy_bundled_examples(root)
    _make_penguins_private(projects)
    port = _free_port()
    settings_file = write_settings(root, projects, port=port)
    _add_user(settings_file, ADMIN, "--admin")
    _add_user(settings_file, VIEWER)

    environment = {
        **os.environ,
        # Registration is on so that POST /auth/register is fuzzed beyond its 403.
        "DEPICTIO_AUTH_ALLOW_REGISTRATION": "true",
        # Generated passwords fail sign-ins and password changes, and the default limits
        # would then lock the callers out of the sign-ins that this test makes.
        "DEPICTIO_AUTH_LOGIN_FAILURES_PER_ACCOUNT": "1000000",
        "DEPICTIO_AUTH_LOGIN_FAILURES_PER_ADDRESS": "1000000",
    }
    log = root / "server.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "depictiod", "serve", "--config", str(settings_file)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
            text=True,
        )
    server = FuzzServer(process, f"http://127.0.0.1:{port}", log)
    try:
        _wait_until_healthy(server)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_DEADLINE_SECONDS)


@dataclass
class Session:
    """The tokens of one sign-in."""

    access_token: str
    refresh_token: str
    token_id: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def _sign_in(server: FuzzServer, email: str) -> Session:
    response = httpx.post(
        f"{server.base_url}{API}/auth/login", data={"username": email, "password": PASSWORD}, timeout=30
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return Session(body["access_token"], body["refresh_token"], body["_id"])


@dataclass
class Caller:
    email: str
    session: Session
    server: FuzzServer
    # Accounts that this caller's cases registered to delete or change.
    registered: int = 0

    def fresh_session(self) -> Session:
        return _sign_in(self.server, self.email)

    def register_throwaway_user(self) -> str:
        """Register a new account over the API and return its user id."""
        self.registered += 1
        local_part = self.email.split("@")[0]
        response = httpx.post(
            f"{self.server.base_url}{API}/auth/register",
            json={"email": f"throwaway-{local_part}-{self.registered}@example.org", "password": PASSWORD},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return str(response.json()["user"]["id"])


# The viewer goes first: the administrator's cases may change the projects' visibility and permissions.
@pytest.fixture(scope="module", params=[VIEWER, ADMIN], ids=["viewer", "admin"])
def caller(request: pytest.FixtureRequest, fuzz_server: FuzzServer) -> Caller:
    return Caller(request.param, _sign_in(fuzz_server, request.param), fuzz_server)


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_server: FuzzServer) -> Any:
    config = schemathesis.Config.from_dict({"seed": SEED, "request-timeout": REQUEST_TIMEOUT_SECONDS})
    return schemathesis.openapi.from_url(f"{fuzz_server.base_url}/docs/openapi.json", config=config)


@dataclass
class Findings:
    examples: int = 0
    failures: list[str] = field(default_factory=list)
    # (operation, status code) -> responses, for the summary that `pytest -s` prints.
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    # Operation -> seconds spent on its cases.
    seconds: Counter[str] = field(default_factory=Counter)


def test_fuzz_every_operation(fuzz_schema: Any, caller: Caller, fuzz_server: FuzzServer) -> None:
    findings = Findings()
    operations = 0
    for result in fuzz_schema.get_all_operations():
        operation = result.ok()
        if not ONLY.search(operation.label):
            continue
        operations += 1
        started = time.monotonic()
        _fuzz_operation(operation, caller, findings)
        findings.seconds[operation.label] += time.monotonic() - started
    _print_summary(findings, operations, caller.email)

    assert fuzz_server.process.poll() is None, f"depictiod exited:\n{fuzz_server.log.read_text()}"
    # A document that lost its paths would pass with nothing fuzzed.
    assert operations >= (60 if not ONLY.pattern else 1)
    assert not findings.failures, "\n\n".join(findings.failures)


def _print_summary(findings: Findings, operations: int, email: str) -> None:
    """Print the statuses and time of every operation; `pytest -s` shows them."""
    print(f"\nfuzzed {operations} operations with {findings.examples} examples as {email}")
    for label in sorted({label for label, _ in findings.statuses}):
        counts = sorted((status, count) for (name, status), count in findings.statuses.items() if name == label)
        listed = ", ".join(f"{status} x{count}" for status, count in counts)
        print(f"  {label}: {listed} in {findings.seconds[label]:.1f} s")


def _fuzz_operation(operation: Any, caller: Caller, findings: Findings) -> None:
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    # `run` records failures instead of raising them, so Hypothesis has nothing to shrink or
    # replay. Large generated bodies are slow to build, which its health checks would fail.
    @hypothesis.seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def run(case: Any) -> None:
        findings.examples += 1
        # Every second case names the bundled projects, alternating between the two.
        known = findings.examples % 2 == 0
        if known:
            _use_known_ids(case, findings.examples // 2 % 2)
        headers = _prepare_session_case(case, caller, known)
        try:
            response = case.call(headers=headers, timeout=REQUEST_TIMEOUT_SECONDS)
        except requests.RequestException as error:
            findings.failures.append(f"{operation.label} as {caller.email}: the request failed: {error!r}")
            return
        findings.statuses[(operation.label, response.status_code)] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (AssertionError, FailureGroup) as error:
            findings.failures.append(f"{operation.label} as {caller.email}: {error}")

    run()


def _prepare_session_case(case: Any, caller: Caller, known: bool) -> dict[str, str]:
    """Adapt the cases of operations that would end the stream or session of the test; return the request headers.

    No operation is left out. These get their own handling:
    - GET /events streams until the service stops, unless `max_seconds` ends it: a case
      without it, or with more than one second, gets 0, which sends the missed events and
      ends. Values that are not numbers stay, so that their 400 is checked. The known half
      resumes after id 0, so that the events of the history are sent and checked.
    - DELETE /auth/me/tokens/{token_id} and POST /auth/edit_password may revoke the token
      that they carry (the second revokes every other token of the user): each case signs
      in anew and carries that token, which the known half of the token deletions delete.
    - POST /auth/refresh revokes every token of a sign-in whose refresh token comes twice:
      the known half sends the refresh token of a fresh sign-in.
    - DELETE /auth/delete/{user_id} and POST /auth/turn_sysadmin/{user_id}/{is_admin} would
      delete or demote the callers: the known half names an account registered for the case.
    - POST /utils/backup writes into any new folder that the service may create: an absolute
      `to` moves under the test's folder, and the known half names a new folder there.
    """
    path = case.operation.path
    if path == f"{API}/events":
        seconds = (case.query or {}).get("max_seconds")
        if seconds is None or (isinstance(seconds, int | float) and seconds > 1):
            case.query = {**(case.query or {}), "max_seconds": 0}
        if known:
            case.query["last_event_id"] = "0"
            # The header takes precedence over the query parameter.
            case.headers = {name: value for name, value in (case.headers or {}).items() if name != "Last-Event-ID"}
        return caller.session.headers()

    if path in (f"{API}/auth/me/tokens/{{token_id}}", f"{API}/auth/edit_password"):
        session = caller.fresh_session()
        if known and case.path_parameters and "token_id" in case.path_parameters:
            case.path_parameters["token_id"] = session.token_id
        return session.headers()

    if path == f"{API}/auth/refresh" and known and isinstance(case.body, dict):
        case.body["refresh_token"] = caller.fresh_session().refresh_token
        return caller.session.headers()

    if path == f"{API}/utils/backup" and isinstance(case.body, dict) and isinstance(case.body.get("to"), str):
        # Beside the test's folder: the catalog's own folder is no place for a backup (400).
        root = caller.server.log.parent
        backups = root.parent / f"{root.name}-backups"
        backups.mkdir(exist_ok=True)
        if known:
            case.body["to"] = str(backups / f"case-{caller.email.split('@')[0]}-{len(list(backups.iterdir()))}")
        elif case.body["to"].startswith("/"):
            case.body["to"] = f"{backups}/generated{case.body['to']}"
        return caller.session.headers()

    if path in (f"{API}/auth/delete/{{user_id}}", f"{API}/auth/turn_sysadmin/{{user_id}}/{{is_admin}}") and known:
        case.path_parameters["user_id"] = caller.register_throwaway_user()
    return caller.session.headers()


def _use_known_ids(case: Any, index: int) -> None:
    """Put a known id in every path parameter, query parameter and body field named like an id of KNOWN_IDS."""
    for name, values in KNOWN_IDS.items():
        if case.path_parameters and name in case.path_parameters:
            case.path_parameters[name] = values[index]
        if case.query and name in case.query:
            case.query[name] = values[index]
    _replace_known_fields(case.body, index)


def _replace_known_fields(value: Any, index: int) -> None:
    if isinstance(value, list):
        for item in value:
            _replace_known_fields(item, index)
        return
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        if key in KNOWN_IDS:
            value[key] = KNOWN_IDS[key][index]
        else:
            _replace_known_fields(item, index)
