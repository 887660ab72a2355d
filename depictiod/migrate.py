"""`depictiod migrate`: copy the catalog that depictio.toml describes to the other backend.

The source is the [catalog] of the settings file as it is before the change; the target
comes from the command line. The command prints how each table compared, and on success
the [catalog] lines that make the service use the target.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

import msgspec

from catalog.migrate import METADATA_SCHEMA_PATTERN, MigrationError, MigrationResult, migrate_catalog
from config import CatalogSettings, Settings
from ingestor.uploads import UploadFolder

# Options that only a DuckLake target takes, by their attribute names.
_LAKE_OPTIONS = {"postgres": "--postgres", "data_path": "--data-path", "metadata_schema": "--metadata-schema"}
# The password field of a libpq key=value string, with the space before it.
_PASSWORD_FIELD = re.compile(r"\s*\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def run_migrate(arguments: argparse.Namespace, settings: Settings) -> int:
    """Copy the catalog to the target of `arguments`, compare every table and print the result; return the exit code."""
    source = settings.catalog
    try:
        target = target_settings(arguments, source)
    except MigrationError as error:
        print(f"depictiod: {error}", file=sys.stderr)
        return 2
    source_uploads = UploadFolder.for_catalog(source.path).root
    target_uploads = UploadFolder.for_catalog(target.path).root
    result = migrate_catalog(source, target, source_uploads, target_uploads)
    _print_checks(result)

    if not result.ok:
        differing = [check.name for check in result.checks if not check.ok]
        print(
            f"depictiod: {len(differing)} tables differ between the source and the target: {', '.join(differing)}. "
            f"The source is unchanged and stays in use; the target is left as it is for inspection. Empty it "
            "before running migrate again",
            file=sys.stderr,
        )
        return 1

    print(
        f"copied {len(result.checks)} tables (schema version {result.schema_version}) from {_describe(source)} "
        f"to {_describe(target)}; every table matches"
    )
    if target_uploads == source_uploads:
        print(f"the uploaded files stay in {source_uploads}")
    else:
        print(f"copied {result.uploads_copied} uploaded files to {target_uploads}")
    for location in result.uploads_missing:
        print(f"warning: the catalog lists the uploaded file {location}, which was missing; the target lacks it too")

    print("to use the target, set these lines in the [catalog] table of the settings file, then start depictiod:")
    for line in catalog_lines(target):
        print(f"  {line}")
    return 0


def target_settings(arguments: argparse.Namespace, source: CatalogSettings) -> CatalogSettings:
    """Return the [catalog] settings of the target: the source's, with the backend and places of `arguments`.

    Relative paths start at the current folder. Raise MigrationError for a missing or misplaced option.
    """
    path = os.path.abspath(arguments.path) if arguments.path else source.path
    if arguments.to == "duckdb":
        lake_options = [option for name, option in _LAKE_OPTIONS.items() if getattr(arguments, name)]
        if lake_options:
            raise MigrationError(f"{', '.join(lake_options)} only apply with --to ducklake")
        return msgspec.structs.replace(
            source, backend="duckdb", path=path, postgres="", data_path="", metadata_schema=""
        )
    missing = [
        option for name, option in _LAKE_OPTIONS.items() if name != "metadata_schema" and not getattr(arguments, name)
    ]
    if missing:
        raise MigrationError(f"--to ducklake needs {' and '.join(missing)}")
    schema = arguments.metadata_schema or ""
    if schema and not METADATA_SCHEMA_PATTERN.fullmatch(schema):
        raise MigrationError(
            f"invalid --metadata-schema {schema!r}; use letters, digits and underscores, starting with a letter"
        )
    data_path = arguments.data_path if "://" in arguments.data_path else os.path.abspath(arguments.data_path)
    return msgspec.structs.replace(
        source, backend="ducklake", path=path, postgres=arguments.postgres, data_path=data_path, metadata_schema=schema
    )


def catalog_lines(settings: CatalogSettings) -> list[str]:
    """Return the [catalog] lines of depictio.toml that select `settings`' backend and places."""
    lines = [f"backend = {_toml_string(settings.backend)}", f"path = {_toml_string(settings.path)}"]
    if settings.backend == "ducklake":
        lines.append(f"postgres = {_toml_string(_without_password(settings.postgres))}")
        lines.append(f"data_path = {_toml_string(settings.data_path)}")
        if settings.metadata_schema:
            lines.append(f"metadata_schema = {_toml_string(settings.metadata_schema)}")
    return lines


def _print_checks(result: MigrationResult) -> None:
    width = max([len("table"), *(len(check.name) for check in result.checks)])
    print(f"{'table':<{width}}  {'source rows':>12}  {'target rows':>12}  result")
    for check in result.checks:
        outcome = "OK" if check.ok else f"MISMATCH ({check.problem})"
        print(f"{check.name:<{width}}  {check.source_rows:>12}  {check.target_rows:>12}  {outcome}")


def _describe(settings: CatalogSettings) -> str:
    if settings.backend == "duckdb":
        return f"the DuckDB file {settings.path}"
    return f"DuckLake (metadata schema {settings.metadata_schema or 'public'}, data path {settings.data_path})"


def _without_password(dsn: str) -> str:
    """Drop the password field from a libpq key=value string: it belongs in PGPASSWORD or ~/.pgpass."""
    return _PASSWORD_FIELD.sub("", dsn).strip()


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
