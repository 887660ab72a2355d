"""`depictiod check` and `depictiod scan` as a user runs them."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
COMMAND_DEADLINE_SECONDS = 120
# Carriage return and escape: what a progress bar or a colour code writes.
CONTROL_CHARACTERS = ("\r", "\x1b")


def _run(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "depictiod", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=COMMAND_DEADLINE_SECONDS,
    )


def _run_raw(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """Run depictiod with pipes as its output and return bytes, because text mode turns `\r` into `\n`."""
    return subprocess.run(
        [sys.executable, "-m", "depictiod", *arguments], cwd=cwd, capture_output=True, timeout=COMMAND_DEADLINE_SECONDS
    )


def _run_on_terminal(*arguments: str, cwd: Path, columns: int) -> tuple[str, int]:
    """Run depictiod on a pseudo-terminal and return its output and exit code.

    The terminal is `columns` wide. With 0, it reports no size, as a pseudo-terminal whose size was never set.
    """
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 30 if columns else 0, columns, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "depictiod", *arguments], cwd=cwd, stdin=terminal, stdout=terminal, stderr=terminal
    )
    os.close(terminal)
    output = bytearray()
    deadline = time.monotonic() + COMMAND_DEADLINE_SECONDS
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.2)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break  # Linux raises EIO once the process and its children closed the terminal.
            if not chunk:
                break
            output += chunk
        return_code = process.wait(timeout=max(deadline - time.monotonic(), 1.0))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
    return output.decode(errors="replace"), return_code


def _bundled_example(target: Path) -> Path:
    """Copy the repository's examples and depictio.toml into `target`; return the settings path."""
    shutil.copytree(REPOSITORY / "examples", target / "examples")
    shutil.copy(REPOSITORY / "depictio.toml", target / "depictio.toml")
    return target / "depictio.toml"


def test_check_accepts_bundled_example(tmp_path: Path) -> None:
    _bundled_example(tmp_path)
    result = _run("check", "--config", "depictio.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "valid; 2 projects" in result.stdout


def test_check_reports_every_problem_without_traceback(tmp_path: Path) -> None:
    _bundled_example(tmp_path)
    project = tmp_path / "examples" / "penguins" / "project.yaml"
    text = (
        project.read_text()
        .replace("structure: sequencing-runs", "structure: runs")
        .replace("mode: recursive", "mode: walk")
    )
    project.write_text(text)

    result = _run("check", "--config", "depictio.toml", cwd=tmp_path)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "workflows[0].data_location.structure" in result.stderr
    assert "valid choices: flat, sequencing-runs" in result.stderr
    assert "workflows[0].data_collections[0].config.scan.mode" in result.stderr
    assert "valid choices: recursive, single" in result.stderr


def test_check_reports_override_of_unknown_workflow(tmp_path: Path) -> None:
    settings = _bundled_example(tmp_path)
    with settings.open("a", encoding="utf-8") as handle:
        handle.write(
            '\n[[ingest.workflow]]\nproject = "Palmer penguins (bundled example)"\nworkflow = "penguin_species"\n'
            "settle_seconds = 10\n"
        )

    result = _run("check", "--config", "depictio.toml", cwd=tmp_path)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "depictio.toml: ingest.workflow[0].workflow" in result.stderr
    assert "has no workflow named 'penguin_species'" in result.stderr
    assert "'penguin_species_analysis'" in result.stderr


def test_check_accepts_override_of_known_workflow(tmp_path: Path) -> None:
    settings = _bundled_example(tmp_path)
    with settings.open("a", encoding="utf-8") as handle:
        handle.write(
            '\n[[ingest.workflow]]\nproject = "Iris (bundled example)"\nworkflow = "iris_workflow"\n'
            "reconcile_seconds = 60\n"
        )

    result = _run("check", "--config", "depictio.toml", cwd=tmp_path)

    assert result.returncode == 0, result.stderr


def test_check_reports_missing_settings_file(tmp_path: Path) -> None:
    result = _run("check", "--config", "absent.toml", cwd=tmp_path)
    assert result.returncode == 1
    assert "absent.toml" in result.stderr
    assert "Traceback" not in result.stderr


def test_scan_prints_summary_per_collection(tmp_path: Path) -> None:
    _bundled_example(tmp_path)
    result = _run("scan", "--config", "depictio.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "physical_features" in result.stdout
    assert "demographic_data" in result.stdout
    assert "iris_table" in result.stdout


def test_scan_creates_catalog_for_its_user_only(tmp_path: Path) -> None:
    _bundled_example(tmp_path)

    result = _run("scan", "--config", "depictio.toml", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    catalog = tmp_path / "var" / "depictio.duckdb"
    # The catalog contains password hashes, so no other user may read it.
    assert catalog.stat().st_mode & 0o077 == 0
    assert (tmp_path / "var").stat().st_mode & 0o077 == 0


def test_scan_without_terminal_prints_plain_text(tmp_path: Path) -> None:
    _bundled_example(tmp_path)

    result = _run_raw("scan", "--config", "depictio.toml", cwd=tmp_path)

    stdout, stderr = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, stderr
    assert "iris_table" in stdout
    assert "%|" not in stderr
    for character in CONTROL_CHARACTERS:
        assert character not in stdout
        assert character not in stderr


@pytest.mark.parametrize("columns", [100, 0])
def test_scan_on_terminal_draws_progress_bar(tmp_path: Path, columns: int) -> None:
    _bundled_example(tmp_path)

    output, return_code = _run_on_terminal("scan", "--config", "depictio.toml", cwd=tmp_path, columns=columns)

    assert return_code == 0, output
    assert "scanning: 100%|" in output
    assert "| 5/5 [" in output
    assert "\r" in output
    assert "iris_table" in output


def test_scan_exits_non_zero_when_a_file_fails(tmp_path: Path) -> None:
    _bundled_example(tmp_path)
    broken = tmp_path / "examples" / "penguins" / "data" / "run_2_chinstrap" / "physical_features.csv"
    broken.write_text("individual_id,bill_length_mm\nx,1\ny,2,3,4\nz,5\n")

    result = _run("scan", "--config", "depictio.toml", cwd=tmp_path)

    assert result.returncode == 1
    assert "physical_features" in result.stdout
    assert "line 3 has 4 fields but the header has 2" in result.stderr


def test_scan_warns_about_collection_matching_nothing(tmp_path: Path) -> None:
    _bundled_example(tmp_path)
    project = tmp_path / "examples" / "penguins" / "project.yaml"
    project.write_text(project.read_text().replace("physical_features\\\\.csv$", "nothing_matches\\\\.csv$"))

    result = _run("scan", "--config", "depictio.toml", cwd=tmp_path)

    assert "warning:" in result.stdout
    assert "matched no file" in result.stdout
    assert "nothing_matches" in result.stdout


def test_serve_reports_unreadable_key_file(tmp_path: Path) -> None:
    settings = _bundled_example(tmp_path)
    (tmp_path / "broken.key").write_text("not a key\n")
    settings.write_text(settings.read_text().replace('key_file = "var/depictio-auth.key"', 'key_file = "broken.key"'))

    result = _run("serve", "--config", "depictio.toml", "--port", "0", cwd=tmp_path)

    assert result.returncode == 1
    assert "cannot read the key file" in result.stderr
    assert "Traceback" not in result.stderr


def test_scan_reports_catalog_path_under_a_file(tmp_path: Path) -> None:
    settings = _bundled_example(tmp_path)
    (tmp_path / "plain-file").write_text("")
    settings.write_text(settings.read_text().replace('path = "var/depictio.duckdb"', 'path = "plain-file/c.duckdb"'))

    result = _run("scan", "--config", "depictio.toml", cwd=tmp_path)

    assert result.returncode == 1
    assert "cannot create the folder of the catalog" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_location_fails_check_but_not_scan(tmp_path: Path) -> None:
    _bundled_example(tmp_path)
    project = tmp_path / "examples" / "penguins" / "project.yaml"
    text = project.read_text()
    project.write_text(text.replace("        - data\n", "        - data\n        - unmounted_share\n", 1))

    checked = _run("check", "--config", "depictio.toml", cwd=tmp_path)
    scanned = _run("scan", "--config", "depictio.toml", cwd=tmp_path)

    assert checked.returncode == 1
    assert "unmounted_share' does not exist" in checked.stderr
    # An unmounted share must not keep the other locations and projects from being served.
    assert scanned.returncode == 0, scanned.stderr
    assert "unmounted_share' does not exist" in scanned.stderr
    assert "physical_features" in scanned.stdout
