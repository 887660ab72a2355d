"""Progress events of a scan, for a display such as the progress bar of `depictiod scan`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import msgspec


class ScanProgress(msgspec.Struct, kw_only=True, frozen=True):
    """One finished step of a scan: a workflow scanned, or a data collection aggregated."""

    step: Literal["workflow", "collection"]
    project: str
    # The workflow's name or the collection's tag.
    name: str
    # Files the scan found for the workflow or the collection.
    files: int
    # Rows of the collection's table; 0 for a workflow.
    rows: int = 0


ProgressCallback = Callable[[ScanProgress], None]
