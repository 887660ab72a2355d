"""Watch workflow locations for changes and rescan a workflow once its files are quiet.

Events only make ingestion faster: each one marks its workflow as changed, and the
workflow is rescanned when no event has arrived for its `settle_seconds`. The scheduled
reconcile still walks every location, so a lost event costs latency, not correctness.
When the kernel reports lost events (an inotify queue overflow), or a watch stops and is
restarted, the whole workflow is rescanned the same way.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping

import msgspec
from watchdog.events import EVENT_TYPE_EVENTS_LOST, EventsLostEvent, FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserverVFS

from config import Project, Workflow
from ingestor.discover import IgnoreRules

logger = logging.getLogger(__name__)

# File systems on which no change event arrives from other machines, so they are polled.
NETWORK_FILE_SYSTEMS = ("nfs", "nfs4", "cifs", "smb", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph", "9p")
MOUNT_TABLE = "/proc/self/mounts"
POLL_INTERVAL_SECONDS = 10.0
# How often the settle thread checks that every observer thread is still alive.
OBSERVER_CHECK_SECONDS = 2.0
_WAKE_SECONDS = 0.2
# Event types that never change what a scan finds: inotify opens and read-only closes.
_IGNORED_EVENT_TYPES = ("opened", "closed_no_write")


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


class ChangeHandler(FileSystemEventHandler):
    """Handler that marks the workflow of one location as changed, for events that a scan could see."""

    def __init__(
        self,
        workflow_id: str,
        location: str,
        runs_in_subfolders: bool,
        ignore: IgnoreRules,
        notify: Callable[[str], None],
        report_lost: Callable[[str, str], None],
    ) -> None:
        self.workflow_id = workflow_id
        self.location = location
        self.runs_in_subfolders = runs_in_subfolders
        self.ignore = ignore
        self.notify = notify
        self.report_lost = report_lost

    def on_any_event(self, event: FileSystemEvent) -> None:
        # An exception escaping a callback would end the observer thread, so all are caught here.
        try:
            if event.event_type != EVENT_TYPE_EVENTS_LOST and self._is_relevant(event):
                self.notify(self.workflow_id)
        except Exception:
            logger.exception(
                "change event for workflow %s could not be handled; the next reconcile finds it", self.workflow_id
            )

    def on_events_lost(self, event: EventsLostEvent) -> None:
        """Request a rescan of the whole workflow, because the kernel dropped change events."""
        try:
            self.report_lost(self.workflow_id, self.location)
        except Exception:
            logger.exception(
                "lost change events of workflow %s could not be handled; the next reconcile finds the changes",
                self.workflow_id,
            )

    def _is_relevant(self, event: FileSystemEvent) -> bool:
        if event.event_type in _IGNORED_EVENT_TYPES:
            return False
        if event.is_directory and event.event_type == "modified":
            # watchdog adds one for the parent folder beside each event of an entry in it.
            return False
        paths = [event.src_path, getattr(event, "dest_path", "")]
        return any(not self._ignores(os.fsdecode(path), event.is_directory) for path in paths if path)

    def _ignores(self, path: str, is_directory: bool) -> bool:
        """Return True when a scan never reads the file or folder at `path`."""
        relative = os.path.relpath(path, self.location)
        if relative == os.curdir or relative.split(os.sep)[0] == os.pardir:
            return False  # The location itself, or a path moved out of it.
        parts = relative.split(os.sep)
        if any(part.startswith(".") for part in parts):
            return True  # Scans skip hidden files and hidden folders with all they contain.
        if is_directory:
            # A folder event stands for the files inside it, which the rules have not seen.
            return False
        if self.runs_in_subfolders and len(parts) > 1:
            parts = parts[1:]  # The rules take the path inside the run folder.
        return self.ignore.ignores("/".join(parts))


class _Watch:
    """One watched location: its handler, its observer (None while it cannot be watched) and its mode."""

    def __init__(self, handler: ChangeHandler, index: int) -> None:
        self.handler = handler
        # Position of this location in Watcher.locations.
        self.index = index
        self.observer: BaseObserver | None = None
        self.mode = ""
        # Set once a failed restart is logged, so a location that stays broken logs once.
        self.failure_reported = False


class Watcher:
    """Observers for every workflow location, and the thread that rescans quiet workflows.

    The thread ("ingest-settle") also replaces an observer whose thread died, and then
    rescans the workflow for the changes the dead observer missed.
    """

    def __init__(
        self,
        projects: list[Project],
        rescan: Callable[[str, str], None],
        settle_seconds: Mapping[str, float],
        requested_mode: str = "auto",
        ignore: IgnoreRules | None = None,
        poll_seconds: float = POLL_INTERVAL_SECONDS,
    ) -> None:
        self._projects = projects
        # Called with (workflow id, trigger): event, overflow or watch-restart.
        self._rescan = rescan
        self._settle_seconds = dict(settle_seconds)
        self._requested_mode = requested_mode
        self._poll_seconds = poll_seconds
        self._ignore = ignore if ignore is not None else IgnoreRules()
        self._watches: list[_Watch] = []
        # Workflow id: (monotonic time of its last change, trigger of its rescan).
        self._changed: dict[str, tuple[float, str]] = {}
        # Workflows whose lost events were logged and whose rescan has not finished yet.
        self._lost: set[str] = set()
        self._lock = threading.Lock()
        # Held while observers are started or stopped, so stop() leaves none behind.
        self._observers_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._limit_reported = False
        self.locations: list[LocationWatch] = []

    def start(self) -> None:
        for project in self._projects:
            for workflow in project.workflows:
                assert workflow.id is not None
                runs_in_subfolders = workflow.data_location.structure == "sequencing-runs"
                for location in workflow.data_location.locations:
                    self._watch(workflow.id, location, runs_in_subfolders)
        self._thread = threading.Thread(target=self._run, name="ingest-settle", daemon=True)
        self._thread.start()

    def add_workflow(self, workflow: Workflow, settle_seconds: float) -> None:
        """Watch the locations of a workflow added while the service runs (a project sent over the API)."""
        assert workflow.id is not None
        self._settle_seconds[workflow.id] = settle_seconds
        runs_in_subfolders = workflow.data_location.structure == "sequencing-runs"
        with self._observers_lock:
            if self._stopping.is_set():
                return
            for location in workflow.data_location.locations:
                self._watch(workflow.id, location, runs_in_subfolders)

    def remove_workflow(self, workflow_id: str) -> None:
        """Stop watching the locations of a workflow whose project was changed or deleted."""
        with self._observers_lock:
            removed = [watch for watch in self._watches if watch.handler.workflow_id == workflow_id]
            kept = [watch for watch in self._watches if watch.handler.workflow_id != workflow_id]
            for watch in removed:
                if watch.observer is not None:
                    _discard(watch.observer)
                    watch.observer = None
            # The status shares `locations`, so it is changed in place, in the order of the watches.
            entries = [self.locations[watch.index] for watch in kept if watch.index < len(self.locations)]
            for index, watch in enumerate(kept):
                watch.index = index
            self._watches[:] = kept
            self.locations[:] = entries
        with self._lock:
            self._changed.pop(workflow_id, None)

    def observer(self, location: str) -> BaseObserver | None:
        """Return the observer that watches `location` now, or None. Meant for diagnostics and tests."""
        for watch in self._watches:
            if watch.handler.location == location:
                return watch.observer
        return None

    def _watch(self, workflow_id: str, location: str, runs_in_subfolders: bool) -> None:
        if not os.path.isdir(location):
            logger.warning("location %s of workflow %s is missing; only the reconcile checks it", location, workflow_id)
            return
        handler = ChangeHandler(
            workflow_id, location, runs_in_subfolders, self._ignore, self.mark_changed, self.report_events_lost
        )
        watch = _Watch(handler, len(self.locations))
        try:
            self._open(watch)
        except OSError as error:
            logger.warning("cannot watch %s (%s); only the reconcile checks it", location, error)
            return
        self._watches.append(watch)

    def _open(self, watch: _Watch) -> None:
        """Start an observer for the watch's location and record its mode in `locations`.

        In events mode, the inotify watch limit (ENOSPC) and the instance limit (EMFILE)
        make the location fall back to polling. Other errors are raised.
        """
        location = watch.handler.location
        mode, reason = choose_mode(location, self._requested_mode)
        try:
            watch.observer = self._observe(location, watch.handler, mode)
        except OSError as error:
            if mode != "events" or error.errno not in (errno.ENOSPC, errno.EMFILE):
                raise
            self._report_watch_limit(location)
            mode, reason = "polling", "the inotify watch limit is reached"
            watch.observer = self._observe(location, watch.handler, mode)
        watch.mode = mode
        entry = LocationWatch(workflow_id=watch.handler.workflow_id, location=location, mode=mode, reason=reason)
        if watch.index < len(self.locations):
            self.locations[watch.index] = entry
        else:
            self.locations.append(entry)
        logger.info("watching %s of workflow %s by %s: %s", location, watch.handler.workflow_id, mode, reason)

    def _observe(self, location: str, handler: ChangeHandler, mode: str) -> BaseObserver:
        observer: BaseObserver
        if mode == "polling":
            # lstat, not stat: a symlinked folder is not walked, so a link loop (`loop -> .`) or a
            # link to /usr cannot make each poll endless. Changes behind links wait for the reconcile.
            observer = PollingObserverVFS(os.lstat, os.scandir, polling_interval=self._poll_seconds)
        else:
            observer = Observer()
        observer.name = f"watch-{mode}-{os.path.basename(location.rstrip('/')) or 'root'}"
        try:
            observer.schedule(handler, location, recursive=True)
            observer.start()
        except BaseException:
            # schedule() may have started watchdog's inotify reader thread already.
            _discard(observer)
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

    @property
    def pending(self) -> int:
        """Count the workflows marked changed whose rescan has not started yet."""
        with self._lock:
            return len(self._changed)

    def mark_changed(self, workflow_id: str, trigger: str = "event") -> None:
        """Record that a workflow changed, so it is rescanned once quiet for its settle_seconds.

        A pending `overflow` or `watch-restart` trigger is kept until that rescan runs.
        """
        with self._lock:
            pending = self._changed.get(workflow_id)
            if pending is not None and pending[1] != "event":
                trigger = pending[1]
            self._changed[workflow_id] = (time.monotonic(), trigger)

    def report_events_lost(self, workflow_id: str, location: str) -> None:
        """Rescan the whole workflow once quiet, because change events under `location` were lost.

        The warning is logged once per burst, and again only after the rescan that follows it.
        """
        with self._lock:
            first = workflow_id not in self._lost
            self._lost.add(workflow_id)
        if first:
            logger.warning(
                "change events under %s of workflow %s were lost (the inotify event queue overflowed); "
                "rescanning the whole workflow once changes settle. If this recurs, raise "
                "fs.inotify.max_queued_events with sysctl",
                location,
                workflow_id,
            )
        self.mark_changed(workflow_id, "overflow")

    def _run(self) -> None:
        next_check = time.monotonic() + OBSERVER_CHECK_SECONDS
        while not self._stopping.wait(_WAKE_SECONDS):
            self._rescan_quiet_workflows()
            if time.monotonic() < next_check:
                continue
            next_check = time.monotonic() + OBSERVER_CHECK_SECONDS
            for watch in self._watches:
                try:
                    self._check_observer(watch)
                except Exception:
                    # The loop must outlive any one restart, and the next check tries again.
                    logger.exception(
                        "restarting the watch of %s (workflow %s) failed; the next check retries it",
                        watch.handler.location,
                        watch.handler.workflow_id,
                    )

    def _rescan_quiet_workflows(self) -> None:
        now = time.monotonic()
        with self._lock:
            quiet = [
                (workflow_id, trigger)
                for workflow_id, (last, trigger) in self._changed.items()
                if now - last >= self._settle_seconds.get(workflow_id, 0.0)
            ]
            for workflow_id, _ in quiet:
                del self._changed[workflow_id]
        for workflow_id, trigger in quiet:
            try:
                self._rescan(workflow_id, trigger)
            except Exception:
                # The loop must outlive any one rescan, and the reconcile retries later.
                logger.exception(
                    "rescan of workflow %s after a change failed; the next reconcile retries it", workflow_id
                )
            finally:
                # Every rescan reads the whole workflow, so a later loss of events is a new burst.
                with self._lock:
                    self._lost.discard(workflow_id)

    def _check_observer(self, watch: _Watch) -> None:
        """Replace the watch's observer when its thread or one of its emitter threads died."""
        observer = watch.observer
        if observer is not None and observer.is_alive() and all(emitter.is_alive() for emitter in observer.emitters):
            return

        location, workflow_id = watch.handler.location, watch.handler.workflow_id
        with self._observers_lock:
            if self._stopping.is_set():
                return
            if observer is not None:
                logger.warning(
                    "the %s watch of %s (workflow %s) stopped; starting a new one, then rescanning the workflow",
                    watch.mode,
                    location,
                    workflow_id,
                )
                watch.observer = None
                _discard(observer)
            if not os.path.isdir(location):
                self._report_restart_failure(watch, "the folder is missing")
                return
            try:
                self._open(watch)
            except OSError as error:
                self._report_restart_failure(watch, str(error))
                return
        watch.failure_reported = False
        self.mark_changed(workflow_id, "watch-restart")

    def _report_restart_failure(self, watch: _Watch, reason: str) -> None:
        if watch.failure_reported:
            return
        watch.failure_reported = True
        logger.warning(
            "cannot watch %s of workflow %s again (%s); retrying every %g s, and the reconcile checks it meanwhile",
            watch.handler.location,
            watch.handler.workflow_id,
            reason,
            OBSERVER_CHECK_SECONDS,
        )

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._observers_lock:
            observers = [watch.observer for watch in self._watches if watch.observer is not None]
            for observer in observers:
                observer.stop()
            for observer in observers:
                observer.join(timeout=10)
            self._watches.clear()


def _discard(observer: BaseObserver) -> None:
    """Stop the remaining threads of a dead or unstarted observer (its emitters, its inotify reader)."""
    try:
        observer.stop()
        if observer.is_alive():
            observer.join(timeout=5)
    except Exception:
        logger.debug("an observer that is no longer used could not be stopped cleanly", exc_info=True)
