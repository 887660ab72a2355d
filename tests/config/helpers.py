"""Builders for project files on disk and lookups over ConfigError problems."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from config import ConfigError, ConfigProblem, load_project

# A valid project: a flat workflow with a single-file collection (index 0), a recursive
# collection (index 1) and a join between them. Tests copy it and break one value.
VALID_PROJECT: dict[str, Any] = {
    "name": "demo",
    "workflows": [
        {
            "name": "rnaseq",
            "engine": {"name": "nextflow"},
            "data_location": {"structure": "flat", "locations": ["data"]},
            "data_collections": [
                {
                    "data_collection_tag": "samples",
                    "config": {
                        "type": "table",
                        "scan": {
                            "mode": "single",
                            "scan_parameters": {"filename": "data/samples.csv"},
                        },
                        "dc_specific_properties": {"format": "csv"},
                    },
                },
                {
                    "data_collection_tag": "counts",
                    "config": {
                        "type": "table",
                        "scan": {
                            "mode": "recursive",
                            "scan_parameters": {
                                "regex_config": {
                                    "pattern": "{sample}_counts.tsv",
                                    "wildcards": [{"name": "sample", "wildcard_regex": "[A-Za-z0-9]+"}],
                                }
                            },
                        },
                        "dc_specific_properties": {"format": "tsv"},
                    },
                },
            ],
        }
    ],
    "joins": [
        {
            "name": "samples_counts",
            "left_dc": "samples",
            "right_dc": "counts",
            "on_columns": ["sample"],
        }
    ],
}

WORKFLOW = "workflows[0]"
SINGLE_DC = f"{WORKFLOW}.data_collections[0]"
RECURSIVE_DC = f"{WORKFLOW}.data_collections[1]"
REGEX_CONFIG = f"{RECURSIVE_DC}.config.scan.scan_parameters.regex_config"


def valid_project() -> dict[str, Any]:
    """Return a fresh deep copy of VALID_PROJECT that a test may change."""
    return copy.deepcopy(VALID_PROJECT)


def make_data_folder(folder: Path) -> None:
    """Create the `data/` folder and `data/samples.csv` that VALID_PROJECT points at."""
    data = folder / "data"
    data.mkdir(exist_ok=True)
    (data / "samples.csv").write_text("sample,condition\nS1,control\n", encoding="utf-8")


def write_project(folder: Path, project: dict[str, Any], name: str = "project.yaml") -> Path:
    """Dump `project` as YAML into `folder/name` and return the path."""
    path = folder / name
    path.write_text(yaml.safe_dump(project, sort_keys=False), encoding="utf-8")
    return path


def write_text(folder: Path, text: str, name: str = "project.yaml") -> Path:
    """Write dedented YAML text into `folder/name` and return the path."""
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def load_problems(path: Path, environ: dict[str, str] | None = None) -> list[ConfigProblem]:
    """Load `path`, expect a ConfigError and return its problems."""
    with pytest.raises(ConfigError) as caught:
        load_project(str(path), {} if environ is None else environ)
    return caught.value.problems


def problem_at(problems: list[ConfigProblem], key_path: str) -> ConfigProblem:
    """Return the one problem reported at `key_path`, failing with the full list otherwise."""
    found = [problem for problem in problems if problem.key_path == key_path]
    listing = "\n".join(f"  {problem.key_path!r}: {problem.message}" for problem in problems)
    assert len(found) == 1, f"expected one problem at {key_path!r}, got {len(found)}:\n{listing}"
    return found[0]
