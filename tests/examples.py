"""Copies of the real Depictio example outputs in ../shared, prepared for tests.

The examples are written by others and are not part of this repository: tests that use
them skip with a message when ../shared is absent (a user's fresh clone).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.backends import catalog_toml

REPOSITORY = Path(__file__).resolve().parents[1]
SHARED_EXAMPLES = REPOSITORY.parent / "shared" / "data" / "depictio-examples"
# The bundled example of this repository: penguins in three runs (344 rows) and iris.
BUNDLED_PHYSICAL_FEATURES_ID = "6a0001000000000000000003"
BUNDLED_PENGUINS_WORKFLOW_ID = "6a0001000000000000000002"
PENGUINS_PROJECT_ID = "646b0f3c1e4a2d7f8e5b8c9d"
PENGUINS_WORKFLOW_ID = "646b0f3c1e4a2d7f8e5b8c9e"
PHYSICAL_FEATURES_ID = "646b0f3c1e4a2d7f8e5b8c9f"
DEMOGRAPHIC_DATA_ID = "646b0f3c1e4a2d7f8e5b8ca0"
IRIS_TABLE_ID = "646b0f3c1e4a2d7f8e5b8c9c"
VIRALRECON_PATH_COLLECTIONS = (
    "mosdepth_amplicon_coverage",
    "mosdepth_genome_coverage",
    "mosdepth_amplicon_heatmap",
)


def require_examples() -> Path:
    """Return the shared examples folder, or skip the test when it is absent."""
    if not SHARED_EXAMPLES.is_dir():
        pytest.skip(f"the Depictio example outputs are not at {SHARED_EXAMPLES}; these tests need ../shared")
    return SHARED_EXAMPLES


def shared_examples_available() -> bool:
    return SHARED_EXAMPLES.is_dir()


def copy_bundled_examples(target: Path) -> list[Path]:
    """Copy this repository's examples/ into `target`; return its project YAML paths."""
    shutil.copytree(REPOSITORY / "examples", target / "bundled")
    return [target / "bundled" / "penguins" / "project.yaml", target / "bundled" / "iris" / "project.yaml"]


def copy_all_examples(target: Path) -> list[Path]:
    """Copy the bundled examples, and the shared Depictio examples when they are present."""
    projects = copy_bundled_examples(target)
    if shared_examples_available():
        projects += copy_examples(target)
    return projects


def copy_examples(target: Path) -> list[Path]:
    """Copy penguins, iris and viralrecon (with a second run) into `target`; return the YAML paths.

    Upstream YAML files name the locations of Depictio's Docker image (`/app/depictio/...`)
    or a `{DATA_ROOT}` template variable; they are rewritten to the copies.
    """
    source = require_examples()
    for name in ("penguins", "iris", "viralrecon"):
        shutil.copytree(source / name, target / name)
    shutil.copytree(target / "viralrecon" / "run_1", target / "viralrecon" / "run_2")

    penguins = target / "penguins" / "project.yaml"
    _rewrite(penguins, "/app/depictio/projects/init/penguins/data", str(target / "penguins" / "data"))
    iris = target / "iris" / "project.yaml"
    _rewrite(iris, "/app/depictio/projects/init/iris", str(target / "iris"))
    viralrecon = target / "viralrecon" / "template.yaml"
    _rewrite(viralrecon, '"{DATA_ROOT}"', f'"{target / "viralrecon"}"')
    return [penguins, iris, viralrecon]


def _rewrite(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{path} no longer contains {old!r}; update the test fixture"
    path.write_text(text.replace(old, new), encoding="utf-8")


def write_settings(target: Path, projects: list[Path], port: int = 8058) -> Path:
    """Write a depictio.toml for `projects` with its catalog and key under `target`."""
    listed = ", ".join(f'"{path}"' for path in projects)
    settings = target / "depictio.toml"
    settings.write_text(
        f"projects = [{listed}]\n"
        f"[server]\nport = {port}\n"
        f"[catalog]\n{catalog_toml(target / 'catalog.duckdb')}"
        f'[auth]\nkey_file = "{target / "auth.key"}"\nadmin_email = "admin@example.org"\n'
        # Example files are copied just before the service starts, so they count as settled.
        "[ingest]\nreconcile_seconds = 0\nsettle_seconds = 0\n",
        encoding="utf-8",
    )
    return settings
