"""Workflow parameters that an engine leaves in a run folder."""

from __future__ import annotations

import glob
import io
import json
import os
from typing import Any

import yaml

from catalog.safe_open import open_regular

# Parameter files larger than this are not read: they would bloat every run listing.
MAX_PARAMETER_BYTES = 1 << 20


def find_run_parameters(run_location: str, warnings: list[str]) -> dict[str, Any]:
    """Return {"source": path, "values": {...}} for the run's parameter file, or {} when none.

    nf-core pipelines write `pipeline_info/params_<timestamp>.json`; the newest one is used.
    Snakemake runs keep `config.yaml` or `config.json` at the run root.
    """
    candidates = sorted(glob.glob(os.path.join(glob.escape(run_location), "pipeline_info", "params_*.json")))
    candidates = candidates[-1:] + [
        os.path.join(run_location, name) for name in ("config.yaml", "config.yml", "config.json")
    ]
    for path in candidates:
        if not os.path.isfile(path):
            continue
        values = _read_mapping(path, warnings)
        if values is not None:
            return {"source": path, "values": values}
    return {}


def _read_mapping(path: str, warnings: list[str]) -> dict[str, Any] | None:
    try:
        if os.path.getsize(path) > MAX_PARAMETER_BYTES:
            warnings.append(f"parameter file {path!r} is larger than {MAX_PARAMETER_BYTES} bytes; not stored")
            return None
        with io.TextIOWrapper(open_regular(path), encoding="utf-8") as handle:
            data = json.load(handle) if path.endswith(".json") else yaml.safe_load(handle)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as error:
        warnings.append(f"parameter file {path!r} cannot be read ({error}); not stored")
        return None
    if not isinstance(data, dict):
        warnings.append(f"parameter file {path!r} does not hold a mapping of parameters; not stored")
        return None
    # JSON round trip: the catalog stores plain JSON values (YAML dates become text).
    result: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return result
