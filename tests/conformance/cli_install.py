"""Install the real Depictio CLI into a cached virtual environment of its own.

The CLI goes in beside the project, never into the project's venv: its wheel also
contains Depictio's whole server, and it pins versions that depictiod need not share.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CLI_VERSION = "1.19.2"
REQUIREMENTS = Path(__file__).with_name("requirements.txt")
INSTALL_DEADLINE_SECONDS = 1200
STAMP_NAME = ".installed"


class CLIInstallError(Exception):
    """Raised when pip cannot create the CLI's virtual environment."""


def cli_venv(cache_root: Path) -> Path:
    return cache_root / f"depictio-cli-{CLI_VERSION}"


def install_cli(cache_root: Path) -> tuple[Path, float]:
    """Return the `depictio` executable and the seconds spent installing it (0 when the cache was complete).

    The stamp file contains the version and the requirements that were installed, so a
    changed requirements file starts a fresh install. A lock file makes a second
    pytest process wait for the first one's install instead of running its own.
    """
    venv = cli_venv(cache_root)
    stamp = venv / STAMP_NAME
    expected = _stamp_text()
    cache_root.mkdir(parents=True, exist_ok=True)

    with _install_lock(cache_root / f"depictio-cli-{CLI_VERSION}.lock"):
        if stamp.is_file() and stamp.read_text(encoding="utf-8") == expected:
            return venv / "bin" / "depictio", 0.0

        started = time.monotonic()
        # A venv without a matching stamp is a failed or outdated install: start again.
        shutil.rmtree(venv, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(venv)])
        python = str(venv / "bin" / "python")
        # The wheel's own dependency list pulls in all of Depictio's server packages, so the
        # requirements file lists what the CLI needs instead.
        _run([python, "-m", "pip", "install", "--quiet", "--no-deps", f"depictio=={CLI_VERSION}"])
        _run([python, "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)])
        stamp.write_text(expected, encoding="utf-8")
        return venv / "bin" / "depictio", time.monotonic() - started


def _stamp_text() -> str:
    """Return the requirements without comments, so that editing a comment does not start a new install."""
    lines = REQUIREMENTS.read_text(encoding="utf-8").splitlines()
    requirements = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return "\n".join([f"depictio=={CLI_VERSION}", *requirements]) + "\n"


@contextmanager
def _install_lock(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(command: list[str]) -> None:
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_DEADLINE_SECONDS)
    except subprocess.TimeoutExpired:
        raise CLIInstallError(f"{' '.join(command)} did not finish within {INSTALL_DEADLINE_SECONDS} s") from None
    if completed.returncode != 0:
        raise CLIInstallError(
            f"{' '.join(command)} failed with exit code {completed.returncode}:\n{completed.stdout}{completed.stderr}"
        )
