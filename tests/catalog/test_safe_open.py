"""A named pipe (FIFO) in place of a workflow file never blocks a reader of the service."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from catalog.safe_open import open_regular, releasing_fifos
from ingestor.hashing import content_hash


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "measures.csv"
    os.mkfifo(path)
    return path


def test_fifo_is_refused_without_waiting(fifo: Path) -> None:
    with pytest.raises(OSError, match="not a regular file"):
        open_regular(str(fifo))
    with pytest.raises(OSError, match="not a regular file"):
        content_hash(str(fifo))


def test_regular_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "measures.csv"
    path.write_bytes(b"id\n1\n")

    with open_regular(str(path)) as handle:
        assert handle.read() == b"id\n1\n"


def test_reader_waiting_on_a_fifo_is_released(fifo: Path) -> None:
    read: list[bytes] = []

    def blocking_reader() -> None:
        # What DuckDB does when it opens a path that became a FIFO: a plain, blocking open.
        with open(fifo, "rb") as handle:
            read.append(handle.read())

    with releasing_fifos([str(fifo)]):
        reader = threading.Thread(target=blocking_reader, daemon=True)
        reader.start()
        reader.join(timeout=10)

    assert not reader.is_alive(), "the reader still waits on the FIFO"
    assert read == [b""]
