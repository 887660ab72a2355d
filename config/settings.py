"""Service settings from `depictio.toml`, each overridable by a DEPICTIO_ environment variable.

The variable for a setting is DEPICTIO_ + section + key in upper case, for example
`DEPICTIO_SERVER_PORT=9000` or `DEPICTIO_INGEST_SETTLE_SECONDS=5`. `DEPICTIO_PROJECTS`,
`DEPICTIO_INGEST_LINK_ROOTS`, `DEPICTIO_INGEST_CLIENT_ROOTS` and `DEPICTIO_INGEST_IGNORE` take lists separated by the OS
path separator (`:` on Linux). The per-workflow `[[ingest.workflow]]` entries have no
variable.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from typing import Any, Literal

import msgspec
from msgspec import inspect as mi

from config import _walk
from config.errors import ConfigError, ConfigProblem
from config.paths import resolve_path
from config.project import Project

ENV_PREFIX = "DEPICTIO_"


class ServerSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8058
    log_level: str = "INFO"
    # Largest request body of a table upload (`POST /datacollections/{id}/append` and
    # `/replace`), in MiB; a larger one gets 413.
    max_upload_mb: int = 100
    # Largest request body of every other route, in MiB. A larger one gets 413. Routes
    # with a smaller fixed limit of their own (dashboards, client ingestion reports,
    # table reports) keep it.
    max_body_mb: int = 10
    # Open `GET /events` streams allowed in total and per user; one more gets 429.
    event_streams: int = 100
    event_streams_per_user: int = 5
    # Seconds between keep-alive comments on an idle event stream, so that dead clients and
    # idle-closing proxies are noticed.
    event_keepalive_seconds: float = 15.0
    # `GET /metrics` without a token. Off, it needs an administrator's token.
    metrics_public: bool = False


class CatalogSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # The DuckDB file; relative paths start at the folder of depictio.toml. With the ducklake
    # backend, the local base path of the spill folder and the uploads folder.
    path: str = "depictio.duckdb"
    # "duckdb": the catalog and every table in the one file `path`. "ducklake": a DuckLake
    # catalog in PostgreSQL (`postgres`) with the tables' data as Parquet files in `data_path`,
    # shared by several depictiod processes (see docs/scale-out.md).
    backend: Literal["duckdb", "ducklake"] = "duckdb"
    # libpq connection string of the DuckLake catalog database, such as
    # "dbname=depictio host=db.example.org user=depictiod". Keep the password out of this
    # file: libpq reads PGPASSWORD or ~/.pgpass.
    postgres: str = ""
    # Folder (shared by every process) or s3://bucket/prefix where DuckLake writes the
    # tables' Parquet files. Used by this catalog alone: DuckLake's maintenance deletes files
    # there that it does not track. Relative paths start at the folder of depictio.toml.
    data_path: str = ""
    # PostgreSQL schema of the DuckLake metadata; empty means DuckLake's default (public).
    # Several catalogs can share one database with one schema each.
    metadata_schema: str = ""
    # Memory that DuckDB may use in total, as a size ("2GB", "512MiB") or a share of the
    # machine's or container's memory ("80%"). Half goes to the catalog database and half
    # to the database that reads workflow files.
    memory_limit: str = "80%"
    # DuckDB threads of each of the two databases. 0 means one per CPU this process may use.
    threads: int = 0
    # Where DuckDB spills data that does not fit in memory. Empty means `<catalog path>.tmp`.
    # Relative paths start at the folder of depictio.toml.
    temp_directory: str = ""
    # Change events kept in memory for clients of `GET /events` that reconnect with
    # Last-Event-ID; a client that missed older ones gets a `history.gap` event. 0 keeps none.
    event_history: int = 1000
    # Maximum wait in seconds between two attempts to write a catalog file that the file
    # system rejected (disk full, read-only). The first wait is 0.5 s, and each one doubles.
    write_retry_seconds: float = 30.0
    # Maximum seconds that a backup may hold the catalog's writer thread while it copies the
    # catalog and the uploads. A backup that takes longer is stopped and removed (503), so a
    # backup folder on storage that hangs cannot block writes and sign-ins for longer.
    backup_timeout_seconds: float = 300.0


class AuthSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # Ed25519 private key that signs tokens, created on first start with mode 0600.
    key_file: str = "depictio-auth.key"
    access_token_minutes: int = 60
    refresh_token_days: int = 7
    # The first start on an empty catalog creates this administrator.
    admin_email: str = "admin@example.org"
    allow_registration: bool = False
    # Long-lived tokens (for scripts and the Depictio CLI) may live at most this many days.
    long_lived_token_max_days: int = 365
    # Failed sign-ins allowed per account and per client address within the window;
    # one more gets 429 until the oldest failure leaves the window.
    login_failures_per_account: int = 10
    login_failures_per_address: int = 50
    login_window_seconds: int = 900
    # Anonymous requests may read public projects (`is_public: true`); signed-in users read
    # them either way.
    public_read: bool = False


class SqlSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # A query of `POST /sql` still running after this many seconds is interrupted (400).
    timeout_seconds: float = 30.0
    # The maximum and default number of rows that one query returns; a result with more
    # rows is cut there and marked truncated.
    max_rows: int = 10_000
    # The maximum size of one query's JSON response, in MiB. A larger response is 400.
    max_response_mb: int = 64
    # Queries that may run at once in the whole service; one more is 429.
    max_concurrent: int = 2


class WorkflowTimings(msgspec.Struct, kw_only=True, frozen=True):
    """The ingest timings that apply to one workflow, after its overrides."""

    settle_seconds: float
    reconcile_seconds: int
    reconcile_deadline_seconds: int


class WorkflowOverride(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Ingest timings for one workflow, named by project and workflow name (`[[ingest.workflow]]`).

    A key left out keeps the value of the `[ingest]` section.
    """

    project: str
    workflow: str
    settle_seconds: float | None = None
    reconcile_seconds: int | None = None
    reconcile_deadline_seconds: int | None = None


class IngestSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    scan_on_start: bool = True
    # Seconds between reconciles of each workflow, or 0 to turn them off.
    reconcile_seconds: int = 300
    # A workflow scan still running this many seconds after it started stops before its
    # next step, and the next reconcile starts fresh. 0 lets it run as long as it takes.
    reconcile_deadline_seconds: int = 600
    # A file modified less than this long ago is left for a later scan. After a change
    # event, the workflow is rescanned once no event came for this long.
    settle_seconds: float = 2.0
    # How locations are watched: auto (polling on network file systems, else events),
    # events, polling, or off (the scheduled reconcile only).
    watch_mode: Literal["auto", "events", "polling", "off"] = "auto"
    # Seconds between two walks of a location that is polled. Each walk stats every file,
    # so a short interval costs CPU on a large tree even while nothing changes.
    poll_seconds: float = 10.0
    # A location that vanishes (an unmounted share, say) keeps its runs this many seconds.
    missing_location_grace_seconds: int = 3600
    # Folders that symlinked result files may point into, besides the locations and their
    # parent folders. Relative paths start at the folder of depictio.toml.
    link_roots: list[str] = msgspec.field(default_factory=list)
    # Folders in which users who are not administrators may place the locations of the
    # projects they send over the API (`POST /projects/create`). Administrators may place
    # them anywhere. Relative paths start at the folder of depictio.toml.
    client_roots: list[str] = msgspec.field(default_factory=list)
    # fnmatch patterns of files never ingested, matched against the file name and the path
    # relative to the run folder, on top of hidden files and *.tmp, *.part and *~ names.
    ignore: list[str] = msgspec.field(default_factory=list)
    # Per-workflow timings, written as [[ingest.workflow]] tables.
    workflows: list[WorkflowOverride] = msgspec.field(default_factory=list, name="workflow")

    def timings(self, project: str, workflow: str) -> WorkflowTimings:
        """Return the timings of the workflow named `workflow` in the project named `project`."""
        settle, reconcile, deadline = self.settle_seconds, self.reconcile_seconds, self.reconcile_deadline_seconds
        for override in self.workflows:
            if (override.project, override.workflow) != (project, workflow):
                continue
            settle = settle if override.settle_seconds is None else override.settle_seconds
            reconcile = reconcile if override.reconcile_seconds is None else override.reconcile_seconds
            if override.reconcile_deadline_seconds is not None:
                deadline = override.reconcile_deadline_seconds
        return WorkflowTimings(settle_seconds=settle, reconcile_seconds=reconcile, reconcile_deadline_seconds=deadline)


class _SettingsFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The keys that depictio.toml may contain."""

    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    catalog: CatalogSettings = msgspec.field(default_factory=CatalogSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    ingest: IngestSettings = msgspec.field(default_factory=IngestSettings)
    sql: SqlSettings = msgspec.field(default_factory=SqlSettings)
    # Depictio project YAML files; relative paths start at the folder of depictio.toml.
    projects: list[str] = msgspec.field(default_factory=list)


class Settings(_SettingsFile, kw_only=True, forbid_unknown_fields=True):
    """Service settings, with the file they came from."""

    source_file: str = ""


_SECTIONS: dict[str, type[msgspec.Struct]] = {
    "server": ServerSettings,
    "catalog": CatalogSettings,
    "auth": AuthSettings,
    "ingest": IngestSettings,
    "sql": SqlSettings,
}


def environment_names() -> list[str]:
    """Return every DEPICTIO_ variable that overrides a setting, for help text and docs."""
    names = [f"{ENV_PREFIX}PROJECTS"]
    for section, struct_type in _SECTIONS.items():
        for field in _variable_fields(struct_type):
            names.append(f"{ENV_PREFIX}{section}_{field.name}".upper())
    return names


def _variable_fields(struct_type: type[msgspec.Struct]) -> list[msgspec.structs.FieldInfo]:
    """Return the fields of a section that an environment variable can set: all but tables."""
    variable_fields = []
    for field in msgspec.structs.fields(struct_type):
        info = mi.type_info(field.type)
        if isinstance(info, mi.ListType) and isinstance(info.item_type, mi.StructType):
            continue
        variable_fields.append(field)
    return variable_fields


def load_settings(path: str, environ: dict[str, str] | None = None) -> Settings:
    """Read `path`, apply environment overrides, check every value and resolve paths."""
    env = os.environ if environ is None else environ
    shown_path = os.path.abspath(path)
    raw = _read_toml(shown_path)
    problems: list[tuple[str, str]] = []

    overridden: dict[str, str] = {}
    _apply_environment(raw, env, problems, overridden)
    try:
        problems.extend(_walk.check_against(raw, _SettingsFile))
    except RecursionError:
        problems.append(("", "the file is nested too deeply to check; settings need at most two levels"))
    _check_values(raw, problems)
    if problems:
        raise ConfigError([_problem(shown_path, key, message, overridden) for key, message in problems])

    settings: Settings = _walk.convert(raw, Settings)
    return _resolve_paths(settings, shown_path)


def _problem(path: str, key: str, message: str, overridden: dict[str, str]) -> ConfigProblem:
    """Return a settings problem, naming the environment variable when one set the value."""
    variable = overridden.get(key)
    if variable and variable not in message:
        message = f"{message} (set by the environment variable {variable})"
    return ConfigProblem(path, key, message)


def _read_toml(path: str) -> dict[str, Any]:
    def fail(message: str) -> ConfigError:
        return ConfigError([ConfigProblem(path, "", message)])

    if not os.path.isfile(path):
        raise fail("the settings file does not exist; pass --config with the path of depictio.toml")
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise fail(f"invalid TOML: {error}; fix the syntax there") from None
    except RecursionError:
        raise fail("the file is nested too deeply to read; settings need at most two levels") from None
    except OSError as error:
        raise fail(f"cannot read the file: {error}") from None


def _apply_environment(
    raw: dict[str, Any], env: Any, problems: list[tuple[str, str]], overridden: dict[str, str]
) -> None:
    projects = env.get(f"{ENV_PREFIX}PROJECTS")
    if projects:
        raw["projects"] = [item for item in projects.split(os.pathsep) if item]

    for section, struct_type in _SECTIONS.items():
        for field in _variable_fields(struct_type):
            name = f"{ENV_PREFIX}{section}_{field.name}".upper()
            if name not in env:
                continue
            value = _parse_env_value(env[name], field.type)
            if value is None:
                problems.append(
                    (
                        f"{section}.{field.name}",
                        f"environment variable {name}={env[name]!r} is not {_kind_word(field.type)}",
                    )
                )
                continue
            target = raw.setdefault(section, {})
            if isinstance(target, dict):
                target[field.name] = value
                overridden[f"{section}.{field.name}"] = name


def _parse_env_value(text: str, annotation: Any) -> Any:
    info = mi.type_info(annotation)
    if isinstance(info, mi.BoolType):
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        return None
    if isinstance(info, mi.ListType):
        return [item for item in text.split(os.pathsep) if item]
    if isinstance(info, mi.IntType | mi.FloatType):
        try:
            number = float(text) if isinstance(info, mi.FloatType) else int(text)
        except ValueError:
            return None
        return number
    return text


def _kind_word(annotation: Any) -> str:
    info = mi.type_info(annotation)
    if isinstance(info, mi.BoolType):
        return "true or false"
    if isinstance(info, mi.IntType):
        return "an integer"
    return "a number"


# (section, key, minimum, maximum) of numeric settings. The maximums keep dates and timers
# within what Python and the scheduler can represent: one year of access token lifetime,
# ten years of refresh and long-lived token lifetime, one day of sign-in rate window, one
# week between reconciles, one hour of settle time. An upload may be at most 100 GiB, any
# other request body 1 GiB. A SQL query may run at most one hour and return at most a
# million rows as JSON.
_RANGES = (
    ("server", "max_upload_mb", 1, 102_400),
    ("server", "max_body_mb", 1, 1_024),
    ("server", "event_streams", 0, 100_000),
    ("server", "event_streams_per_user", 0, 100_000),
    ("server", "event_keepalive_seconds", 0.1, 3_600),
    ("catalog", "event_history", 0, 1_000_000),
    ("catalog", "write_retry_seconds", 0.1, 3_600),
    ("catalog", "backup_timeout_seconds", 1, 3_600),
    ("catalog", "threads", 0, 4_096),
    ("auth", "access_token_minutes", 1, 525_600),
    ("auth", "refresh_token_days", 1, 3_650),
    ("auth", "long_lived_token_max_days", 1, 3_650),
    ("auth", "login_failures_per_account", 1, 1_000_000),
    ("auth", "login_failures_per_address", 1, 1_000_000),
    ("auth", "login_window_seconds", 1, 86_400),
    ("ingest", "reconcile_seconds", 0, 604_800),
    ("ingest", "reconcile_deadline_seconds", 0, 604_800),
    ("ingest", "settle_seconds", 0, 3_600),
    ("ingest", "poll_seconds", 0.1, 3_600),
    ("ingest", "missing_location_grace_seconds", 0, 604_800),
    ("sql", "timeout_seconds", 0.1, 3_600),
    ("sql", "max_rows", 1, 1_000_000),
    ("sql", "max_response_mb", 1, 4_096),
    ("sql", "max_concurrent", 1, 64),
)
# The keys of an [[ingest.workflow]] entry take the ranges of the [ingest] keys they override.
_WORKFLOW_RANGES = [
    (key, minimum, maximum)
    for section, key, minimum, maximum in _RANGES
    if section == "ingest" and key in WorkflowOverride.__struct_fields__
]


def _check_values(raw: dict[str, Any], problems: list[tuple[str, str]]) -> None:
    def number(section: str, key: str) -> Any:
        block = raw.get(section)
        return block.get(key) if isinstance(block, dict) else None

    port = number("server", "port")
    if isinstance(port, int) and not 0 <= port <= 65535:
        problems.append(("server.port", f"port {port} is out of range; use 1 to 65535 (0 picks a free port)"))
    for section, key, minimum, maximum in _RANGES:
        _check_range(f"{section}.{key}", number(section, key), minimum, maximum, problems)

    ignore = number("ingest", "ignore")
    for index, pattern in enumerate(ignore if isinstance(ignore, list) else []):
        if pattern == "":
            problems.append(
                (f"ingest.ignore[{index}]", "the pattern is empty; remove it or give a pattern such as '*.bak'")
            )
    _check_workflow_overrides(number("ingest", "workflow"), problems)

    _check_backend(raw.get("catalog"), problems)

    memory = number("catalog", "memory_limit")
    if isinstance(memory, str) and parse_memory_limit(memory) is None:
        problems.append(
            (
                "catalog.memory_limit",
                f'invalid memory limit {memory!r}; give a size such as "2GB" or "512MiB", '
                'or a share of the memory such as "80%" (at most 100%)',
            )
        )

    level = number("server", "log_level")
    if isinstance(level, str) and level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        problems.append(
            ("server.log_level", f"invalid log level {level!r}; valid choices: DEBUG, INFO, WARNING, ERROR")
        )


def _check_backend(block: Any, problems: list[tuple[str, str]]) -> None:
    """Require the PostgreSQL connection and the data path of a DuckLake catalog."""
    if not isinstance(block, dict) or block.get("backend") != "ducklake":
        return
    for key, example in (
        ("postgres", '"dbname=depictio host=127.0.0.1 user=depictiod"'),
        ("data_path", '"/shared/depictio-lake"'),
    ):
        if not block.get(key):
            problems.append(
                (
                    f"catalog.{key}",
                    f"the ducklake backend needs catalog.{key}; set it, for example {key} = {example}, "
                    'or use backend = "duckdb"',
                )
            )
    schema = block.get("metadata_schema")
    if isinstance(schema, str) and schema and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", schema):
        problems.append(
            (
                "catalog.metadata_schema",
                f"invalid schema name {schema!r}; use letters, digits and underscores, starting with a letter",
            )
        )


_MEMORY_LIMIT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(%|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*", re.IGNORECASE)
_MEMORY_UNITS = {
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_memory_limit(text: str) -> tuple[float, bool] | None:
    """Return (bytes, False) for a size such as "2GB", (fraction, True) for a share such as "80%".

    Returns None for anything else, including zero and shares above 100%.
    """
    found = _MEMORY_LIMIT.fullmatch(text)
    if found is None:
        return None
    amount, unit = float(found.group(1)), found.group(2).lower()
    if amount <= 0:
        return None
    if unit == "%":
        return (amount / 100, True) if amount <= 100 else None
    return amount * _MEMORY_UNITS[unit], False


def _check_range(key_path: str, value: Any, minimum: float, maximum: float, problems: list[tuple[str, str]]) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return  # Absent, or a wrong type that the structural check reports.
    if not math.isfinite(value) or not minimum <= value <= maximum:
        key = key_path.rsplit(".", 1)[-1]
        problems.append((key_path, f"{key} is {value}; give a number from {minimum} to {maximum}"))


def _check_workflow_overrides(entries: Any, problems: list[tuple[str, str]]) -> None:
    """Check the ranges of each [[ingest.workflow]] entry, and that no workflow has two."""
    first_entry: dict[tuple[str, str], int] = {}
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        if not isinstance(entry, dict):
            continue
        path = f"ingest.workflow[{index}]"
        for key, minimum, maximum in _WORKFLOW_RANGES:
            _check_range(f"{path}.{key}", entry.get(key), minimum, maximum, problems)

        project, workflow = entry.get("project"), entry.get("workflow")
        if not isinstance(project, str) or not isinstance(workflow, str):
            continue
        if (project, workflow) in first_entry:
            first = first_entry[(project, workflow)]
            message = (
                f"workflow {workflow!r} of project {project!r} already has ingest.workflow[{first}]; merge the two"
            )
            problems.append((path, message))
        first_entry.setdefault((project, workflow), index)


def check_workflow_overrides(settings: Settings, projects: list[Project]) -> list[ConfigProblem]:
    """Return a problem for each [[ingest.workflow]] entry that names no configured workflow."""
    problems = []
    workflows = {project.name: [workflow.name for workflow in project.workflows] for project in projects}
    for index, override in enumerate(settings.ingest.workflows):
        path = f"ingest.workflow[{index}]"
        if override.project not in workflows:
            known = ", ".join(repr(name) for name in sorted(workflows)) or "none"
            message = f"no configured project is named {override.project!r}; project names: {known}"
            problems.append(ConfigProblem(settings.source_file, f"{path}.project", message))
            continue
        if override.workflow not in workflows[override.project]:
            known = ", ".join(repr(name) for name in sorted(workflows[override.project])) or "none"
            message = (
                f"project {override.project!r} has no workflow named {override.workflow!r}; its workflow names: {known}"
            )
            problems.append(ConfigProblem(settings.source_file, f"{path}.workflow", message))
    return problems


def _resolve_paths(settings: Settings, source_file: str) -> Settings:
    base_dir = os.path.dirname(source_file)
    temp_directory = settings.catalog.temp_directory
    data_path = settings.catalog.data_path
    catalog = msgspec.structs.replace(
        settings.catalog,
        path=resolve_path(settings.catalog.path, base_dir),
        temp_directory=resolve_path(temp_directory, base_dir) if temp_directory else "",
        data_path=resolve_path(data_path, base_dir) if data_path and "://" not in data_path else data_path,
    )
    auth = msgspec.structs.replace(settings.auth, key_file=resolve_path(settings.auth.key_file, base_dir))
    projects = [resolve_path(project, base_dir) for project in settings.projects]
    link_roots = [resolve_path(root, base_dir) for root in settings.ingest.link_roots]
    client_roots = [resolve_path(root, base_dir) for root in settings.ingest.client_roots]
    ingest = msgspec.structs.replace(settings.ingest, link_roots=link_roots, client_roots=client_roots)
    return msgspec.structs.replace(
        settings, catalog=catalog, auth=auth, ingest=ingest, projects=projects, source_file=source_file
    )
