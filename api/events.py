"""The server-sent event stream of `GET /events`: replay, filters, access checks and limits.

A stream sends the events of the catalog's event log (catalog.events) that the caller may
read. Access is checked again for every event, against the caller's token, user record
and projects as they were at most ACCESS_CACHE_SECONDS ago, so a permission change or a
revoked token takes effect on open streams within about that time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import msgspec
from anyio import to_thread
from litestar.exceptions import ClientException, TooManyRequestsException
from litestar.response import ServerSentEventMessage

from api.policy import Policy
from api.tokens import InvalidTokenError, TokenService
from catalog import EVENT_TYPES, GAP_EVENT, Catalog, Event, Gap, Subscription, SubscriptionClosedError, UserRecord

logger = logging.getLogger(__name__)

# How long a stream trusts its last check of the caller's token, user and readable projects.
ACCESS_CACHE_SECONDS = 1.0
# Maximum `max_seconds` of a request: one day.
MAX_STREAM_SECONDS = 86_400.0
# Browsers wait this long before they reconnect after a stream ended, in milliseconds.
RETRY_MILLISECONDS = 3000


@dataclass(frozen=True)
class StreamRequest:
    """The parameters of one stream request: filters, the id to resume after and the time to stay connected."""

    project_id: str | None
    types: frozenset[str]
    last_event_id: int | None
    max_seconds: float | None


def parse_types(text: str | None) -> frozenset[str]:
    """Return the event types named in `types=a,b`, or every type; raise 400 for an unknown one."""
    if text is None or not text.strip():
        return frozenset(EVENT_TYPES)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in EVENT_TYPES]
    if unknown:
        raise ClientException(
            f"invalid request: types: unknown event type {unknown[0]!r}; valid types: {', '.join(EVENT_TYPES)}"
        )
    return frozenset(names)


def parse_last_event_id(header: str | None, query: str | None) -> int | None:
    """Return the id to resume after; the Last-Event-ID header wins over the query parameter.

    A browser's EventSource sends the header on each reconnect with the newest id it
    received, while the URL keeps the query parameter of the first connection.
    """
    name, text = ("Last-Event-ID", header) if header is not None else ("last_event_id", query)
    if text is None or not text.strip():
        return None
    try:
        value = int(text.strip())
    except ValueError:
        raise ClientException(
            f"invalid request: {name}: {text.strip()[:40]!r} is not an event id; send the `id` of the last event "
            "received"
        ) from None
    if not 0 <= value < 2**63:
        raise ClientException(f"invalid request: {name}: {text.strip()[:40]} is not an event id; ids are 0 to 2^63-1")
    return value


def parse_max_seconds(value: float | None) -> float | None:
    if value is None:
        return None
    if not 0 <= value <= MAX_STREAM_SECONDS:
        raise ClientException(
            f"invalid request: max_seconds: {value:g}; give 0 to {MAX_STREAM_SECONDS:g} seconds, or leave it out"
        )
    return value


@dataclass
class StreamLimits:
    """Counts of open streams, in total and per user, kept on the event loop thread."""

    total: int
    per_user: int
    open_by_user: dict[str, int] = field(default_factory=dict)

    def acquire(self, user_id: str) -> Callable[[], None]:
        """Count a new stream of `user_id` and return the function that releases it; raise 429 past a limit."""
        if sum(self.open_by_user.values()) >= self.total:
            raise TooManyRequestsException(
                f"the service already has {self.total} open event streams (server.event_streams); try again later",
                headers={"Retry-After": "30"},
            )
        if self.open_by_user.get(user_id, 0) >= self.per_user:
            raise TooManyRequestsException(
                f"you already have {self.per_user} open event streams (server.event_streams_per_user); close one first",
                headers={"Retry-After": "30"},
            )
        self.open_by_user[user_id] = self.open_by_user.get(user_id, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            left = self.open_by_user[user_id] - 1
            if left:
                self.open_by_user[user_id] = left
            else:
                del self.open_by_user[user_id]

        return release


class AccessExpiredError(Exception):
    """Raised when the token of a stream's caller stopped being valid; its message gives the reason."""


class StreamAccess:
    """The projects that a stream's caller may read, checked again at most every ACCESS_CACHE_SECONDS."""

    def __init__(self, catalog: Catalog, policy: Policy, tokens: TokenService, token: str, user: UserRecord) -> None:
        self._catalog = catalog
        self._policy = policy
        self._tokens = tokens
        self._token = token
        self.user = user
        self._readable: set[str] = set()
        self._checked_at = float("-inf")

    async def allows(self, project_id: str) -> bool:
        """Return True when the caller may read `project_id` now; raise AccessExpiredError for a dead token."""
        await self.refresh()
        return project_id in self._readable

    async def refresh(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._checked_at < ACCESS_CACHE_SECONDS:
            return
        self._readable = await to_thread.run_sync(self._check)
        self._checked_at = time.monotonic()

    def _check(self) -> set[str]:
        try:
            self.user, _ = self._tokens.verify_access(self._token)
        except InvalidTokenError as error:
            raise AccessExpiredError(f"{error}; sign in again and reconnect with Last-Event-ID") from None
        return {record.id for record in self._policy.readable(self.user, self._catalog.projects.list())}


def message_of(event: Event) -> ServerSentEventMessage:
    return ServerSentEventMessage(id=event.id, event=event.type, data=event.data)


class GapData(msgspec.Struct, kw_only=True):
    """The JSON data of the `history.gap` event."""

    type: str
    last_event_id: int
    # The oldest id that the history still has, or the next id when it is empty.
    oldest_event_id: int
    reason: str


def gap_message(gap: Gap) -> ServerSentEventMessage:
    """Return the `history.gap` event, which warns a client that it missed events; it has no id of its own."""
    data = GapData(
        type=GAP_EVENT,
        last_event_id=gap.last_event_id,
        oldest_event_id=gap.oldest_event_id,
        reason=(
            "events after last_event_id are no longer in the history, or the id was not issued since the "
            "service started; reload the state you show"
        ),
    )
    return ServerSentEventMessage(event=GAP_EVENT, data=msgspec.json.encode(data))


def comment(text: str) -> ServerSentEventMessage:
    return ServerSentEventMessage(comment=text, data=None)


class EventStream:
    """One client's stream: the missed events first, then live ones, until it ends.

    NOTE: a client that stops reading while its TCP connection stays open blocks the send
    of the current message, so its stream keeps its place in StreamLimits until the
    connection breaks. The event log stops queueing for it once it falls behind.
    """

    def __init__(
        self,
        subscription: Subscription,
        missed: list[Event],
        gap: Gap | None,
        request: StreamRequest,
        access: StreamAccess,
        keepalive_seconds: float,
        release: Callable[[], None],
    ) -> None:
        self.subscription = subscription
        self.missed = missed
        self.gap = gap
        self.request = request
        self.access = access
        self.keepalive_seconds = keepalive_seconds
        self._release = release
        self.sent = 0
        self.reason = "the client disconnected"

    def close(self) -> None:
        """Stop receiving events and free the stream's place; safe to call more than once."""
        self.subscription.cancel()
        self._release()

    async def messages(self) -> AsyncIterator[ServerSentEventMessage]:
        started = time.monotonic()
        try:
            async for message in self._messages(started):
                yield message
        finally:
            self.close()
            logger.info(
                "event stream of user %s ended after %.1f s, %d events sent: %s",
                self.access.user.id,
                time.monotonic() - started,
                self.sent,
                self.reason,
            )

    async def _messages(self, started: float) -> AsyncIterator[ServerSentEventMessage]:
        # The first bytes go out at once, so the client knows that the stream is open.
        yield comment("connected")
        if self.gap is not None:
            yield gap_message(self.gap)
        try:
            for event in self.missed:
                if await self._should_send(event):
                    self.sent += 1
                    yield message_of(event)
            async for message in self._live(started):
                yield message
        except AccessExpiredError as error:
            self.reason = str(error)
            yield comment(self.reason)

    async def _live(self, started: float) -> AsyncIterator[ServerSentEventMessage]:
        limit = self.request.max_seconds
        while True:
            remaining = None if limit is None else limit - (time.monotonic() - started)
            if remaining is not None and remaining <= 0:
                self.reason = "max_seconds passed"
                return
            wait = self.keepalive_seconds if remaining is None else min(self.keepalive_seconds, remaining)
            try:
                events = await self.subscription.next(wait)
            except SubscriptionClosedError as closed:
                self.reason = str(closed)
                yield comment(self.reason)
                return

            if not events:
                # Idle: check the token, so a revoked one ends the stream, and keep the connection alive.
                await self.access.refresh()
                yield comment("keep-alive")
                continue
            for event in events:
                if await self._should_send(event):
                    self.sent += 1
                    yield message_of(event)

    async def _should_send(self, event: Event) -> bool:
        if event.type not in self.request.types:
            return False
        if self.request.project_id is not None and event.project_id != self.request.project_id:
            return False
        return await self.access.allows(event.project_id)
