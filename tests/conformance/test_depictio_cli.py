"""The real Depictio CLI 1.19.2, unchanged, registers projects, runs, files and dashboards with depictiod.

The 23 step tests run in order as one session, on copies of the penguins and iris
projects that ship in the Depictio wheel. Each step builds on the state that the ones
before it left, so a failed step usually makes some later ones fail too. No S3
runs: the CLI's S3 settings point at a closed port, so the steps that reach S3 must
fail there, after everything they ask of depictiod went through.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.conformance.cli_install import CLI_VERSION
from tests.conformance.harness import (
    API,
    USER_EMAIL,
    CLIResult,
    DepictioCLI,
    expect_exit_code,
    expect_output,
    expect_request_count,
    expect_status_line,
    json_after,
)

PENGUINS_NAME = "Palmer Penguins Species Comparison"
PENGUINS_PROJECT_ID = "646b0f3c1e4a2d7f8e5b8c9d"
PHYSICAL_FEATURES_ID = "646b0f3c1e4a2d7f8e5b8c9f"
PHYSICAL_FEATURES_ROWS = 342
IRIS_PROJECT_ID = "646b0f3c1e4a2d7f8e5b8c9a"
IRIS_DASHBOARD_TITLE = "Iris Dataset Analysis"
# The penguins data has three run folders; step 15 hides this one and step 16 restores it.
MOVED_RUN = "run_3_gentoo"
AGGREGATION_DEADLINE_SECONDS = 30
SERVER = ("--server", "CLI.yaml")


def _penguins(cli: DepictioCLI) -> str:
    return str(cli.workdir / "penguins" / "project.yaml")


def _iris(cli: DepictioCLI) -> str:
    return str(cli.workdir / "iris" / "project.yaml")


def _ingest_iris(cli: DepictioCLI, *extra: str) -> CLIResult:
    return cli.run(
        "ingest",
        *SERVER,
        "--project-config-path",
        _iris(cli),
        "--skip",
        "s3-check,process,join",
        "--dashboard",
        str(cli.workdir / "iris" / "dashboards" / "overview.yaml"),
        *extra,
    )


def test_step_01_version(cli: DepictioCLI) -> None:
    result = cli.run("--version")

    expect_exit_code(result, 0)
    expect_output(result, rf"Depictio CLI version: {re.escape(CLI_VERSION)}\b")


def test_step_02_config_show(cli: DepictioCLI) -> None:
    result = cli.run("config", "show", *SERVER)

    expect_exit_code(result, 0)
    expect_status_line(result, "•", rf"^Server: {re.escape(cli.server.base_url)}\b")
    expect_output(result, r'"access_token": "\*{10}"')
    assert cli.access_token not in result.output, result.explain("the output contains the access token")
    assert result.requests == [], result.explain("config show sent requests; it must only read CLI.yaml")


def test_step_03_config_check_without_s3(cli: DepictioCLI) -> None:
    result = cli.run("config", "check", *SERVER)

    expect_exit_code(result, 1)
    expect_status_line(result, "✓", r"^Depictio CLI configuration is model-compliant\.")
    expect_status_line(result, "✓", rf"^Server accessible - User: {USER_EMAIL}, Admin privileges: Yes")
    expect_status_line(result, "✗", r"^Unable to check S3 storage")


def test_step_04_config_check_with_wrong_token(cli: DepictioCLI) -> None:
    result = cli.run("config", "check", *SERVER, extra_environment={"DEPICTIO_CLI_TOKEN": "a.b.c"})

    expect_exit_code(result, 1)
    expect_status_line(result, "✗", r"Depictio CLI configuration is invalid|not validated by the server")


def test_step_05_show_missing_project(cli: DepictioCLI) -> None:
    result = cli.run("config", "show", *SERVER, "--project-name", PENGUINS_NAME)

    expect_exit_code(result, 1)
    expect_status_line(result, "✗", rf"^No project named '{PENGUINS_NAME}'")
    expect_request_count(result, "GET", f"/projects/get/from_name/{PENGUINS_NAME.replace(' ', '%20')}", 404, 1)


def test_step_06_check_project_config(cli: DepictioCLI) -> None:
    result = cli.run("config", "check", *SERVER, "--project-config-path", _penguins(cli))

    expect_exit_code(result, 0)
    expect_status_line(result, "✓", r"^Depictio Project configuration validated")


def test_step_07_sync_creates_project(cli: DepictioCLI) -> None:
    result = cli.run("config", "sync", *SERVER, "--project-config-path", _penguins(cli))

    expect_exit_code(result, 0)
    expect_status_line(result, "✓", r"^Project created on server")


def test_step_08_sync_again_needs_update(cli: DepictioCLI) -> None:
    result = cli.run("config", "sync", *SERVER, "--project-config-path", _penguins(cli))

    expect_exit_code(result, 2)
    expect_status_line(result, "✗", r"already exists .*--update\b")


def test_step_09_sync_with_update(cli: DepictioCLI) -> None:
    result = cli.run("config", "sync", *SERVER, "--project-config-path", _penguins(cli), "--update")

    expect_exit_code(result, 0)
    expect_status_line(result, "✓", r"^Project updated on server")


def test_step_10_show_created_project(cli: DepictioCLI) -> None:
    result = cli.run("config", "show", *SERVER, "--project-name", PENGUINS_NAME)

    expect_exit_code(result, 0)
    project = json_after(result, f"Server metadata for project '{PENGUINS_NAME}'")
    assert project.get("id") == PENGUINS_PROJECT_ID, result.explain(f"expected project id {PENGUINS_PROJECT_ID!r}")
    assert "hash" in project, result.explain("the project has no 'hash' key")
    assert project["hash"] is None, result.explain("expected 'hash' null, as the CLI sent it")
    owners = [owner.get("id") for owner in (project.get("permissions") or {}).get("owners") or []]
    assert cli.user_id in owners, result.explain(f"expected the CLI user {cli.user_id} among the owners {owners}")


def test_step_11_scan_registers_runs(cli: DepictioCLI) -> None:
    result = cli.run("data", "scan", *SERVER, "--project-config-path", _penguins(cli))

    expect_exit_code(result, 0)
    expect_status_line(result, "✓", r"^Local and remote project configurations match\.")
    expect_output(result, r"^\W*TOTAL\W+6\W*$")
    expect_status_line(result, "✓", r"^Scanned 3 runs\b")


def test_service_aggregates_scanned_files(cli: DepictioCLI) -> None:
    """After step 11, depictiod itself reads the registered files into the collection's table (no S3 involved)."""
    headers = {"Authorization": f"Bearer {cli.access_token}"}
    shape_url = f"{cli.server.base_url}{API}/deltatables/shape/{PHYSICAL_FEATURES_ID}"
    # Aggregation runs in the background after the files are registered, so poll.
    deadline = time.monotonic() + AGGREGATION_DEADLINE_SECONDS
    answers: list[str] = []
    rows = None
    while time.monotonic() < deadline:
        shape = httpx.get(shape_url, headers=headers, timeout=10)
        answers.append(f"{shape.status_code} {shape.text[:200]}")
        if shape.status_code == 200:
            rows = shape.json().get("num_rows")
            if rows == PHYSICAL_FEATURES_ROWS:
                break
        time.sleep(1)
    log = cli.server.log.read_text(encoding="utf-8").splitlines()[-40:]
    context = "\n  last answers: " + "\n    ".join(answers[-3:]) + "\n  depictiod log tail:\n    " + "\n    ".join(log)
    assert rows == PHYSICAL_FEATURES_ROWS, (
        f"GET /deltatables/shape/{PHYSICAL_FEATURES_ID} did not report {PHYSICAL_FEATURES_ROWS} rows "
        f"within {AGGREGATION_DEADLINE_SECONDS} s{context}"
    )

    preview = httpx.get(
        f"{cli.server.base_url}{API}/deltatables/preview/{PHYSICAL_FEATURES_ID}", headers=headers, timeout=10
    )
    assert preview.status_code == 200, f"GET /deltatables/preview/{PHYSICAL_FEATURES_ID}: {preview.text[:500]}"
    assert preview.json()["rows"], f"GET /deltatables/preview/{PHYSICAL_FEATURES_ID} returned no rows"


def test_step_12_scan_again_finds_no_new_run(cli: DepictioCLI) -> None:
    result = cli.run("data", "scan", *SERVER, "--project-config-path", _penguins(cli))

    expect_exit_code(result, 0)
    expect_status_line(result, "✓", r"^Scanned 0 runs\b")


def test_step_13_watch_dry_run_reads_registered_files(cli: DepictioCLI) -> None:
    result = cli.run("watch", *SERVER, "--project-config-path", _penguins(cli), "--once", "--dry-run")

    expect_exit_code(result, 0)
    expect_output(result, rf"DRY RUN: {PHYSICAL_FEATURES_ROWS} row\(s\) would be written", count=2)
    expect_output(result, r"\(7/7 steps\)")


def test_step_14_scan_sync_files(cli: DepictioCLI) -> None:
    result = cli.run("data", "scan", *SERVER, "--project-config-path", _penguins(cli), "--sync-files")

    expect_exit_code(result, 0)
    expect_status_line(result, "✓", r"^Scanned 3 runs\b")
    # One batch per run and data collection: 3 runs x 2 collections, all re-posted.
    expect_request_count(result, "POST", "/files/upsert_batch", 200, 6)


def test_step_15_rescan_removes_vanished_run(cli: DepictioCLI) -> None:
    run_folder = cli.workdir / "penguins" / "data" / MOVED_RUN
    shutil.move(run_folder, cli.workdir / MOVED_RUN)

    result = cli.run("data", "scan", *SERVER, "--project-config-path", _penguins(cli), "--rescan-folders")

    expect_exit_code(result, 0)
    expect_status_line(
        result, "•", rf"^Removed 1 of 1 run\(s\) and 2 of 2 related file\(s\) from the DB: {MOVED_RUN}\b"
    )


def test_step_16_scan_registers_restored_run(cli: DepictioCLI) -> None:
    moved = cli.workdir / MOVED_RUN
    if moved.exists():
        shutil.move(moved, cli.workdir / "penguins" / "data" / MOVED_RUN)

    result = cli.run("data", "scan", *SERVER, "--project-config-path", _penguins(cli))

    expect_exit_code(result, 0)
    expect_status_line(result, "✓", r"^Scanned 1 runs\b")


def test_step_17_ingest_iris_with_dashboard(cli: DepictioCLI) -> None:
    result = _ingest_iris(cli, "--result-json", "r.json")

    expect_exit_code(result, 0)
    expect_status_line(result, "✓", r"^Ingestion completed successfully! \(8/8 steps\)")
    expect_status_line(result, "✓", rf"^Dashboard created: {IRIS_DASHBOARD_TITLE}\b")
    summary_file = cli.workdir / "r.json"
    assert summary_file.is_file(), result.explain("the CLI wrote no r.json")
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    assert summary.get("status") == "success", result.explain(f"r.json: {summary}")
    assert (summary.get("project") or {}).get("id") == IRIS_PROJECT_ID, result.explain(f"r.json: {summary}")
    dashboard_ids = [dashboard.get("id") for dashboard in summary.get("dashboards") or []]
    assert dashboard_ids and dashboard_ids[0], result.explain(f"r.json names no dashboard id: {summary}")


def test_step_18_ingest_again_needs_update_config(cli: DepictioCLI) -> None:
    result = _ingest_iris(cli)

    expect_exit_code(result, 2)
    expect_status_line(result, "✗", r"already exists .*--update-config\b")


def test_step_19_ingest_update_config_keeps_dashboard(cli: DepictioCLI) -> None:
    result = _ingest_iris(cli, "--result-json", "r.json", "--update-config")

    expect_exit_code(result, 0)
    expect_status_line(result, "✓", rf"^Dashboard kept: {IRIS_DASHBOARD_TITLE}\b")
    expect_status_line(result, "✓", r"^Ingestion completed successfully! \(8/8 steps\)")


def test_step_20_dashboard_import_resolves_project_tag(cli: DepictioCLI) -> None:
    result = cli.run("dashboard", "import", str(cli.workdir / "iris" / "dashboards" / "petal_analysis.yaml"), *SERVER)

    expect_exit_code(result, 0)
    expect_status_line(result, "✓", r"^Dashboard imported successfully!")
    expect_output(result, rf"^\s*Project ID: {IRIS_PROJECT_ID}$")


def test_step_21_dashboard_export(cli: DepictioCLI) -> None:
    summary_file = cli.workdir / "r.json"
    assert summary_file.is_file(), "step 17 wrote no r.json, so there is no dashboard id to export"
    dashboards = json.loads(summary_file.read_text(encoding="utf-8")).get("dashboards") or []
    assert dashboards, f"r.json names no dashboard: {summary_file.read_text(encoding='utf-8')}"
    exported = cli.workdir / "out.yaml"

    result = cli.run("dashboard", "export", str(dashboards[0]["id"]), *SERVER, "-o", "out.yaml")

    expect_exit_code(result, 0)
    expect_status_line(result, "✓", r"^Dashboard exported to: out\.yaml$")
    assert exported.is_file(), result.explain("out.yaml was not written")
    document = yaml.safe_load(exported.read_text(encoding="utf-8"))
    assert isinstance(document, dict), result.explain(f"out.yaml is not a YAML mapping: {str(document)[:200]}")
    expected_title = _read_title(cli.workdir / "iris" / "dashboards" / "overview.yaml")
    exported_title = _exported_title(document)
    assert exported_title == expected_title, result.explain(
        f"out.yaml has the title {exported_title!r}; the imported file has {expected_title!r}"
    )


def test_step_22_dashboard_validate(cli: DepictioCLI) -> None:
    result = cli.run("dashboard", "validate", str(cli.workdir / "iris" / "dashboards" / "overview.yaml"), *SERVER)

    expect_exit_code(result, 0)
    expect_status_line(result, "✓", r"^Validation passed")


def test_step_23_process_fails_only_at_s3(cli: DepictioCLI) -> None:
    result = cli.run("data", "process", *SERVER, "--project-config-path", _iris(cli))

    expect_exit_code(result, 1)
    expect_status_line(result, "✓", r"^Remote project configuration fetched successfully\.")
    expect_status_line(result, "✗", r"S3")


def _read_title(path: Path) -> str:
    return str(yaml.safe_load(path.read_text(encoding="utf-8"))["title"])


def _exported_title(document: dict[str, Any]) -> Any:
    """Return the dashboard title of an exported YAML document.

    A dashboard with child tabs (step 20 adds one to the iris overview) is exported as
    `main_dashboard` plus `tabs`, with its own title under `main_dashboard`.
    """
    if "main_dashboard" in document:
        return (document["main_dashboard"] or {}).get("title")
    return document.get("title")
