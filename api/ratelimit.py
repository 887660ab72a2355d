"""A sliding-window limit on failed sign-ins, per account and per client address.

The counts live in memory: they start empty when the service starts, and several service
processes would each count on their own.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

# The number of accounts and addresses tracked at once. When a flood of made-up names
# fills it, the keys whose newest failure is oldest are forgotten first.
MAX_TRACKED_KEYS = 100_000


class _Window:
    """Failure times per key within the last `seconds`."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, key: str, now: float) -> float | None:
        """Return the seconds until `key` may try again, or None when it is under the limit."""
        failures = self._recent(key, now)
        if len(failures) < self.limit:
            return None
        return failures[0] + self.seconds - now

    def add(self, key: str, now: float) -> None:
        failures = self._recent(key, now)
        failures.append(now)
        # Move the key to the end, so the dict stays ordered by the newest failure.
        self._failures.pop(key, None)
        self._failures[key] = failures
        while len(self._failures) > MAX_TRACKED_KEYS:
            del self._failures[next(iter(self._failures))]

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key) or deque()
        while failures and failures[0] <= now - self.seconds:
            failures.popleft()
        return failures


class LoginRateLimiter:
    """Counts failed sign-ins per account (e-mail address) and per client address.

    A request is rejected while either count has reached its limit within the window. A
    successful sign-in clears the count of its account only: the address keeps its count,
    so signing in to one's own account between guesses at others gains nothing.
    """

    def __init__(
        self,
        per_account: int,
        per_address: int,
        window_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._accounts = _Window(per_account, window_seconds)
        self._addresses = _Window(per_address, window_seconds)
        self._clock = clock
        self._lock = threading.Lock()

    def retry_after(self, account: str, address: str) -> int | None:
        """Return whole seconds to wait before the next attempt, or None when an attempt is allowed."""
        now = self._clock()
        with self._lock:
            waits = [
                wait
                for wait in (
                    self._accounts.retry_after(_account_key(account), now),
                    self._addresses.retry_after(address, now),
                )
                if wait is not None
            ]
        return max(1, math.ceil(max(waits))) if waits else None

    def record_failure(self, account: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            self._accounts.add(_account_key(account), now)
            self._addresses.add(address, now)

    def record_success(self, account: str) -> None:
        with self._lock:
            self._accounts.clear(_account_key(account))


def _account_key(account: str) -> str:
    # E-mail addresses sign in case-insensitively, so they are counted so too.
    return account.strip().lower()
