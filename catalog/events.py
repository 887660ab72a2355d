"""Change events of the catalog: an in-memory log with a bounded history and live subscribers.

Writers publish an event right after the commit that makes a change visible. Each event
gets the next id, and the log keeps the newest `history_size` events, so that a client
that reconnects receives what it missed. Ids start at the Unix time of the log's creation
in microseconds, so an id of an earlier process is lower than every id of this one. A
client that reconnects after a restart therefore gets a gap notice, because it may have
missed events.

Publishing never blocks and never raises. Each subscriber has a bounded queue, and a
subscriber whose queue is full is closed (its client reconnects with its last id), so a
slow client never holds up a writer. Writes happen on the `catalog-writer` thread and
subscribers wait on an asyncio event loop, so a publish wakes them with
`loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import msgspec

from catalog.records import FileRecord, RunRecord

logger = logging.getLogger(__name__)

EVENT_TYPES = ("run.added", "file.added", "file.failed", "table.updated", "schema.changed", "scan.finished")
# Sent to one client only, first, when events it asked for are no longer in the history.
GAP_EVENT = "history.gap"
DEFAULT_HISTORY_SIZE = 1000
# Events waiting for one subscriber; a subscriber that falls this far behind is closed.
DEFAULT_QUEUE_SIZE = 1000


class EventData(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The JSON data of an event; fields that do not apply to its type are left out."""

    type: str
    # When the change became visible, in UTC (ISO 8601).
    time: str
    project_id: str
    workflow_id: str | None = None
    data_collection_id: str | None = None
    data_collection_tag: str | None = None
    run_id: str | None = None
    run_tag: str | None = None
    run_location: str | None = None
    file_id: str | None = None
    file_location: str | None = None
    # Who registered the run or file: scan, client or upload.
    origin: str | None = None
    # Why a file failed, and the line of the file where reading stopped, when known.
    reason: str | None = None
    line: int | None = None
    # table.updated: built (whole table written), updated (rows of changed files replaced)
    # or dropped (no file left); the rows before and after, and the table's version.
    outcome: str | None = None
    rows: int | None = None
    rows_before: int | None = None
    aggregation_version: int | None = None
    # schema.changed: the table's columns as {name: DuckDB type} after the change, and the
    # names of the columns added, removed or given another type.
    columns: dict[str, str] | None = None
    columns_added: list[str] | None = None
    columns_removed: list[str] | None = None
    columns_retyped: list[str] | None = None
    # scan.finished: the scan report's id and counts.
    scan_id: str | None = None
    trigger: str | None = None
    runs: int | None = None
    files_total: int | None = None
    files_new: int | None = None
    files_changed: int | None = None
    files_removed: int | None = None
    files_failed: int | None = None
    timed_out: bool | None = None


class Event(msgspec.Struct, kw_only=True, frozen=True):
    id: int
    type: str
    project_id: str
    # The encoded EventData, encoded once for every subscriber.
    data: bytes


class Gap(msgspec.Struct, kw_only=True, frozen=True):
    """Events that a reconnecting client asked for and the history no longer has."""

    last_event_id: int
    # The oldest id that the history still has, or the next id when it is empty.
    oldest_event_id: int


class SubscriptionClosedError(Exception):
    """Raised by Subscription.next once the log closed the subscription; its message gives the reason."""


# (project id, workflow id or None, data collection tag) of a data collection.
CollectionPlace = tuple[str, str | None, str]


class Subscription:
    """The events published after one client subscribed, waited for on an asyncio loop."""

    def __init__(self, log: EventLog, loop: asyncio.AbstractEventLoop, queue_size: int) -> None:
        self._log = log
        self._loop = loop
        self._queue_size = queue_size
        self._pending: deque[Event] = deque()
        self._wake = asyncio.Event()
        # True while a wake-up is scheduled on the loop, so a burst of events schedules one.
        self._wake_scheduled = False
        self.closed_reason: str | None = None

    def _offer(self, event: Event) -> None:
        """Queue an event; called with the log's lock held, on any thread."""
        if self.closed_reason is not None:
            return
        if len(self._pending) >= self._queue_size:
            self._close(
                f"this client fell {self._queue_size} events behind and was disconnected; "
                "reconnect with Last-Event-ID to receive the rest"
            )
            return
        self._pending.append(event)
        self._schedule_wake()

    def _close(self, reason: str) -> None:
        """Close the subscription; called with the log's lock held."""
        if self.closed_reason is None:
            self.closed_reason = reason
            self._schedule_wake()

    def _schedule_wake(self) -> None:
        if self._wake_scheduled:
            return
        try:
            self._loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:
            # The loop is closed, so no stream waits for this subscription any more.
            self.closed_reason = self.closed_reason or "the service is stopping"
            return
        self._wake_scheduled = True

    async def next(self, timeout: float) -> list[Event]:
        """Return the events queued since the last call, waiting at most `timeout` seconds for one.

        Return an empty list when none came in time. Raise SubscriptionClosedError once the
        queued events are returned and the subscription is closed.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            events = self._take()
            if events:
                return events
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            # A wake-up scheduled before the last _take may arrive with nothing queued: wait again.
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except TimeoutError:
                return self._take()

    def _take(self) -> list[Event]:
        with self._log._lock:
            self._wake.clear()
            self._wake_scheduled = False
            events = list(self._pending)
            self._pending.clear()
            reason = self.closed_reason
        if not events and reason is not None:
            raise SubscriptionClosedError(reason)
        return events

    def cancel(self) -> None:
        """Stop receiving events; safe to call more than once."""
        self._log._unsubscribe(self)


class EventLog:
    """Numbered change events of one catalog: the newest `history_size` are kept in memory."""

    def __init__(
        self,
        history_size: int = DEFAULT_HISTORY_SIZE,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        places: Callable[[str], CollectionPlace | None] | None = None,
        workflow_projects: Callable[[str], str | None] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._history: deque[Event] = deque(maxlen=history_size)
        self._queue_size = queue_size
        self._subscribers: set[Subscription] = set()
        self._next_id = time.time_ns() // 1000
        self._closed = False
        self._places = places
        self._workflow_projects = workflow_projects
        # Called with each event that this process publishes (not with relayed ones), so that
        # catalog.relay can share it with the other processes of a DuckLake catalog.
        self.on_local_event: Callable[[Event], None] | None = None

    @property
    def history_size(self) -> int:
        return self._history.maxlen or 0

    def set_history_size(self, size: int) -> None:
        """Keep the newest `size` events from now on; older ones leave the history at once."""
        with self._lock:
            self._history = deque(self._history, maxlen=size)

    @property
    def last_event_id(self) -> int:
        """Return the id of the newest event, or the id before the first one when none was published."""
        with self._lock:
            return self._next_id - 1

    def publish(self, data: EventData) -> Event | None:
        """Number an event, keep it in the history and queue it for every subscriber.

        Never raises: a failure is logged and the event is lost, because the change it
        reports is committed already and the writer must go on.
        """
        try:
            event = self._append(data.type, data.project_id, msgspec.json.encode(data))
            if self.on_local_event is not None:
                self.on_local_event(event)
            return event
        except Exception:
            logger.exception("event %s of project %s was not published", data.type, data.project_id)
            return None

    def publish_relayed(self, event_type: str, project_id: str, encoded: bytes) -> Event:
        """Publish an event that another process of the same catalog published, under a new id of this process."""
        return self._append(event_type, project_id, encoded)

    def _append(self, event_type: str, project_id: str, encoded: bytes) -> Event:
        with self._lock:
            event = Event(id=self._next_id, type=event_type, project_id=project_id, data=encoded)
            self._next_id += 1
            self._history.append(event)
            for subscriber in self._subscribers:
                subscriber._offer(event)
        return event

    def subscribe(
        self, loop: asyncio.AbstractEventLoop, last_event_id: int | None = None
    ) -> tuple[Subscription, list[Event], Gap | None]:
        """Start receiving events on `loop`; return the subscription, the missed events and any gap.

        The missed events are those of the history after `last_event_id`. The history and
        the subscription are taken under one lock, so no event is missed or sent twice in
        between. A gap is returned when events after `last_event_id` left the history, or
        when the id was never issued by this process (an earlier process, or a wrong id).
        """
        with self._lock:
            subscription = Subscription(self, loop, self._queue_size)
            if self._closed:
                subscription._close("the service is stopping")
                return subscription, [], None
            self._subscribers.add(subscription)
            if last_event_id is None:
                return subscription, [], None
            oldest = self._history[0].id if self._history else self._next_id
            missed = [event for event in self._history if event.id > last_event_id]
            gap = None
            if last_event_id < oldest - 1 or last_event_id >= self._next_id:
                gap = Gap(last_event_id=last_event_id, oldest_event_id=oldest)
            return subscription, missed, gap

    def _unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(subscription)

    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def close(self) -> None:
        """Close every subscription, so streams end when the service stops; later publishes only fill the history."""
        with self._lock:
            self._closed = True
            for subscriber in self._subscribers:
                subscriber._close("the service is stopping; reconnect with Last-Event-ID once it is back")
            self._subscribers.clear()

    # Helpers for the catalog's write paths. Each publishes after the change is committed,
    # and looks up the project of what changed. They never raise.

    def table_updated(
        self,
        collection_id: str,
        *,
        outcome: str,
        rows: int,
        rows_before: int | None,
        aggregation_version: int | None,
    ) -> None:
        """Publish `table.updated` for a collection's table that was built, updated or dropped."""
        place = self._place(collection_id)
        if place is None:
            return
        self.publish(
            EventData(
                type="table.updated",
                time=_now(),
                project_id=place[0],
                workflow_id=place[1],
                data_collection_id=collection_id,
                data_collection_tag=place[2],
                outcome=outcome,
                rows=rows,
                rows_before=rows_before,
                aggregation_version=aggregation_version,
            )
        )

    def schema_changed(self, collection_id: str, before: dict[str, str], after: dict[str, str]) -> None:
        """Publish `schema.changed` when a table's columns or their types differ from `before`."""
        if before == after:
            return
        place = self._place(collection_id)
        if place is None:
            return
        self.publish(
            EventData(
                type="schema.changed",
                time=_now(),
                project_id=place[0],
                workflow_id=place[1],
                data_collection_id=collection_id,
                data_collection_tag=place[2],
                columns=after,
                columns_added=[name for name in after if name not in before],
                columns_removed=[name for name in before if name not in after],
                columns_retyped=[name for name in after if name in before and before[name] != after[name]],
            )
        )

    def runs_added(self, runs: Iterable[RunRecord]) -> None:
        """Publish `run.added` for each run."""
        for run in runs:
            project_id = self._workflow_project(run.workflow_id)
            if project_id is None:
                continue
            self.publish(
                EventData(
                    type="run.added",
                    time=_now(),
                    project_id=project_id,
                    workflow_id=run.workflow_id,
                    run_id=run.id,
                    run_tag=run.run_tag,
                    run_location=run.run_location,
                    origin=run.origin,
                )
            )

    def files_added(self, files: Iterable[FileRecord]) -> None:
        """Publish `file.added` for each file, and `file.failed` too for one registered as failed."""
        for file in files:
            self._publish_file("file.added", file, None, None)
            if file.status == "failed":
                self._publish_file("file.failed", file, file.error, file.error_line)

    def file_failed(self, file: FileRecord, reason: str | None, line: int | None) -> None:
        """Publish `file.failed` for a file that could not be read."""
        self._publish_file("file.failed", file, reason, line)

    def scan_finished(
        self,
        *,
        project_id: str,
        workflow_id: str,
        scan_id: str,
        trigger: str,
        runs: int,
        files_total: int,
        files_new: int,
        files_changed: int,
        files_removed: int,
        files_failed: int,
        timed_out: bool = False,
    ) -> None:
        """Publish `scan.finished` with the counts of a workflow's scan, after its tables were updated."""
        self.publish(
            EventData(
                type="scan.finished",
                time=_now(),
                project_id=project_id,
                workflow_id=workflow_id,
                scan_id=scan_id,
                trigger=trigger,
                runs=runs,
                files_total=files_total,
                files_new=files_new,
                files_changed=files_changed,
                files_removed=files_removed,
                files_failed=files_failed,
                timed_out=timed_out,
            )
        )

    def _publish_file(self, event_type: str, file: FileRecord, reason: str | None, line: int | None) -> None:
        place = self._place(file.data_collection_id)
        if place is None:
            return
        self.publish(
            EventData(
                type=event_type,
                time=_now(),
                project_id=place[0],
                workflow_id=file.workflow_id,
                data_collection_id=file.data_collection_id,
                data_collection_tag=place[2],
                run_id=file.run_id,
                run_tag=file.run_tag,
                file_id=file.id,
                file_location=file.file_location,
                origin=file.origin,
                reason=reason,
                line=line,
            )
        )

    def _place(self, collection_id: str) -> CollectionPlace | None:
        """Return the project, workflow and tag of a collection, or None when it is gone or the lookup fails."""
        if self._places is None:
            return None
        try:
            return self._places(collection_id)
        except Exception:
            logger.exception("no event published for data collection %s: its project could not be read", collection_id)
            return None

    def _workflow_project(self, workflow_id: str) -> str | None:
        if self._workflow_projects is None:
            return None
        try:
            return self._workflow_projects(workflow_id)
        except Exception:
            logger.exception("no event published for workflow %s: its project could not be read", workflow_id)
            return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


__all__ = [
    "EVENT_TYPES",
    "GAP_EVENT",
    "Event",
    "EventData",
    "EventLog",
    "Gap",
    "Subscription",
    "SubscriptionClosedError",
]
