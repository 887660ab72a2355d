"""Service settings from `depictio.toml`, each overridable by a DEPICTIO_ environment variable.

The variable for a setting is DEPICTIO_ + section + key in upper case, for example
`DEPICTIO_SERVER_PORT=9000` or `DEPICTIO_INGEST_SETTLE_SECONDS=5`. `DEPICTIO_PROJECTS`
and `DEPICTIO_INGEST_LINK_ROOTS` take lists of paths separated by the OS path separator
(`:` on Linux).
"""

from __future__ import annotations

import math
import os
import tomllib
from typing import Any, Literal

import msgspec
from msgspec import inspect as mi

from config import _walk
from config.errors import ConfigError, ConfigProblem
from config.paths import resolve_path

ENV_PREFIX = "DEPICTIO_"


class ServerSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8058
    log_level: str = "INFO"


class CatalogSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # The DuckDB file; relative paths start at the folder of depictio.toml.
    path: str = "depictio.duckdb"


class AuthSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # Ed25519 private key that signs tokens, created on first start with mode 0600.
    key_file: str = "depictio-auth.key"
    access_token_minutes: int = 60
    refresh_token_days: int = 7
    # The first start on an empty catalog creates this administrator.
    admin_email: str = "admin@example.org"
    allow_registration: bool = False
    # Anonymous requests may read public projects (`is_public: true`); signed-in users read
    # them either way.
    public_read: bool = False


class IngestSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    scan_on_start: bool = True
    # Seconds between full reconciles of every location; 0 turns them off.
    reconcile_seconds: int = 300
    # A file modified less than this long ago is left for a later scan. After a change
    # event, the workflow is rescanned once no event came for this long.
    settle_seconds: float = 2.0
    # How locations are watched: auto (polling on network file systems, else events),
    # events, polling, or off (the scheduled reconcile only).
    watch_mode: Literal["auto", "events", "polling", "off"] = "auto"
    # A location that vanishes (an unmounted share, say) keeps its runs this many seconds.
    missing_location_grace_seconds: int = 3600
    # Folders that symlinked result files may point into, besides the locations and their
    # parent folders. Relative paths start at the folder of depictio.toml.
    link_roots: list[str] = msgspec.field(default_factory=list)


class _SettingsFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The keys that depictio.toml may contain."""

    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    catalog: CatalogSettings = msgspec.field(default_factory=CatalogSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    ingest: IngestSettings = msgspec.field(default_factory=IngestSettings)
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
}


def environment_names() -> list[str]:
    """Return every DEPICTIO_ variable that overrides a setting, for help text and docs."""
    names = [f"{ENV_PREFIX}PROJECTS"]
    for section, struct_type in _SECTIONS.items():
        for field in msgspec.structs.fields(struct_type):
            names.append(f"{ENV_PREFIX}{section}_{field.name}".upper())
    return names


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
        for field in msgspec.structs.fields(struct_type):
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
# within what Python and the scheduler can represent: one year of token lifetime, ten
# years of refresh lifetime, one week between reconciles, one hour of settle time.
_RANGES = (
    ("auth", "access_token_minutes", 1, 525_600),
    ("auth", "refresh_token_days", 1, 3_650),
    ("ingest", "reconcile_seconds", 0, 604_800),
    ("ingest", "settle_seconds", 0, 3_600),
    ("ingest", "missing_location_grace_seconds", 0, 604_800),
)


def _check_values(raw: dict[str, Any], problems: list[tuple[str, str]]) -> None:
    def number(section: str, key: str) -> Any:
        block = raw.get(section)
        return block.get(key) if isinstance(block, dict) else None

    port = number("server", "port")
    if isinstance(port, int) and not 0 <= port <= 65535:
        problems.append(("server.port", f"port {port} is out of range; use 1 to 65535 (0 picks a free port)"))
    for section, key, minimum, maximum in _RANGES:
        value = number(section, key)
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        if not math.isfinite(value) or not minimum <= value <= maximum:
            problems.append((f"{section}.{key}", f"{key} is {value}; give a number from {minimum} to {maximum}"))

    level = number("server", "log_level")
    if isinstance(level, str) and level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        problems.append(
            ("server.log_level", f"invalid log level {level!r}; valid choices: DEBUG, INFO, WARNING, ERROR")
        )


def _resolve_paths(settings: Settings, source_file: str) -> Settings:
    base_dir = os.path.dirname(source_file)
    catalog = msgspec.structs.replace(settings.catalog, path=resolve_path(settings.catalog.path, base_dir))
    auth = msgspec.structs.replace(settings.auth, key_file=resolve_path(settings.auth.key_file, base_dir))
    projects = [resolve_path(project, base_dir) for project in settings.projects]
    link_roots = [resolve_path(root, base_dir) for root in settings.ingest.link_roots]
    ingest = msgspec.structs.replace(settings.ingest, link_roots=link_roots)
    return msgspec.structs.replace(
        settings, catalog=catalog, auth=auth, ingest=ingest, projects=projects, source_file=source_file
    )
