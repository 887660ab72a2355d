"""Watch workflow locations for changes and rescan a workflow once its files are quiet.

Events only make ingestion faster: each one marks its workflow as changed, and the
workflow is rescanned when no event has arrived for `settle_seconds`. The scheduled
reconcile still walks every location, so a lost event costs latency, not correctness.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable

import msgspec
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from config import Project
from ingestor.discover import is_temporary

logger = logging.getLogger(__name__)

# File systems on which no change event arrives from other machines, so they are polled.
NETWORK_FILE_SYSTEMS = ("nfs", "nfs4", "cifs", "smb", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph", "9p")
MOUNT_TABLE = "/proc/self/mounts"
POLL_INTERVAL_SECONDS = 2.0
_WAKE_SECONDS = 0.2


class LocationWatch(msgspec.Struct, kw_only=True, frozen=True):
    """The watch mode of one workflow location, for the log and the status API."""

    workflow_id: str
    location: str
    # events (inotify and its peers) or polling.
    mode: str
    reason: str


def file_system_type(path: str, mount_table: str = MOUNT_TABLE) -> str | None:
    """Return the type of the file system that contains `path`, from the mount table."""
    real = os.path.realpath(path)
    best, best_type = "", None
    try:
        with open(mount_table, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        # The mount table escapes spaces in mount points as \040.
        mount_point = fields[1].replace("\\040", " ")
        inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, fields[2]
    return best_type


def choose_mode(path: str, requested: str, mount_table: str = MOUNT_TABLE) -> tuple[str, str]:
    """Return (mode, reason) for a location: `events` or `polling`."""
    if requested != "auto":
        return requested, f"watch_mode = {requested!r}"
    kind = file_system_type(path, mount_table)
    if kind is not None and (kind in NETWORK_FILE_SYSTEMS or kind.startswith("fuse")):
        return "polling", f"{kind} file systems send no change events from other machines"
    return "events", f"local file system ({kind or 'type unknown'})"


class _Handler(FileSystemEventHandler):
    def __init__(self, workflow_id: str, notify: Callable[[str], None]) -> None:
        self.workflow_id = workflow_id
        self.notify = notify

    def on_any_event(self, event: FileSystemEvent) -> None:
        # An exception escaping a callback would end the observer thread, so all are caught here.
        try:
            paths = [event.src_path, getattr(event, "dest_path", "")]
            names = [os.path.basename(os.fsdecode(path)) for path in paths if path]
            if event.event_type in ("opened", "closed_no_write") or all(is_temporary(name) for name in names):
                return
            self.notify(self.workflow_id)
        except Exception:
            logger.exception(
                "change event for workflow %s could not be handled; the next reconcile finds it", self.workflow_id
            )


class Watcher:
    """Observers for every workflow location, and the thread that rescans quiet workflows."""

    def __init__(
        self,
        projects: list[Project],
        rescan: Callable[[str], None],
        settle_seconds: float,
        requested_mode: str = "auto",
    ) -> None:
        self._projects = projects
        self._rescan = rescan
        self._settle_seconds = settle_seconds
        self._requested_mode = requested_mode
        self._observers: list[BaseObserver] = []
        self._changed: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._limit_reported = False
        self.locations: list[LocationWatch] = []

    def start(self) -> None:
        for project in self._projects:
            for workflow in project.workflows:
                assert workflow.id is not None
                for location in workflow.data_location.locations:
                    self._watch(workflow.id, location)
        self._thread = threading.Thread(target=self._run, name="ingest-settle", daemon=True)
        self._thread.start()

    def _watch(self, workflow_id: str, location: str) -> None:
        if not os.path.isdir(location):
            logger.warning("location %s of workflow %s is missing; only the reconcile checks it", location, workflow_id)
            return
        mode, reason = choose_mode(location, self._requested_mode)
        handler = _Handler(workflow_id, self.mark_changed)
        try:
            observer = self._observe(location, handler, mode)
        except OSError as error:
            if mode != "events" or error.errno not in (errno.ENOSPC, errno.EMFILE):
                logger.warning("cannot watch %s (%s); only the reconcile checks it", location, error)
                return
            self._report_watch_limit(location)
            mode, reason = "polling", "the inotify watch limit is reached"
            observer = self._observe(location, handler, mode)
        self._observers.append(observer)
        self.locations.append(LocationWatch(workflow_id=workflow_id, location=location, mode=mode, reason=reason))
        logger.info("watching %s of workflow %s by %s: %s", location, workflow_id, mode, reason)

    def _observe(self, location: str, handler: _Handler, mode: str) -> BaseObserver:
        observer: BaseObserver = PollingObserver(timeout=POLL_INTERVAL_SECONDS) if mode == "polling" else Observer()
        observer.name = f"watch-{mode}-{os.path.basename(location.rstrip('/')) or 'root'}"
        observer.schedule(handler, location, recursive=True)
        try:
            observer.start()
        except BaseException:
            observer.unschedule_all()
            raise
        return observer

    def _report_watch_limit(self, location: str) -> None:
        if self._limit_reported:
            return
        self._limit_reported = True
        logger.warning(
            "the inotify watch limit (fs.inotify.max_user_watches) is reached while watching %s; "
            "polling it instead. Raise the limit with `sysctl fs.inotify.max_user_watches=524288`",
            location,
        )

    def mark_changed(self, workflow_id: str) -> None:
        """Record that a workflow changed; it is rescanned once quiet for settle_seconds."""
        with self._lock:
            self._changed[workflow_id] = time.monotonic()

    def _run(self) -> None:
        while not self._stopping.wait(_WAKE_SECONDS):
            now = time.monotonic()
            with self._lock:
                quiet = [key for key, last in self._changed.items() if now - last >= self._settle_seconds]
                for key in quiet:
                    del self._changed[key]
            for workflow_id in quiet:
                try:
                    self._rescan(workflow_id)
                except Exception:
                    # The loop must outlive any one rescan; the reconcile retries later.
                    logger.exception(
                        "rescan of workflow %s after a change failed; the next reconcile retries it", workflow_id
                    )

    def stop(self) -> None:
        self._stopping.set()
        for observer in self._observers:
            observer.stop()
        for observer in self._observers:
            observer.join(timeout=10)
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._observers.clear()
