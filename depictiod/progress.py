"""The progress bar that `depictiod scan` draws on a terminal."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TextIO

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from config import Project
from ingestor import Ingestor, ScanProgress

# The screen size assumed on a terminal that reports none, in columns and rows.
_FALLBACK_SIZE = (80, 24)


def scan_steps(projects: list[Project]) -> int:
    """Count the progress events of one scan of every project: one per workflow and one per collection."""
    return sum(1 + len(workflow.data_collections) for project in projects for workflow in project.workflows)


class ScanProgressBar:
    """A tqdm bar that advances one step per progress event of the ingestor."""

    def __init__(self, bar: tqdm) -> None:
        self._bar = bar

    def __call__(self, event: ScanProgress) -> None:
        # The project name is left out: it is often long, and the bar needs the width.
        if event.step == "workflow":
            done = f"{event.name}: {event.files} files"
        else:
            done = f"{event.name}: {event.rows} rows"
        self._bar.set_postfix_str(done, refresh=False)
        self._bar.update(1)

    def restart(self) -> None:
        """Start the bar again for another scan of every project."""
        self._bar.reset()
        self._bar.set_description("rescanning")


@contextlib.contextmanager
def progress_bar(ingestor: Ingestor, projects: list[Project], stream: TextIO) -> Iterator[ScanProgressBar | None]:
    """Draw a progress bar of the ingestor's scans on `stream` while the block runs, if it is a terminal.

    Log lines are written through the bar, so they appear above it and do not break it.
    When `stream` is not a terminal (a pipe or a file), nothing is drawn and the block gets None.
    """
    if not stream.isatty():
        yield None
        return

    # tqdm 4.70 draws nothing on a terminal that reports a size of 0, such as a pseudo-terminal
    # whose size was never set, so such a terminal gets a fixed size. Any other is followed as it resizes.
    size = _FALLBACK_SIZE if _terminal_width(stream) == 0 else (None, None)
    with (
        tqdm(
            total=scan_steps(projects),
            desc="scanning",
            unit="step",
            file=stream,
            ncols=size[0],
            nrows=size[1],
            dynamic_ncols=size[0] is None,
        ) as bar,
        logging_redirect_tqdm(),
    ):
        display = ScanProgressBar(bar)
        ingestor.progress = display
        try:
            yield display
        finally:
            ingestor.progress = None


def _terminal_width(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except OSError:
        return 0
