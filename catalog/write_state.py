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

    An attempt writes little, so on a nearly full disk it can succeed while larger writes
    still fail. While a listener added with `confirms=True` is registered, a successful
    attempt only lets writes through on trial: the fault stays in `fault`, and it ends when
    that listener calls `confirm()` after real work succeeded. A write that fails on trial
    continues the same fault, with no new ERROR line, and the retries go on with the wait
    doubled as before.
    """

    def __init__(self, path: str, attempt: Callable[[], bool], max_wait_seconds: float) -> None:
        self.path = path
        self._attempt = attempt
        self._max_wait = max_wait_seconds
        self._failure: CatalogUnwritableError | None = None
        # Reentrant, so that a listener may read the state while it is notified of a change.
        self._lock = threading.RLock()
        self._listeners: list[WriteListener] = []
        # The listeners that confirm a recovery (see the class docstring).
        self._confirmers: list[WriteListener] = []
        # The fault that the last attempt got past, until confirm() or the next failure.
        self._trial: CatalogUnwritableError | None = None
        # Clear while writes are on trial; the retry loop waits on it.
        self._trial_over = threading.Event()
        self._trial_over.set()
        self._failed_at = 0.0
        self._attempts = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def failure(self) -> CatalogUnwritableError | None:
        """Why writes fail now, or None while they work."""
        return self._failure

    @property
    def fault(self) -> CatalogUnwritableError | None:
        """Why writes failed, until the fault is known to be over: while they are rejected, and while they are on trial."""
        return self._failure or self._trial

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
            if self._trial is not None:
                # The attempt got through, but real work failed: the same fault goes on.
                self._trial = None
                self._failure = _copy(failure)
                logger.debug("catalog %s failed again on trial: %s (%s)", self.path, failure.summary, failure.detail)
                self._notify(failure)
                self._trial_over.set()
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
        """Record that an attempt to write worked: end the fault, or put writes on trial (see the class docstring)."""
        with self._lock:
            if self._failure is None:
                return
            if self._confirmers:
                self._trial = self._failure
                self._failure = None
                self._trial_over.clear()
                logger.debug("catalog %s accepts writes on trial after %d attempts", self.path, self._attempts)
                self._notify(None)
                return
            self._failure = None
            self._log_recovery()
            self._notify(None)

    def confirm(self, on_confirmed: Callable[[], None] | None = None) -> bool:
        """End a fault whose writes are on trial, because real work succeeded; return True when one ended.

        `on_confirmed` runs under the lock that orders every change, so a failure that comes
        at the same time is notified after it, never before.
        """
        with self._lock:
            if self._trial is None or self._failure is not None:
                return False
            self._trial = None
            self._log_recovery()
            if on_confirmed is not None:
                on_confirmed()
            self._trial_over.set()
            return True

    def _log_recovery(self) -> None:
        logger.info(
            "catalog %s can be written again after %.1f s and %d attempts; writes are accepted again",
            self.path,
            time.monotonic() - self._failed_at,
            self._attempts,
        )

    def add_listener(self, listener: WriteListener, confirms: bool = False) -> None:
        """Call `listener` on each change, and at once when writes fail already.

        It runs on the thread that noticed the change, so it must return quickly. With
        `confirms`, a successful attempt puts writes on trial until `confirm()`.
        """
        with self._lock:
            self._listeners.append(listener)
            if confirms:
                self._confirmers.append(listener)
            if self._failure is not None:
                listener(self._failure)

    def remove_listener(self, listener: WriteListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)
            if listener in self._confirmers:
                self._confirmers.remove(listener)
            if not self._confirmers and self._trial is not None:
                self.confirm()  # No confirming listener is left, so the attempt's success ends the fault.

    def stop(self) -> None:
        """End the retry loop after the attempt in progress, waiting at most STOP_WAIT_SECONDS for it."""
        self._stopping.set()
        self._trial_over.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_WAIT_SECONDS)

    def _retry(self) -> None:
        wait = min(FIRST_RETRY_SECONDS, self._max_wait)
        while not self._stopping.wait(wait):
            self._attempts += 1
            if self._attempt():
                self._trial_over.wait()
                if self.fault is None:
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
