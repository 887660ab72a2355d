"""Share change events between the processes of one DuckLake catalog.

Each process writes the events it publishes into the catalog table `change_events`, a batch
per transaction, and reads the rows that the other processes wrote after the last row id it
saw, every POLL_SECONDS. DuckLake numbers a table's rows across commits, so row ids grow. A
read event is published in this process's EventLog under a local id, so `/events` streams
the changes of every writer.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import deque

from catalog.errors import CatalogError
from catalog.events import Event, EventLog
from catalog.store import Store

logger = logging.getLogger(__name__)

# Seconds between two reads of the other processes' events, and between two writes of this
# process's events: an event reaches the other processes within about twice this.
POLL_SECONDS = 0.25
# Events waiting to be written; beyond this the oldest are dropped (and logged).
MAX_PENDING = 10_000


class EventRelay:
    """A thread that writes this process's events to the catalog and publishes the other processes' events."""

    def __init__(self, store: Store, log: EventLog, poll_seconds: float = POLL_SECONDS) -> None:
        self._store = store
        self._log = log
        self._poll_seconds = poll_seconds
        self.origin = secrets.token_hex(8)
        self._pending: deque[Event] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._last_row: int | None = None
        self._thread = threading.Thread(target=self._run, name="catalog-event-relay", daemon=True)

    def start(self) -> None:
        """Start from the events committed until now, then relay new ones until `stop`."""
        rows = self._store.query("SELECT coalesce(max(rowid), -1) FROM change_events")
        self._last_row = int(rows[0][0])
        self._log.on_local_event = self._queue
        self._thread.start()
        logger.info("relaying change events of catalog %s between processes (origin %s)", self._store.path, self.origin)

    def stop(self) -> None:
        self._log.on_local_event = None
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        self._flush()

    def _queue(self, event: Event) -> None:
        with self._lock:
            if len(self._pending) >= MAX_PENDING:
                dropped = self._pending.popleft()
                logger.warning(
                    "change event %s of project %s not shared: too many waiting", dropped.type, dropped.project_id
                )
            self._pending.append(event)

    def _run(self) -> None:
        while not self._stopping.wait(self._poll_seconds):
            # One failed round is logged and the next one tries again, so a restart of
            # PostgreSQL delays events instead of stopping them.
            try:
                self._flush()
                self._read()
            except (CatalogError, RuntimeError) as error:
                logger.warning("relaying change events failed: %s; retrying in %.2f s", error, self._poll_seconds)
            except Exception:
                logger.exception("relaying change events failed; retrying in %.2f s", self._poll_seconds)

    def _flush(self) -> None:
        with self._lock:
            batch = list(self._pending)
            self._pending.clear()
        if not batch:
            return
        rows = [(self.origin, event.type, event.project_id, event.data.decode()) for event in batch]
        try:
            self._store.write(
                lambda connection: connection.executemany(
                    "INSERT INTO change_events VALUES (?, ?, ?, ?, now()::TIMESTAMP)", rows
                )
            )
        except BaseException:
            with self._lock:
                self._pending.extendleft(reversed(batch))
            raise

    def _read(self) -> None:
        rows = self._store.query(
            "SELECT rowid, origin, type, project_id, data FROM change_events WHERE rowid > ? ORDER BY rowid",
            [self._last_row],
        )
        for row_id, origin, event_type, project_id, data in rows:
            self._last_row = int(row_id)
            if origin == self.origin:
                continue
            self._log.publish_relayed(str(event_type), str(project_id), str(data).encode())
