from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ingestor.helpers import Harness, write_project

StartHarness = Callable[..., Harness]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The workflow location folder that the project file points at."""
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


@pytest.fixture
def start(tmp_path: Path, data_dir: Path) -> Iterator[StartHarness]:
    """Return a factory that writes a project with the given collections and opens a Harness on it.

    `ingest` sets IngestSettings fields of the harness's Ingestor (settle_seconds is 0 by default).
    Every harness it opened is closed at teardown.
    """
    opened: list[Harness] = []

    def open_harness(
        collections: list[dict[str, Any]], ingest: dict[str, Any] | None = None, **location: Any
    ) -> Harness:
        harness = Harness(tmp_path, write_project(tmp_path, collections, **location), ingest=ingest)
        opened.append(harness)
        return harness

    yield open_harness
    for harness in opened:
        harness.close()
