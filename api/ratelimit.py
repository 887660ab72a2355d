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

from catalog import email_key

# The number of accounts and addresses tracked at once. When a flood of made-up names
# fills it, the keys whose newest failure is oldest are forgotten first.
MAX_TRACKED_KEYS = 100_000
# How many times more often one account may fail from all addresses together than from one.
ACCOUNT_SPREAD = 10


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
    """Counts failed sign-ins per account and client address, per account, and per address.

    A request is rejected while any count has reached its limit within the window. The
    limit of one account from one address is `per_account`; from all addresses together
    an account may fail ACCOUNT_SPREAD times as often. So a stranger who fails on purpose
    locks the account only for their own address until they use many addresses, while
    guesses spread over many addresses still stop. A successful sign-in clears the counts
    of its account only: the address keeps its count, so signing in to one's own account
    between guesses at others gains nothing.
    """

    def __init__(
        self,
        per_account: int,
        per_address: int,
        window_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pairs = _Window(per_account, window_seconds)
        self._accounts = _Window(per_account * ACCOUNT_SPREAD, window_seconds)
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
                    self._pairs.retry_after(_pair_key(account, address), now),
                    self._accounts.retry_after(_account_key(account), now),
                    self._addresses.retry_after(address, now),
                )
                if wait is not None
            ]
        return max(1, math.ceil(max(waits))) if waits else None

    def record_failure(self, account: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            self._pairs.add(_pair_key(account, address), now)
            self._accounts.add(_account_key(account), now)
            self._addresses.add(address, now)

    def record_success(self, account: str, address: str) -> None:
        with self._lock:
            self._pairs.clear(_pair_key(account, address))
            self._accounts.clear(_account_key(account))


def _account_key(account: str) -> str:
    # Counted under the same key that finds the account, so spellings of one address share a count.
    return email_key(account)


def _pair_key(account: str, address: str) -> str:
    return f"{email_key(account)}\n{address}"
