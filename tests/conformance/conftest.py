"""Fixtures of the conformance test: the real Depictio CLI, a live depictiod and the example projects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.cli_install import CLI_VERSION, install_cli
from tests.conformance.harness import DepictioCLI, DepictiodServer, copy_example_projects

REPOSITORY = Path(__file__).resolve().parents[2]
CACHE_ROOT = REPOSITORY / ".cache"

_install_seconds: list[float] = []


@pytest.fixture(scope="session")
def depictio_executable() -> Path:
    """The `depictio` command of the cached CLI venv, installed on first use."""
    executable, seconds = install_cli(CACHE_ROOT)
    _install_seconds.append(seconds)
    return executable


@pytest.fixture(scope="module")
def cli(depictio_executable: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DepictioCLI]:
    """The CLI, configured for a fresh depictiod, with copies of the example projects in its work folder."""
    root = tmp_path_factory.mktemp("conformance")
    (root / "service").mkdir()
    (root / "home").mkdir()
    (root / "work").mkdir()
    site_packages = next(depictio_executable.parent.parent.glob("lib/python*/site-packages"))
    copy_example_projects(site_packages, root / "work")

    server = DepictiodServer(root / "service")
    try:
        server.start()
        yield DepictioCLI(depictio_executable, server, root / "home", root / "work")
    finally:
        server.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _install_seconds:
        return
    seconds = _install_seconds[0]
    state = f"installed in {seconds:.0f} s" if seconds else "reused from the cache"
    terminalreporter.write_line(f"Depictio CLI {CLI_VERSION} for the conformance test: {state} ({CACHE_ROOT})")
