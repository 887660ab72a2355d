"""Whether the catalog can be written: the current failure, the listeners notified of changes, and the retry loop."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from catalog.errors import CatalogUnwritableError

logger = logging.getLogger(__name__)

# Seconds before the first attempt to write again. Each failed attempt doubles the wait, up
# to the store's maximum.
FIRST_RETRY_SECONDS = 0.5
# Seconds that stop() waits for an attempt in progress.
STOP_WAIT_SECONDS = 30.0
# Called with the reason when writes start to fail, and with None when they work again.
WriteListener = Callable[[CatalogUnwritableError | None], None]


class WriteState:
    """Tracks a write failure of one catalog file and retries writing until it works.

    `attempt` tries one write. It must not raise, and it calls `recover()` before it returns
    True. The first failure logs one ERROR line, and the recovery one INFO line.
    """

    def __init__(self, path: str, attempt: Callable[[], bool], max_wait_seconds: float) -> None:
        self.path = path
        self._attempt = attempt
        self._max_wait = max_wait_seconds
        self._failure: CatalogUnwritableError | None = None
        # Reentrant, so that a listener may read the state while it is notified of a change.
        self._lock = threading.RLock()
        self._listeners: list[WriteListener] = []
        self._failed_at = 0.0
        self._attempts = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def failure(self) -> CatalogUnwritableError | None:
        """Why writes fail now, or None while they work."""
        return self._failure

    @property
    def attempts(self) -> int:
        """Attempts to write again since writes started to fail, or the count of the last failure once they work."""
        return self._attempts

    def check(self) -> None:
        """Raise CatalogUnwritableError while writes fail."""
        failure = self._failure
        if failure is not None:
            raise _copy(failure)

    def fail(self, failure: CatalogUnwritableError) -> None:
        """Record that a write failed. The first failure is logged, notified to the listeners, and starts the retries."""
        with self._lock:
            if self._failure is not None:
                self._failure = _copy(failure)  # The latest reason is the one to show.
                return
            self._failure = _copy(failure)
            self._failed_at = time.monotonic()
            self._attempts = 0
            logger.error(
                "catalog %s cannot be written: %s (%s); reads go on, writes are rejected, and writing is "
                "tried again every %g s at most",
                self.path,
                failure.summary,
                failure.detail,
                self._max_wait,
            )
            self._notify(failure)
            if not self._stopping.is_set():
                self._thread = threading.Thread(target=self._retry, name="catalog-write-retry", daemon=True)
                self._thread.start()

    def recover(self) -> None:
        """Record that a write worked again: log it once and notify the listeners."""
        with self._lock:
            if self._failure is None:
                return
            self._failure = None
            logger.info(
                "catalog %s can be written again after %.1f s and %d attempts; writes are accepted again",
                self.path,
                time.monotonic() - self._failed_at,
                self._attempts,
            )
            self._notify(None)

    def add_listener(self, listener: WriteListener) -> None:
        """Call `listener` on each change, and at once when writes fail already.

        It runs on the thread that noticed the change, so it must return quickly.
        """
        with self._lock:
            self._listeners.append(listener)
            if self._failure is not None:
                listener(self._failure)

    def remove_listener(self, listener: WriteListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def stop(self) -> None:
        """End the retry loop after the attempt in progress, waiting at most STOP_WAIT_SECONDS for it."""
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_WAIT_SECONDS)

    def _retry(self) -> None:
        wait = min(FIRST_RETRY_SECONDS, self._max_wait)
        while not self._stopping.wait(wait):
            self._attempts += 1
            if self._attempt():
                return
            wait = min(wait * 2, self._max_wait)

    def _notify(self, failure: CatalogUnwritableError | None) -> None:
        for listener in list(self._listeners):
            try:
                listener(failure)
            except Exception:
                logger.exception("a listener of catalog %s failed on a change of its write state", self.path)


def _copy(failure: CatalogUnwritableError) -> CatalogUnwritableError:
    """Return a new exception with the same reason, so that the stored one keeps no traceback and its frames alive."""
    return CatalogUnwritableError(failure.summary, failure.detail)
