"""Load DuckDB extensions from the Python wheels that ship them, never from DuckDB's extension server.

The wheels `duckdb-extension-<name>` (PyPI) contain one binary each, at
`<package>/extensions/v<DuckDB version>/<extension>.duckdb_extension`, signed by DuckDB: they load
with `allow_unsigned_extensions` off. Connections that load them must have
`autoinstall_known_extensions` and `autoload_known_extensions` off, so that a missing extension
fails at once with ExtensionError instead of DuckDB trying to download it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import duckdb
import msgspec

from catalog.errors import CatalogError

# Settings of every connection that loads extensions with load_extensions().
EXTENSION_CONFIG: dict[str, Any] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


class ExtensionError(CatalogError):
    """Raised when a DuckDB extension is missing from the installed wheels or fails to load."""


class WheelExtension(msgspec.Struct, frozen=True):
    # The extension's name in DuckDB, which is also the file name of its binary.
    name: str
    # The PyPI package that ships the binary, and its import name.
    package: str
    module: str


# DuckDB names the PostgreSQL extension `postgres_scanner` ("postgres" is an alias). The wheel
# duckdb-extension-postgres 1.5.5 ships the same binary as postgres.duckdb_extension, and DuckDB
# 1.5.5 rejects it under that file name: it looks for the entry point postgres_duckdb_cpp_init,
# while the binary exports postgres_scanner_duckdb_cpp_init. Hence the postgres-scanner wheel.
EXTENSIONS: dict[str, WheelExtension] = {
    "ducklake": WheelExtension("ducklake", "duckdb-extension-ducklake", "duckdb_extension_ducklake"),
    "postgres_scanner": WheelExtension(
        "postgres_scanner", "duckdb-extension-postgres-scanner", "duckdb_extension_postgres_scanner"
    ),
    "httpfs": WheelExtension("httpfs", "duckdb-extension-httpfs", "duckdb_extension_httpfs"),
}
# Names that DuckDB accepts for the same extension.
ALIASES = {"postgres": "postgres_scanner"}


def duckdb_version(connection: duckdb.DuckDBPyConnection) -> str:
    """Return the version of the DuckDB library behind `connection`, such as 'v1.5.5'."""
    row = connection.execute("SELECT library_version FROM pragma_version()").fetchone()
    if row is None:
        raise ExtensionError("DuckDB returned no version from pragma_version()")
    return str(row[0])


def extension_path(name: str, version: str) -> Path:
    """Return the binary of extension `name` for DuckDB `version` ('v1.5.5') inside its installed wheel.

    Raise ExtensionError, naming the package to install, when the wheel or that binary is missing.
    """
    extension = _extension(name)
    install = f"install it with: pip install '{extension.package}=={version.lstrip('v')}'"
    spec = importlib.util.find_spec(extension.module)
    if spec is None or not spec.submodule_search_locations:
        raise ExtensionError(
            f"the DuckDB extension {extension.name!r} is missing: the Python package {extension.package} is not installed; {install}"
        )
    package_folder = Path(next(iter(spec.submodule_search_locations)))
    path = package_folder / "extensions" / version / f"{extension.name}.duckdb_extension"
    if path.is_file():
        return path
    shipped = sorted(folder.name for folder in (package_folder / "extensions").glob("v*") if folder.is_dir())
    raise ExtensionError(
        f"the DuckDB extension {extension.name!r} for DuckDB {version} is missing: the installed package "
        f"{extension.package} has {path.name} for {', '.join(shipped) or 'no DuckDB version'}, not at {path}; {install}"
    )


def load_extensions(connection: duckdb.DuckDBPyConnection, names: list[str]) -> dict[str, Path]:
    """Load each extension of `names` into `connection` from its wheel and return the files loaded, by name.

    The connection must have been opened with EXTENSION_CONFIG (checked here) and with
    external access on, which LOAD needs. Raise ExtensionError when a wheel or binary is
    missing, when a setting is wrong, or when DuckDB rejects the binary.
    """
    _check_settings(connection)
    version = duckdb_version(connection)
    loaded: dict[str, Path] = {}
    for name in names:
        path = extension_path(name, version)
        quoted = str(path).replace("'", "''")
        try:
            connection.execute(f"LOAD '{quoted}'")
        except duckdb.Error as error:
            package = _extension(name).package
            raise ExtensionError(
                f"loading the DuckDB extension {name!r} from {path} failed: {str(error).splitlines()[0]}; "
                f"reinstall the package {package} at DuckDB's version ({version.lstrip('v')})"
            ) from error
        loaded[_extension(name).name] = path
    return loaded


def _extension(name: str) -> WheelExtension:
    key = ALIASES.get(name, name)
    if key not in EXTENSIONS:
        raise ExtensionError(
            f"unknown DuckDB extension {name!r}: the extensions loaded from wheels are {', '.join(sorted(EXTENSIONS))}"
        )
    return EXTENSIONS[key]


def _check_settings(connection: duckdb.DuckDBPyConnection) -> None:
    """Raise ExtensionError unless the connection has DuckDB's automatic extension downloads off."""
    for setting, expected in EXTENSION_CONFIG.items():
        row = connection.execute("SELECT current_setting(?)", [setting]).fetchone()
        if row is None or row[0] != expected:
            raise ExtensionError(
                f"the DuckDB setting {setting} is {row[0] if row else None!r}, expected {expected!r}: "
                "open the connection with catalog.extensions.EXTENSION_CONFIG, so that a missing extension "
                "fails at once rather than being downloaded"
            )
