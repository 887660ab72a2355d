"""Service settings from depictio.toml with DEPICTIO_ environment overrides."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from config import (
    ConfigError,
    ConfigProblem,
    Project,
    Settings,
    check_workflow_overrides,
    environment_names,
    load_settings,
)
from tests.config.helpers import problem_at


def _write_toml(folder: Path, text: str = "", name: str = "depictio.toml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _settings_problems(path: Path, environ: dict[str, str] | None = None) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), {} if environ is None else environ)
    return caught.value.problems


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    path = _write_toml(tmp_path)

    settings = load_settings(str(path), {})

    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 8058
    assert settings.server.log_level == "INFO"
    assert settings.catalog.path == str(tmp_path / "depictio.duckdb")
    assert settings.auth.key_file == str(tmp_path / "depictio-auth.key")
    assert settings.auth.access_token_minutes == 60
    assert settings.auth.refresh_token_days == 7
    assert settings.auth.admin_email == "admin@example.org"
    assert settings.auth.allow_registration is False
    assert settings.auth.public_read is False
    assert settings.ingest.scan_on_start is True
    assert settings.ingest.reconcile_seconds == 300
    assert settings.ingest.settle_seconds == 2.0
    assert settings.ingest.reconcile_deadline_seconds == 600
    assert settings.ingest.ignore == []
    assert settings.ingest.workflows == []
    assert settings.projects == []
    assert settings.source_file == str(path)


def test_toml_values_are_read(tmp_path: Path) -> None:
    path = _write_toml(
        tmp_path,
        """
        projects = ["projects/demo.yaml"]

        [server]
        host = "0.0.0.0"
        port = 9000

        [ingest]
        settle_seconds = 5
        scan_on_start = false
        """,
    )

    settings = load_settings(str(path), {})

    assert settings.server.host == "0.0.0.0"
    assert settings.server.port == 9000
    assert settings.ingest.settle_seconds == 5.0
    assert settings.ingest.scan_on_start is False
    assert settings.projects == [str(tmp_path / "projects" / "demo.yaml")]


# Every DEPICTIO_ variable except DEPICTIO_PROJECTS, with a value and the parsed result.
OVERRIDES: list[tuple[str, str, Callable[[Settings], Any], Any]] = [
    ("DEPICTIO_SERVER_HOST", "0.0.0.0", lambda s: s.server.host, "0.0.0.0"),
    ("DEPICTIO_SERVER_PORT", "9000", lambda s: s.server.port, 9000),
    ("DEPICTIO_SERVER_LOG_LEVEL", "DEBUG", lambda s: s.server.log_level, "DEBUG"),
    ("DEPICTIO_SERVER_MAX_UPLOAD_MB", "20", lambda s: s.server.max_upload_mb, 20),
    ("DEPICTIO_SERVER_MAX_BODY_MB", "2", lambda s: s.server.max_body_mb, 2),
    ("DEPICTIO_CATALOG_PATH", "/srv/depictio/catalog.duckdb", lambda s: s.catalog.path, "/srv/depictio/catalog.duckdb"),
    ("DEPICTIO_CATALOG_MEMORY_LIMIT", "2GiB", lambda s: s.catalog.memory_limit, "2GiB"),
    ("DEPICTIO_CATALOG_THREADS", "3", lambda s: s.catalog.threads, 3),
    ("DEPICTIO_CATALOG_BACKEND", "duckdb", lambda s: s.catalog.backend, "duckdb"),
    ("DEPICTIO_CATALOG_POSTGRES", "dbname=x", lambda s: s.catalog.postgres, "dbname=x"),
    ("DEPICTIO_CATALOG_DATA_PATH", "/srv/lake", lambda s: s.catalog.data_path, "/srv/lake"),
    ("DEPICTIO_CATALOG_METADATA_SCHEMA", "site_a", lambda s: s.catalog.metadata_schema, "site_a"),
    ("DEPICTIO_CATALOG_TEMP_DIRECTORY", "/srv/spill", lambda s: s.catalog.temp_directory, "/srv/spill"),
    ("DEPICTIO_CATALOG_EVENT_HISTORY", "50", lambda s: s.catalog.event_history, 50),
    ("DEPICTIO_CATALOG_WRITE_RETRY_SECONDS", "5", lambda s: s.catalog.write_retry_seconds, 5.0),
    ("DEPICTIO_CATALOG_BACKUP_TIMEOUT_SECONDS", "60", lambda s: s.catalog.backup_timeout_seconds, 60.0),
    ("DEPICTIO_SERVER_EVENT_STREAMS", "7", lambda s: s.server.event_streams, 7),
    ("DEPICTIO_SERVER_EVENT_STREAMS_PER_USER", "2", lambda s: s.server.event_streams_per_user, 2),
    ("DEPICTIO_SERVER_EVENT_KEEPALIVE_SECONDS", "2.5", lambda s: s.server.event_keepalive_seconds, 2.5),
    ("DEPICTIO_SERVER_METRICS_PUBLIC", "true", lambda s: s.server.metrics_public, True),
    ("DEPICTIO_AUTH_KEY_FILE", "/srv/depictio/auth.key", lambda s: s.auth.key_file, "/srv/depictio/auth.key"),
    ("DEPICTIO_AUTH_ACCESS_TOKEN_MINUTES", "15", lambda s: s.auth.access_token_minutes, 15),
    ("DEPICTIO_AUTH_REFRESH_TOKEN_DAYS", "30", lambda s: s.auth.refresh_token_days, 30),
    ("DEPICTIO_AUTH_ADMIN_EMAIL", "ops@example.org", lambda s: s.auth.admin_email, "ops@example.org"),
    ("DEPICTIO_AUTH_ALLOW_REGISTRATION", "true", lambda s: s.auth.allow_registration, True),
    ("DEPICTIO_AUTH_LONG_LIVED_TOKEN_MAX_DAYS", "90", lambda s: s.auth.long_lived_token_max_days, 90),
    ("DEPICTIO_AUTH_LOGIN_FAILURES_PER_ACCOUNT", "3", lambda s: s.auth.login_failures_per_account, 3),
    ("DEPICTIO_AUTH_LOGIN_FAILURES_PER_ADDRESS", "30", lambda s: s.auth.login_failures_per_address, 30),
    ("DEPICTIO_AUTH_LOGIN_WINDOW_SECONDS", "60", lambda s: s.auth.login_window_seconds, 60),
    ("DEPICTIO_AUTH_PUBLIC_READ", "true", lambda s: s.auth.public_read, True),
    ("DEPICTIO_INGEST_SCAN_ON_START", "false", lambda s: s.ingest.scan_on_start, False),
    ("DEPICTIO_INGEST_RECONCILE_SECONDS", "0", lambda s: s.ingest.reconcile_seconds, 0),
    ("DEPICTIO_INGEST_RECONCILE_DEADLINE_SECONDS", "90", lambda s: s.ingest.reconcile_deadline_seconds, 90),
    ("DEPICTIO_INGEST_SETTLE_SECONDS", "0.5", lambda s: s.ingest.settle_seconds, 0.5),
    ("DEPICTIO_INGEST_WATCH_MODE", "polling", lambda s: s.ingest.watch_mode, "polling"),
    ("DEPICTIO_INGEST_POLL_SECONDS", "30", lambda s: s.ingest.poll_seconds, 30.0),
    ("DEPICTIO_INGEST_MISSING_LOCATION_GRACE_SECONDS", "60", lambda s: s.ingest.missing_location_grace_seconds, 60),
    ("DEPICTIO_INGEST_LINK_ROOTS", "/scratch/work:/tmp", lambda s: s.ingest.link_roots, ["/scratch/work", "/tmp"]),
    ("DEPICTIO_INGEST_IGNORE", "*.bak:logs/*", lambda s: s.ingest.ignore, ["*.bak", "logs/*"]),
    ("DEPICTIO_INGEST_CLIENT_ROOTS", "/data/lab", lambda s: s.ingest.client_roots, ["/data/lab"]),
    ("DEPICTIO_SQL_TIMEOUT_SECONDS", "2.5", lambda s: s.sql.timeout_seconds, 2.5),
    ("DEPICTIO_SQL_MAX_ROWS", "500", lambda s: s.sql.max_rows, 500),
    ("DEPICTIO_SQL_MAX_RESPONSE_MB", "8", lambda s: s.sql.max_response_mb, 8),
    ("DEPICTIO_SQL_MAX_CONCURRENT", "4", lambda s: s.sql.max_concurrent, 4),
]


def test_override_table_covers_every_variable() -> None:
    covered = {name for name, *_ in OVERRIDES} | {"DEPICTIO_PROJECTS"}

    assert covered == set(environment_names())


@pytest.mark.parametrize(
    ("name", "text", "read", "expected"),
    OVERRIDES,
    ids=[name for name, *_ in OVERRIDES],
)
def test_environment_overrides_setting(
    tmp_path: Path, name: str, text: str, read: Callable[[Settings], Any], expected: Any
) -> None:
    path = _write_toml(tmp_path)

    settings = load_settings(str(path), {name: text})

    value = read(settings)
    assert value == expected
    assert type(value) is type(expected)


def test_environment_wins_over_toml(tmp_path: Path) -> None:
    path = _write_toml(tmp_path, "[server]\nport = 8000\n")

    settings = load_settings(str(path), {"DEPICTIO_SERVER_PORT": "9000"})

    assert settings.server.port == 9000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        ("on", True),
        ("0", False),
        ("False", False),
        ("no", False),
        ("off", False),
    ],
)
def test_boolean_spellings_are_accepted(tmp_path: Path, text: str, expected: bool) -> None:
    path = _write_toml(tmp_path)

    settings = load_settings(str(path), {"DEPICTIO_AUTH_ALLOW_REGISTRATION": text})

    assert settings.auth.allow_registration is expected


def test_projects_variable_splits_on_pathsep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = _write_toml(tmp_path, 'projects = ["ignored.yaml"]\n')
    absolute = tmp_path_factory.mktemp("shared") / "other.yml"
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))

    value = os.pathsep.join(["projects/demo.yaml", str(absolute)])
    settings = load_settings(str(path), {"DEPICTIO_PROJECTS": value})

    assert settings.projects == [str(tmp_path / "projects" / "demo.yaml"), str(absolute)]


def test_os_environ_is_used_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write_toml(tmp_path)
    monkeypatch.setenv("DEPICTIO_SERVER_PORT", "9100")

    settings = load_settings(str(path))

    assert settings.server.port == 9100


@pytest.mark.parametrize(
    ("name", "text", "key_path", "kind"),
    [
        ("DEPICTIO_SERVER_PORT", "abc", "server.port", "an integer"),
        ("DEPICTIO_SERVER_PORT", "80.5", "server.port", "an integer"),
        ("DEPICTIO_AUTH_ALLOW_REGISTRATION", "maybe", "auth.allow_registration", "true or false"),
        ("DEPICTIO_INGEST_SETTLE_SECONDS", "soon", "ingest.settle_seconds", "a number"),
    ],
    ids=["port-text", "port-float", "bool", "float"],
)
def test_invalid_environment_value_names_setting(
    tmp_path: Path, name: str, text: str, key_path: str, kind: str
) -> None:
    path = _write_toml(tmp_path)

    problem = problem_at(_settings_problems(path, {name: text}), key_path)

    assert problem.file == str(path)
    assert f"environment variable {name}={text!r}" in problem.message
    assert f"is not {kind}" in problem.message


def test_invalid_environment_values_are_all_reported(tmp_path: Path) -> None:
    path = _write_toml(tmp_path)
    environ = {"DEPICTIO_SERVER_PORT": "abc", "DEPICTIO_INGEST_RECONCILE_SECONDS": "often"}

    key_paths = {problem.key_path for problem in _settings_problems(path, environ)}

    assert key_paths == {"server.port", "ingest.reconcile_seconds"}


def test_unknown_key_suggests_close_match(tmp_path: Path) -> None:
    path = _write_toml(tmp_path, "[server]\nprot = 9000\n")

    problem = problem_at(_settings_problems(path), "server.prot")

    assert problem.file == str(path)
    assert "unknown key 'prot'; did you mean 'port'?" in problem.message
    assert (
        "Valid keys here: event_keepalive_seconds, event_streams, event_streams_per_user, host, log_level, max_body_mb, max_upload_mb, metrics_public, port"
        in problem.message
    )


def test_unknown_section_lists_only_settings(tmp_path: Path) -> None:
    path = _write_toml(tmp_path, "[srever]\nport = 9000\n")

    problem = problem_at(_settings_problems(path), "srever")

    assert "did you mean 'server'?" in problem.message
    assert "Valid keys here: auth, catalog, ingest, projects, server" in problem.message
    assert "source_file" not in problem.message


def test_source_file_key_is_rejected(tmp_path: Path) -> None:
    path = _write_toml(tmp_path, 'source_file = "other.toml"\n')

    problem = problem_at(_settings_problems(path), "source_file")

    assert "unknown key 'source_file'" in problem.message


def test_wrong_value_type_is_named(tmp_path: Path) -> None:
    path = _write_toml(tmp_path, '[server]\nport = "9000"\n')

    problem = problem_at(_settings_problems(path), "server.port")

    assert problem.file == str(path)
    assert "expected an integer, got '9000' (string)" in problem.message


@pytest.mark.parametrize(
    ("text", "key_path", "fix"),
    [
        ("[server]\nport = 70000\n", "server.port", "use 1 to 65535"),
        ('[server]\nlog_level = "LOUD"\n', "server.log_level", "DEBUG, INFO, WARNING, ERROR"),
        ("[auth]\naccess_token_minutes = 0\n", "auth.access_token_minutes", "from 1 to 525600"),
        ("[auth]\naccess_token_minutes = 5000000000\n", "auth.access_token_minutes", "from 1 to 525600"),
        ("[auth]\nrefresh_token_days = 0\n", "auth.refresh_token_days", "from 1 to 3650"),
        ("[auth]\nlong_lived_token_max_days = 4000\n", "auth.long_lived_token_max_days", "from 1 to 3650"),
        ("[auth]\nlogin_failures_per_account = 0\n", "auth.login_failures_per_account", "from 1 to 1000000"),
        ("[auth]\nlogin_window_seconds = 0\n", "auth.login_window_seconds", "from 1 to 86400"),
        ("[ingest]\nreconcile_seconds = -1\n", "ingest.reconcile_seconds", "from 0 to 604800"),
        ("[ingest]\nreconcile_seconds = 9000000000000\n", "ingest.reconcile_seconds", "from 0 to 604800"),
        ("[ingest]\nsettle_seconds = -0.5\n", "ingest.settle_seconds", "from 0 to 3600"),
        ("[ingest]\nreconcile_deadline_seconds = -1\n", "ingest.reconcile_deadline_seconds", "from 0 to 604800"),
        ("[sql]\ntimeout_seconds = 0\n", "sql.timeout_seconds", "from 0.1 to 3600"),
        ("[sql]\nmax_rows = 0\n", "sql.max_rows", "from 1 to 1000000"),
    ],
    ids=[
        "port",
        "log-level",
        "access-token",
        "huge-access-token",
        "refresh-token",
        "long-lived-token",
        "login-failures",
        "login-window",
        "reconcile",
        "huge-reconcile",
        "settle",
        "deadline",
        "sql-timeout",
        "sql-max-rows",
    ],
)
def test_out_of_range_value_is_reported(tmp_path: Path, text: str, key_path: str, fix: str) -> None:
    path = _write_toml(tmp_path, text)

    problem = problem_at(_settings_problems(path), key_path)

    assert problem.file == str(path)
    assert fix in problem.message


def test_log_level_is_case_insensitive(tmp_path: Path) -> None:
    path = _write_toml(tmp_path, '[server]\nlog_level = "debug"\n')

    settings = load_settings(str(path), {})

    assert settings.server.log_level.upper() == "DEBUG"


@pytest.mark.parametrize(
    "environ",
    [{}, {"DEPICTIO_INGEST_SETTLE_SECONDS": "nan"}],
    ids=["toml", "environment"],
)
def test_nan_settle_seconds_is_rejected(tmp_path: Path, environ: dict[str, str]) -> None:
    # Every comparison with NaN is false, so a NaN settle time would pass any range check.
    text = "" if environ else "[ingest]\nsettle_seconds = nan\n"
    path = _write_toml(tmp_path, text)

    problem = problem_at(_settings_problems(path, environ), "ingest.settle_seconds")

    assert problem.file == str(path)


def test_relative_paths_resolve_against_toml_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = _write_toml(
        tmp_path,
        """
        projects = ["projects/demo.yaml", "../shared/other.yml"]

        [catalog]
        path = "state/catalog.duckdb"

        [auth]
        key_file = "keys/auth.key"
        """,
    )
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))

    settings = load_settings(str(path), {})

    assert settings.catalog.path == str(tmp_path / "state" / "catalog.duckdb")
    assert settings.auth.key_file == str(tmp_path / "keys" / "auth.key")
    assert settings.projects == [
        str(tmp_path / "projects" / "demo.yaml"),
        str(tmp_path.parent / "shared" / "other.yml"),
    ]


def test_home_folder_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = _write_toml(tmp_path, '[catalog]\npath = "~/catalog.duckdb"\n')

    settings = load_settings(str(path), {})

    assert settings.catalog.path == str(tmp_path / "home" / "catalog.duckdb")


def test_invalid_toml_syntax_gives_position(tmp_path: Path) -> None:
    path = _write_toml(tmp_path, "[server]\nport = \n")

    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), {})

    [problem] = caught.value.problems
    assert problem.file == str(path)
    assert problem.key_path == ""
    assert "invalid TOML" in problem.message
    assert "line 2" in problem.message
    assert caught.value.__cause__ is None


def test_missing_settings_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"

    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), {})

    [problem] = caught.value.problems
    assert problem.file == str(path)
    assert "does not exist" in problem.message
    assert "--config" in problem.message


WORKFLOW_OVERRIDES = """
[ingest]
settle_seconds = 2
reconcile_seconds = 300

[[ingest.workflow]]
project = "demo"
workflow = "rnaseq"
settle_seconds = 30
reconcile_deadline_seconds = 3600

[[ingest.workflow]]
project = "demo"
workflow = "qc"
reconcile_seconds = 0
"""


def test_workflow_override_replaces_given_keys(tmp_path: Path) -> None:
    path = _write_toml(tmp_path, WORKFLOW_OVERRIDES)

    timings = load_settings(str(path), {}).ingest.timings("demo", "rnaseq")

    assert timings.settle_seconds == 30.0
    assert timings.reconcile_seconds == 300
    assert timings.reconcile_deadline_seconds == 3600


def test_workflow_override_applies_only_to_its_workflow(tmp_path: Path) -> None:
    path = _write_toml(tmp_path, WORKFLOW_OVERRIDES)
    settings = load_settings(str(path), {})

    other = settings.ingest.timings("demo", "variants")
    qc = settings.ingest.timings("demo", "qc")

    assert other.settle_seconds == 2.0
    assert other.reconcile_seconds == 300
    assert other.reconcile_deadline_seconds == 600
    assert qc.reconcile_seconds == 0
    assert qc.settle_seconds == 2.0


def test_environment_keeps_workflow_overrides(tmp_path: Path) -> None:
    path = _write_toml(tmp_path, WORKFLOW_OVERRIDES)

    settings = load_settings(str(path), {"DEPICTIO_INGEST_SETTLE_SECONDS": "5"})

    assert settings.ingest.timings("demo", "variants").settle_seconds == 5.0
    assert settings.ingest.timings("demo", "rnaseq").settle_seconds == 30.0


@pytest.mark.parametrize(
    ("entry", "key_path", "fix"),
    [
        ("settle_seconds = 4000", "ingest.workflow[0].settle_seconds", "from 0 to 3600"),
        ("reconcile_seconds = -5", "ingest.workflow[0].reconcile_seconds", "from 0 to 604800"),
        ('reconcile_deadline_seconds = "600"', "ingest.workflow[0].reconcile_deadline_seconds", "expected an integer"),
        ("setle_seconds = 5", "ingest.workflow[0].setle_seconds", "did you mean 'settle_seconds'?"),
    ],
    ids=["settle", "reconcile", "deadline-type", "misspelt-key"],
)
def test_invalid_workflow_override_is_reported(tmp_path: Path, entry: str, key_path: str, fix: str) -> None:
    path = _write_toml(tmp_path, f'[[ingest.workflow]]\nproject = "demo"\nworkflow = "rnaseq"\n{entry}\n')

    problem = problem_at(_settings_problems(path), key_path)

    assert problem.file == str(path)
    assert fix in problem.message


def test_workflow_override_needs_project_name(tmp_path: Path) -> None:
    path = _write_toml(tmp_path, '[[ingest.workflow]]\nworkflow = "rnaseq"\nsettle_seconds = 5\n')

    problem = problem_at(_settings_problems(path), "ingest.workflow[0].project")

    assert "required key 'project' is missing" in problem.message


def test_second_override_of_workflow_is_reported(tmp_path: Path) -> None:
    entry = '[[ingest.workflow]]\nproject = "demo"\nworkflow = "rnaseq"\nsettle_seconds = 5\n'
    path = _write_toml(tmp_path, entry + entry)

    problem = problem_at(_settings_problems(path), "ingest.workflow[1]")

    assert "already has ingest.workflow[0]" in problem.message
    assert "merge" in problem.message


def test_workflow_overrides_have_no_variable() -> None:
    assert not any("WORKFLOW" in name for name in environment_names())


def test_empty_ignore_pattern_is_reported(tmp_path: Path) -> None:
    path = _write_toml(tmp_path, '[ingest]\nignore = ["*.bak", ""]\n')

    problem = problem_at(_settings_problems(path), "ingest.ignore[1]")

    assert "the pattern is empty" in problem.message


def _project(name: str, workflows: list[str]) -> Project:
    return msgspec.convert(
        {
            "name": name,
            "workflows": [
                {
                    "name": workflow,
                    "engine": {"name": "snakemake"},
                    "data_location": {"structure": "flat", "locations": ["/data"]},
                    "data_collections": [],
                }
                for workflow in workflows
            ],
        },
        Project,
    )


def test_override_of_unknown_workflow_is_reported(tmp_path: Path) -> None:
    path = _write_toml(tmp_path, WORKFLOW_OVERRIDES)
    settings = load_settings(str(path), {})

    problems = check_workflow_overrides(settings, [_project("demo", ["rnaseq", "variants"])])

    problem = problem_at(problems, "ingest.workflow[1].workflow")
    assert problem.file == str(path)
    assert "project 'demo' has no workflow named 'qc'" in problem.message
    assert "'rnaseq', 'variants'" in problem.message


def test_override_of_unknown_project_is_reported(tmp_path: Path) -> None:
    path = _write_toml(tmp_path, WORKFLOW_OVERRIDES)
    settings = load_settings(str(path), {})

    problems = check_workflow_overrides(settings, [_project("other", ["rnaseq"])])

    assert [problem.key_path for problem in problems] == ["ingest.workflow[0].project", "ingest.workflow[1].project"]
    assert "no configured project is named 'demo'; project names: 'other'" in problems[0].message


def test_overrides_of_known_workflows_pass(tmp_path: Path) -> None:
    path = _write_toml(tmp_path, WORKFLOW_OVERRIDES)
    settings = load_settings(str(path), {})

    assert check_workflow_overrides(settings, [_project("demo", ["rnaseq", "qc"])]) == []
