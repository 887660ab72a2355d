"""The catalog backend that the tests run on: the DuckDB file (default) or DuckLake on PostgreSQL.

`DEPICTIOD_TEST_BACKEND=ducklake` runs the tests that build catalogs through this module on a
DuckLake catalog in the session's throwaway PostgreSQL cluster (tests/postgres.py). Each
catalog gets its own metadata schema in one database, and its data path beside its file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import msgspec

from config import CatalogSettings

BACKEND_VARIABLE = "DEPICTIOD_TEST_BACKEND"
# Set by the session fixture in tests/conftest.py once PostgreSQL runs.
_LAKE_DSN: list[str] = []


def backend() -> str:
    return os.environ.get(BACKEND_VARIABLE, "duckdb")


def use_lake_dsn(dsn: str) -> None:
    _LAKE_DSN[:] = [dsn]


def lake_fields(path: str | Path) -> dict[str, str]:
    """Return the [catalog] settings of a DuckLake catalog for the catalog file `path`, or {} on DuckDB."""
    if backend() != "ducklake":
        return {}
    assert _LAKE_DSN, "the PostgreSQL session fixture did not run; see tests/conftest.py"
    location = os.path.abspath(str(path))
    schema = "lake_" + hashlib.sha256(location.encode()).hexdigest()[:16]
    return {"backend": "ducklake", "postgres": _LAKE_DSN[0], "data_path": location + ".lake", "metadata_schema": schema}


def catalog_settings(path: str | Path, settings: CatalogSettings | None = None) -> CatalogSettings:
    """Return `settings` (or the defaults for `path`) on the backend under test."""
    base = settings or CatalogSettings(path=str(path))
    return msgspec.structs.replace(base, **lake_fields(path))  # type: ignore[arg-type]


def catalog_toml(path: str | Path) -> str:
    """Return the lines of a [catalog] table in depictio.toml for the catalog file `path`."""
    lines = [f'path = "{path}"']
    lines += [f'{key} = "{value}"' for key, value in lake_fields(path).items()]
    return "\n".join(lines) + "\n"
