"""Stop conditions of one workflow scan: the service stopping, or the scan's deadline passing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType

# Seconds that the end of a scan waits for its cancelled deadline timer's thread to end.
TIMER_JOIN_SECONDS = 5.0


class ScanStopped(Exception):
    """Raised inside a scan when the service is stopping; the scan ends early."""


class ScanTimedOut(Exception):
    """Raised inside a scan that ran past its deadline, so the scan ends before its next step."""


class ScanDeadline:
    """The checkpoint of one workflow scan, used as a context manager around the scan.

    `check()` raises ScanStopped once the service is stopping, and ScanTimedOut once
    `seconds` have passed since the scan started (0 means no deadline). A timer calls
    `on_overrun(elapsed_seconds)` when the deadline passes, so an overrun is reported even
    while the scan is stuck inside one step and cannot reach its next check.
    """

    def __init__(
        self,
        stopping: threading.Event,
        seconds: float,
        on_overrun: Callable[[float], None],
        thread_name: str = "scan-deadline",
    ) -> None:
        self.seconds = seconds
        self._stopping = stopping
        self._on_overrun = on_overrun
        self._thread_name = thread_name
        self._expired = threading.Event()
        self._started = time.monotonic()
        self._timer: threading.Timer | None = None

    @property
    def elapsed(self) -> float:
        """Seconds since the scan started."""
        return time.monotonic() - self._started

    def __enter__(self) -> ScanDeadline:
        self._started = time.monotonic()
        if self.seconds > 0:
            self._timer = threading.Timer(self.seconds, self._expire)
            self._timer.name = self._thread_name
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
            # A cancelled timer's thread ends a moment later; waiting for it means a stopped
            # service leaves no thread behind.
            self._timer.join(TIMER_JOIN_SECONDS)
            self._timer = None

    def check(self) -> None:
        """Raise when the scan must end before its next step."""
        if self._stopping.is_set():
            raise ScanStopped()
        if self._expired.is_set():
            raise ScanTimedOut(f"the scan ran past its deadline of {self.seconds:g} s")

    def _expire(self) -> None:
        # Report first, so the overrun is logged before the scan's own stop message.
        try:
            self._on_overrun(self.elapsed)
        finally:
            self._expired.set()
