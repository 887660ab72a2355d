"""The ingestor: scans every configured project at start and reconciles on a schedule."""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor as FutureExecutor
from datetime import datetime
from functools import partial

import msgspec
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from catalog import Catalog, CatalogError, CatalogUnwritableError, CollectionRecord, ScanReport, utc_now
from config import DataCollection, Project, Settings, Workflow, WorkflowTimings, derive_id
from ingestor.aggregate import CollectionAggregate, aggregate_collection
from ingestor.deadline import ScanDeadline, ScanStopped, ScanTimedOut
from ingestor.discover import IgnoreRules
from ingestor.joins import run_joins
from ingestor.metrics import IngestMetrics
from ingestor.progress import ProgressCallback, ScanProgress
from ingestor.registered import check_registered_files, registered_file_roots
from ingestor.scan import WorkflowScan, download_roots, scan_workflow
from ingestor.uploads import UploadFolder
from ingestor.watch import LocationWatch, Watcher

logger = logging.getLogger(__name__)

# Failed files listed by name in one collection of a scan report; files_failed counts them all.
MAX_FAILURES_REPORTED = 100
# Seconds an upload waits for a running scan; after that, its response does not wait for its rows.
UPLOAD_WAIT_SECONDS = 60.0


class ProjectScan(msgspec.Struct, kw_only=True):
    """The result of scanning and aggregating one project."""

    project_id: str
    name: str
    workflows: list[WorkflowScan]
    tables: list[CollectionAggregate]
    seconds: float
    # The outcome of each persisted join of the project, run after its tables.
    joins: list[CollectionAggregate] = msgspec.field(default_factory=list)

    @property
    def unsettled(self) -> int:
        """Count the files left for a later scan because they were modified just now."""
        return sum(scan.unsettled for scan in self.workflows)

    @property
    def files_failed(self) -> int:
        """Count the files that failed, plus one for each collection whose aggregation raised."""
        errors = sum(1 for table in self.tables if table.outcome == "error")
        return (
            errors
            + sum(table.files_failed for table in self.tables)
            + sum(collection.empty_files for scan in self.workflows for collection in scan.collections)
        )


# Words for each trigger in the log line of a one-workflow rescan.
_RESCAN_REASONS = {
    "event": "after a change",
    "overflow": "after change events were lost",
    "watch-restart": "after its watch was restarted",
    "schedule": "on schedule",
    "registration": "after a client registered or deleted files",
    "resume": "after the catalog could be written again",
}


class IngestStatus(msgspec.Struct, kw_only=True):
    # starting, scanning, idle, paused (the catalog cannot be written) or stopped.
    state: str = "starting"
    # The start-up scan: pending (not begun), running, finished or failed (the start raised;
    # the reason is in last_error). The service is ready for traffic once it is finished.
    startup: str = "pending"
    last_scan_started: str | None = None
    last_scan_finished: str | None = None
    scans_completed: int = 0
    last_error: str | None = None
    # Workflow scans that ran past their reconcile deadline since the service started.
    scans_timed_out: int = 0
    # How each workflow location is watched.
    locations: list[LocationWatch] = msgspec.field(default_factory=list)
    # Why the catalog cannot be written, while ingestion is paused for it: the cause, then
    # DuckDB's message with the file. None while writes work; the service is not ready meanwhile.
    write_error: str | None = None


class Ingestor:
    """Keeps the catalog in step with the workflow folders of the configured projects."""

    def __init__(self, catalog: Catalog, settings: Settings, projects: list[Project]) -> None:
        self.catalog = catalog
        self.settings = settings
        # The projects of the config files, then those sent over the API (see register_projects).
        self.projects = list(projects)
        self._configured = list(projects)
        # Projects sent over the API, whose clients register their runs and files: the id of
        # the user who last set each one's locations, by project id.
        self._sent: dict[str, str | None] = {}
        self._projects_lock = threading.Lock()
        # Runs the rescans that clients ask for when the service has no watcher.
        self._requests: FutureExecutor | None = None
        # Rescans submitted to `_requests` that have not finished yet.
        self._requests_pending = 0
        self._requests_lock = threading.Lock()
        # The thread of the start-up scan while the service accepts requests (start_in_background).
        self._starter: threading.Thread | None = None
        self.status = IngestStatus()
        # True in a process that only serves the API (see serve_only).
        self.serving_only = False
        self.metrics = IngestMetrics()
        self._scan_lock = threading.Lock()
        # Set by stop(): a running scan ends after the step it is in.
        self._stopping = threading.Event()
        # Collections whose files could not be read, by inputs fingerprint (see aggregate_collection).
        self._unreadable: dict[str, str] = {}
        # When each missing location was first found missing (monotonic seconds).
        self._missing_since: dict[str, float] = {}
        # Content hashes computed by a scan that was stopped, by workflow id (see scan_workflow).
        self._known_hashes: dict[str, dict[str, tuple[int, int, str]]] = {}
        self._ignore = IgnoreRules(settings.ingest.ignore)
        self._scheduler: BackgroundScheduler | None = None
        self._watcher: Watcher | None = None
        # Set by a caller that displays progress, such as `depictiod scan` on a terminal.
        self.progress: ProgressCallback | None = None
        self.uploads = UploadFolder.for_catalog(catalog.path)
        # How long an upload waits for a running scan before its aggregation is left to a later one.
        self.upload_wait_seconds = UPLOAD_WAIT_SECONDS
        # False until register_projects has stored the projects, which a catalog that cannot be
        # written at start-up delays until writes work.
        self._registered = False
        # Set when a write failure paused ingestion, until _resume scans every project again.
        self._resume_needed = False

    @property
    def watcher(self) -> Watcher | None:
        """The watcher of the workflow locations, while the service runs with watch_mode other than off."""
        return self._watcher

    def register_projects(self) -> None:
        """Store the configured projects in the catalog, dropping ones no longer configured.

        The projects sent over the API, which the catalog keeps, join the configured ones.
        """
        self.catalog.projects.sync_from_config(self._configured)
        sent = self.catalog.projects.list_sent()
        with self._projects_lock:
            self.projects = [*self._configured, *(record.project for record in sent)]
            self._sent = {record.id: record.placed_by for record in sent}
        # This runs before the service accepts uploads, so unregistered and partial files can go too.
        self.uploads.sweep(self.catalog.projects.collection_ids(), self.catalog.files.upload_locations())

    def _client_roots(self, project_id: str) -> list[str] | None:
        """Return the folders a sent project's files must lie in, or None when anywhere in its locations will do.

        Locations set by an administrator are trusted. Those set by anyone else count only
        under ingest.client_roots, checked again at every read, because a folder that did not
        exist when the project was sent may become a link to elsewhere later.
        """
        placed_by = self._sent.get(project_id)
        user = self.catalog.users.get(placed_by) if placed_by else None
        if user is not None and user.is_admin:
            return None
        return list(self.settings.ingest.client_roots)

    def file_roots(self, project_id: str, workflow: Workflow) -> list[str]:
        """Return the folders that a registered file of `workflow` may resolve into to be downloaded.

        Files of a project from a project file may also link into the `work/` folder beside
        each location and into `ingest.link_roots` (see `download_roots`). Files of a sent
        project may only resolve into the locations that its reads allow.
        """
        if project_id not in self._sent:
            return download_roots(workflow, self.settings.ingest.link_roots)
        # Any signed-in user may send a project, so its downloads never reach into the link
        # roots that the administrator set for the project files.
        roots, _ = registered_file_roots(workflow, [], self._client_roots(project_id))
        return roots

    def is_sent(self, project_id: str) -> bool:
        """Return True when the project was sent over the API, so its clients register its files."""
        return project_id in self._sent

    def project_changed(self, project_id: str) -> None:
        """Take up a project that was sent, changed or deleted over the API.

        Its workflows get their reconcile jobs and watches, and are checked at once.
        """
        record = self.catalog.projects.get(project_id)
        project = record.project if record is not None and record.source == "api" else None
        with self._projects_lock:
            old = [item for item in self.projects if item.id == project_id]
            self.projects = [item for item in self.projects if item.id != project_id]
            self._sent.pop(project_id, None)
            if project is not None and record is not None:
                self.projects.append(project)
                self._sent[project_id] = record.placed_by
        for item in old:
            for workflow in item.workflows:
                self._forget_workflow(str(workflow.id))
        self.uploads.sweep(self.catalog.projects.collection_ids())
        if project is None:
            logger.info("project %s is no longer ingested: it was deleted", project_id)
            return
        if self.serving_only:
            return
        for workflow in project.workflows:
            self._follow_workflow(project, workflow)
            self.request_rescan(str(workflow.id))
        logger.info("ingesting project %s (%s), sent over the API", project.name, project_id)

    def serve_only(self) -> None:
        """Make this ingestor never scan: the process serves the API, and `ingest` processes write (`serve --role api`).

        Its projects and status stay available to the routes, and the start-up scan counts
        as finished, so the process is ready at once.
        """
        self.serving_only = True
        self.status.startup = "finished"

    def request_rescan(self, workflow_id: str) -> None:
        """Check a workflow soon, after a client registered or deleted its runs or files.

        With a watcher, the check waits for the workflow's settle window like a change
        event. Without one, it runs on a worker thread, one at a time. A serving-only
        ingestor leaves the check to the ingest processes, which reconcile every workflow.
        """
        if self._stopping.is_set() or self.serving_only:
            return
        if self._watcher is not None:
            self._watcher.mark_changed(workflow_id, "registration")
            return
        if self._requests is None:
            self._requests = FutureExecutor(max_workers=1, thread_name_prefix="ingest-request")
        with self._requests_lock:
            self._requests_pending += 1
        self._requests.submit(self._rescan_requested, workflow_id)

    @property
    def pending_work(self) -> dict[str, int]:
        """Count the work that waits: workflows changed since their last scan, and rescans clients requested.

        With a watcher, a client's request marks its workflow changed too. Without one, it
        waits in a queue of rescan requests.
        """
        watcher = self._watcher
        return {
            "changed_workflows": watcher.pending if watcher is not None else 0,
            "rescan_requests": self._requests_pending,
        }

    def aggregate_upload(self, collection: CollectionRecord, project_name: str) -> CollectionAggregate | None:
        """Aggregate a collection now, after files were uploaded into it or removed from it.

        The aggregation waits for a running scan, at most `upload_wait_seconds`. When that
        passes, it returns None and requests a rescan of the collection's workflow, which
        aggregates the collection later.
        """
        if not self._scan_lock.acquire(timeout=self.upload_wait_seconds):
            logger.info(
                "collection %s (%s): a scan is still running after %g s, so the upload is aggregated by a later one",
                collection.collection.data_collection_tag,
                collection.id,
                self.upload_wait_seconds,
            )
            if collection.workflow_id is not None:
                self.request_rescan(collection.workflow_id)
            return None
        try:
            # The collection as it is now: changed or deleted meanwhile, it is aggregated so or not at all.
            current = self.catalog.projects.collection(collection.id)
            if current is None:
                return CollectionAggregate(
                    collection_id=collection.id, tag=collection.collection.data_collection_tag, outcome="empty"
                )
            aggregate = self._aggregate(project_name, current.collection)
            for project in list(self.projects):
                if project.id == current.project_id:
                    self._run_joins(project)
            return aggregate
        finally:
            self._scan_lock.release()

    def _rescan_requested(self, workflow_id: str) -> None:
        try:
            self.rescan_workflow(workflow_id, "registration")
        except Exception:
            # The worker must outlive any one rescan, and the reconcile retries later.
            logger.exception(
                "rescan of workflow %s asked by a client failed; the next reconcile retries it", workflow_id
            )
        finally:
            with self._requests_lock:
                self._requests_pending -= 1

    def _follow_workflow(self, project: Project, workflow: Workflow) -> None:
        """Schedule the workflow's reconcile and watch its locations, for a project sent while running."""
        timings = self._timings(project, workflow)
        if self._scheduler is not None and timings.reconcile_seconds > 0:
            self._add_reconcile_job(project, workflow, timings.reconcile_seconds)
        if self._watcher is not None:
            self._watcher.add_workflow(workflow, timings.settle_seconds)

    def _forget_workflow(self, workflow_id: str) -> None:
        if self._scheduler is not None and self._scheduler.get_job(f"reconcile-{workflow_id}") is not None:
            self._scheduler.remove_job(f"reconcile-{workflow_id}")
        if self._watcher is not None:
            self._watcher.remove_workflow(workflow_id)

    def scan_all(self, trigger: str = "schedule") -> list[ProjectScan]:
        """Scan and aggregate every project once; one failing project does not stop the others.

        While the catalog cannot be written, no scan starts, and a running one stops at its
        first rejected write. The result lacks the projects that it did not finish.
        """
        with self._scan_lock:
            if self.catalog.store.write_failure is not None:
                self.status.state = "paused"
                return []
            self.status.state = "scanning"
            self.status.last_scan_started = utc_now().isoformat(sep=" ", timespec="seconds")
            results = []
            for project in list(self.projects):
                try:
                    results.append(self._scan_project(project, trigger))
                except ScanStopped:
                    logger.info("scan stopped before it finished, because the service is stopping")
                    break
                except CatalogUnwritableError:
                    # The catalog logged why, and every project is scanned again once writes work.
                    self.status.state = "paused"
                    return results
                except Exception as error:
                    # One project's failure must not stop the others or the service.
                    logger.exception(
                        "scan of project %s (%s) failed; the next scan retries it", project.name, project.id
                    )
                    self.status.last_error = f"project {project.name!r}: {error}"
            self.status.state = self._resting_state()
            self.status.scans_completed += 1
            self.status.last_scan_finished = utc_now().isoformat(sep=" ", timespec="seconds")
            return results

    def _resting_state(self) -> str:
        """Return the state between scans: paused while the catalog cannot be written, else idle."""
        return "paused" if self.catalog.store.write_failure is not None else "idle"

    def scan_project(self, project_id: str, trigger: str = "api") -> ProjectScan | None:
        """Scan one configured project now; return None when no such project is configured."""
        found = [project for project in self.projects if project.id == project_id]
        if not found:
            return None
        with self._scan_lock:
            return self._scan_project(found[0], trigger)

    def _scan_project(self, project: Project, trigger: str) -> ProjectScan:
        """Scan every workflow of `project`, then rebuild the tables whose inputs changed."""
        assert project.id is not None
        started = time.monotonic()
        scans = []
        tables = []
        for workflow in project.workflows:
            try:
                scan, workflow_tables = self._scan_workflow(project, workflow, trigger)
            except ScanTimedOut:
                continue  # _scan_workflow logged it, and the next reconcile starts fresh.
            scans.append(scan)
            tables.extend(workflow_tables)
        # Joins read the tables of any workflow of the project, so they run once all are built.
        joins = self._run_joins(project)

        self.catalog.store.checkpoint()
        seconds = time.monotonic() - started
        logger.info(
            "scanned project %s (%s): %d runs, %d files, %d rows, %d files failed, %.2f s",
            project.name,
            project.id,
            sum(scan.runs for scan in scans),
            sum(c.files for scan in scans for c in scan.collections),
            sum(table.rows for table in tables),
            sum(table.files_failed for table in tables),
            seconds,
        )
        return ProjectScan(
            project_id=project.id, name=project.name, workflows=scans, tables=tables, seconds=seconds, joins=joins
        )

    def _timings(self, project: Project, workflow: Workflow) -> WorkflowTimings:
        return self.settings.ingest.timings(project.name, workflow.name)

    def _scan_workflow(
        self, project: Project, workflow: Workflow, trigger: str
    ) -> tuple[WorkflowScan, list[CollectionAggregate]]:
        """Scan one workflow within its reconcile deadline, and count the scan and its duration in the metrics."""
        started = time.monotonic()
        outcome = "error"
        try:
            result = self._scan_workflow_within_deadline(project, workflow, trigger)
            outcome = "finished"
            return result
        except ScanTimedOut:
            outcome = "timed_out"
            raise
        except ScanStopped:
            outcome = "stopped"
            raise
        finally:
            self.metrics.record_scan(trigger, outcome, time.monotonic() - started)

    def _scan_workflow_within_deadline(
        self, project: Project, workflow: Workflow, trigger: str
    ) -> tuple[WorkflowScan, list[CollectionAggregate]]:
        """Scan one workflow within its reconcile deadline; raise ScanTimedOut when it passes.

        `depictiod scan` (trigger `command`) has no deadline, because its user waits for it.
        """
        timings = self._timings(project, workflow)
        seconds = 0 if trigger == "command" else timings.reconcile_deadline_seconds
        report = partial(self._report_overrun, project, workflow, trigger, seconds)
        started_at = utc_now()
        with ScanDeadline(self._stopping, seconds, report, f"scan-deadline-{workflow.name}"[:64]) as deadline:
            try:
                scan, tables = self._scan_workflow_steps(project, workflow, trigger, timings, deadline)
                self._publish_scan_finished(project.id, scan, tables, trigger)
                return scan, tables
            except ScanTimedOut:
                logger.info(
                    "stopped the %s scan of workflow %s (%s) after %.1f s at its deadline; "
                    "the steps it finished are kept and the next reconcile continues",
                    trigger,
                    workflow.name,
                    workflow.id,
                    deadline.elapsed,
                )
                self._record_timeout(project, workflow, trigger, started_at, seconds, deadline.elapsed)
                raise

    def _record_timeout(
        self, project: Project, workflow: Workflow, trigger: str, started_at: datetime, seconds: float, elapsed: float
    ) -> None:
        """Add a scan report for a scan stopped at its deadline, so /scans lists it too."""
        assert project.id is not None and workflow.id is not None
        warning = (
            f"the scan stopped at its deadline of {seconds:g} s after {elapsed:.1f} s; the steps it finished "
            "are kept and the next reconcile continues"
        )
        report = ScanReport(
            id=derive_id("scan", workflow.id, started_at.isoformat(), "timed-out"),
            project_id=project.id,
            workflow_id=workflow.id,
            started_at=started_at,
            finished_at=utc_now(),
            runs=0,
            files_total=0,
            files_new=0,
            files_changed=0,
            files_removed=0,
            files_failed=0,
            details={"trigger": trigger, "timed_out": True, "warnings": [warning], "collections": []},
        )
        try:
            self.catalog.scans.add(report)
        except CatalogError as error:
            logger.warning("scan report of workflow %s (%s) not stored: %s", workflow.name, workflow.id, error)
        self.catalog.events.scan_finished(
            project_id=project.id,
            workflow_id=workflow.id,
            scan_id=report.id,
            trigger=trigger,
            runs=0,
            files_total=0,
            files_new=0,
            files_changed=0,
            files_removed=0,
            files_failed=0,
            timed_out=True,
        )

    def _publish_scan_finished(
        self, project_id: str | None, scan: WorkflowScan, tables: list[CollectionAggregate], trigger: str
    ) -> None:
        """Publish `scan.finished` once a workflow's files are registered and its tables updated."""
        if project_id is None:
            return
        self.catalog.events.scan_finished(
            project_id=project_id,
            workflow_id=scan.workflow_id,
            scan_id=scan.report_id,
            trigger=trigger,
            runs=scan.runs,
            files_total=sum(collection.files for collection in scan.collections),
            files_new=scan.counts.files_added,
            files_changed=scan.counts.files_changed,
            files_removed=scan.counts.files_removed,
            # Aggregation skips empty files, so they are counted from the scan.
            files_failed=sum(table.files_failed for table in tables)
            + sum(collection.empty_files for collection in scan.collections),
        )

    def _report_overrun(
        self, project: Project, workflow: Workflow, trigger: str, deadline_seconds: float, elapsed: float
    ) -> None:
        logger.warning(
            "%s scan of workflow %s (%s) in project %s has run %.1f s, past its deadline of %g s; "
            "it stops before its next step, and the next reconcile starts fresh",
            trigger,
            workflow.name,
            workflow.id,
            project.name,
            elapsed,
            deadline_seconds,
        )
        self.status.scans_timed_out += 1
        self.status.last_error = (
            f"workflow {workflow.name!r} ({workflow.id}): the {trigger} scan ran past its deadline of "
            f"{deadline_seconds:g} s (ingest.reconcile_deadline_seconds)"
        )

    def _scan_workflow_steps(
        self, project: Project, workflow: Workflow, trigger: str, timings: WorkflowTimings, deadline: ScanDeadline
    ) -> tuple[WorkflowScan, list[CollectionAggregate]]:
        assert workflow.id is not None
        deadline.check()
        if project.id in self._sent:
            scan = check_registered_files(
                self.catalog,
                project,
                workflow,
                timings.settle_seconds,
                trigger,
                self.settings.ingest.link_roots,
                client_roots=self._client_roots(project.id),
            )
            return self._finish_workflow_scan(project, workflow, scan, deadline)
        known_hashes = self._known_hashes.setdefault(workflow.id, {})
        scan = scan_workflow(
            self.catalog,
            project,
            workflow,
            timings.settle_seconds,
            self._held_locations,
            trigger,
            self.settings.ingest.link_roots,
            ignore=self._ignore,
            checkpoint=deadline.check,
            known_hashes=known_hashes,
        )
        # The catalog contains every hash now, so the hashes kept for a stopped scan can go.
        self._known_hashes.pop(workflow.id, None)
        for folder in workflow.data_location.locations:
            if os.path.isdir(folder):
                self._missing_since.pop(folder, None)  # Back again: a later absence starts a new grace.
        return self._finish_workflow_scan(project, workflow, scan, deadline)

    def _finish_workflow_scan(
        self, project: Project, workflow: Workflow, scan: WorkflowScan, deadline: ScanDeadline
    ) -> tuple[WorkflowScan, list[CollectionAggregate]]:
        """Aggregate the collections of a scanned workflow and add their outcomes to the scan report."""
        # The scan committed its failed files to the catalog, so they count even when the aggregation stops.
        self.metrics.record_failures(scan.failures)
        if scan.unsettled and self._watcher is not None and workflow.id is not None:
            # Files still being written: look again once they are quiet.
            self._watcher.mark_changed(workflow.id)
        for warning in scan.warnings:
            logger.warning("project %s, workflow %s: %s", project.name, workflow.name, warning)
        found = {item.collection_id: item.files for item in scan.collections}
        self._report_progress(
            ScanProgress(step="workflow", project=project.name, name=workflow.name, files=sum(found.values()))
        )
        tables = []
        for collection in workflow.data_collections:
            deadline.check()
            table = self._aggregate(project.name, collection)
            tables.append(table)
            files = found.get(table.collection_id, 0)
            self._report_progress(
                ScanProgress(step="collection", project=project.name, name=table.tag, files=files, rows=table.rows)
            )
        self._record_outcomes(scan, tables)
        return scan, tables

    def _record_outcomes(self, scan: WorkflowScan, tables: list[CollectionAggregate]) -> None:
        """Add each collection's unchanged and failed files, with reasons, to the scan's report."""
        found = {item.collection_id: item for item in scan.collections}
        outcomes: dict[str, dict[str, object]] = {}
        for table in tables:
            item = found.get(table.collection_id)
            failed = self.catalog.files.list_failed(table.collection_id, MAX_FAILURES_REPORTED)
            outcomes[table.collection_id] = {
                "outcome": table.outcome,
                "rows": table.rows,
                "files_unchanged": max(item.files - item.files_new - item.files_changed, 0) if item else 0,
                "files_failed": self.catalog.files.status_counts(table.collection_id).get("failed", 0),
                "failures": [
                    {
                        "file": record.file_location,
                        "run_tag": record.run_tag,
                        "reason": record.error,
                        "line": record.error_line,
                    }
                    for record in failed
                ],
            }
        if scan.report_id:
            self.catalog.scans.add_collection_outcomes(scan.report_id, outcomes)

    def _report_progress(self, event: ScanProgress) -> None:
        if self.progress is not None:
            self.progress(event)

    def rescan_workflow(self, workflow_id: str, trigger: str = "event") -> None:
        """Scan one workflow and rebuild its changed tables, after a change event.

        `trigger` is `event`, `overflow` (change events were lost) or `watch-restart` (its
        watch was restarted and may have missed changes).
        """
        found = [(p, w) for p in list(self.projects) for w in p.workflows if w.id == workflow_id]
        if not found:
            logger.warning("change event for unknown workflow %s ignored", workflow_id)
            return
        self._rescan(*found[0], trigger)

    def _reconcile_workflow(self, project: Project, workflow: Workflow) -> None:
        """Run one scheduled reconcile of a workflow, logging an error instead of raising it."""
        try:
            self._rescan(project, workflow, "schedule")
        except Exception as error:
            # The scheduler thread must outlive any one reconcile.
            logger.exception(
                "scheduled reconcile of workflow %s (%s) in project %s failed; the next one runs as scheduled",
                workflow.name,
                workflow.id,
                project.name,
            )
            self.status.last_error = f"workflow {workflow.name!r} ({workflow.id}): {error}"

    def _rescan(self, project: Project, workflow: Workflow, trigger: str) -> None:
        with self._scan_lock:
            if self._stopping.is_set():
                return
            if not any(item is project for item in self.projects):
                # Deleted or replaced while this rescan waited for the lock: its data is gone.
                return
            if self.catalog.store.write_failure is not None:
                return  # Every workflow is scanned again once the catalog can be written.
            started = time.monotonic()
            self.status.state = "scanning"
            self.status.last_scan_started = utc_now().isoformat(sep=" ", timespec="seconds")
            try:
                scan, tables = self._scan_workflow(project, workflow, trigger)
                self._run_joins(project)
            except (ScanStopped, ScanTimedOut):
                return  # A timeout is logged where it happens, and a stop needs no line.
            except CatalogUnwritableError:
                return  # The catalog logged why, and the reconcile after recovery scans this workflow again.
            finally:
                self.status.state = self._resting_state()
            self.status.scans_completed += 1
            self.status.last_scan_finished = utc_now().isoformat(sep=" ", timespec="seconds")
            self.catalog.store.checkpoint()
            counts = scan.counts
            logger.info(
                "rescanned workflow %s (%s) %s: %d runs, +%d ~%d -%d files, %d rows, %.2f s",
                workflow.name,
                workflow.id,
                _RESCAN_REASONS.get(trigger, f"on {trigger}"),
                scan.runs,
                counts.files_added,
                counts.files_changed,
                counts.files_removed,
                sum(table.rows for table in tables),
                time.monotonic() - started,
            )

    def _held_locations(self, missing: list[str]) -> list[str]:
        """Return the missing locations still within their grace period, whose runs are kept."""
        now = time.monotonic()
        grace = self.settings.ingest.missing_location_grace_seconds
        return [folder for folder in missing if now - self._missing_since.setdefault(folder, now) < grace]

    def _aggregate(self, project_name: str, collection: DataCollection) -> CollectionAggregate:
        aggregate = self._aggregate_collection(project_name, collection)
        self.metrics.record_aggregate(aggregate, "collection")
        return aggregate

    def _run_joins(self, project: Project) -> list[CollectionAggregate]:
        joins = run_joins(self.catalog, project)
        for join in joins:
            self.metrics.record_aggregate(join, "join")
        return joins

    def _aggregate_collection(self, project_name: str, collection: DataCollection) -> CollectionAggregate:
        assert collection.id is not None
        try:
            return aggregate_collection(self.catalog, collection, self._unreadable)
        except CatalogUnwritableError:
            raise  # Not the collection's fault: the whole scan pauses.
        except Exception as error:
            # One collection's failure must not stop the other collections of the project.
            logger.exception(
                "aggregation of collection %s (%s) in project %s failed; its previous table is kept",
                collection.data_collection_tag,
                collection.id,
                project_name,
            )
            self.status.last_error = f"collection {collection.data_collection_tag!r}: {error}"
            return CollectionAggregate(collection_id=collection.id, tag=collection.data_collection_tag, outcome="error")

    def start(self) -> None:
        """Register projects, scan them once, then reconcile each workflow on its own schedule.

        When the catalog cannot be written, registering and scanning wait until it can.
        """
        self._register_at_start()
        self._finish_start()

    def start_in_background(self) -> None:
        """Register projects, then scan them and start the reconciles in the thread `ingest-start`.

        The caller goes on at once, so a service accepts requests during the start-up scan.
        `status.startup` is `finished` once the scan is done.
        """
        self._register_at_start()
        self.status.startup = "running"
        self._starter = threading.Thread(target=self._finish_start_in_thread, name="ingest-start", daemon=True)
        self._starter.start()

    def _register_at_start(self) -> None:
        self.catalog.store.add_write_listener(self._write_state_changed, confirms_recovery=True)
        try:
            self.register_projects()
            self._registered = True
        except CatalogUnwritableError:
            pass  # The catalog logged why, and _resume does the rest once writes work.

    def _finish_start_in_thread(self) -> None:
        started = time.monotonic()
        try:
            self._finish_start()
        except Exception as error:
            # The service still serves the catalog as it is, but it never turns ready.
            # NOTE: nothing retries the start; a restart of the service does.
            logger.exception("the start-up scan failed; the service serves the catalog as it is and is not ready")
            self.status.startup = "failed"
            self.status.last_error = f"start-up scan: {error}"
            return
        if self.status.startup == "finished":
            logger.info("start-up scan finished in %.1f s; the service is ready", time.monotonic() - started)

    def _finish_start(self) -> None:
        """Scan every project once, then schedule the reconciles and watch the locations."""
        self.status.startup = "running"
        try:
            # Without registered projects there is nothing to scan; _resume registers and scans them.
            if self._registered and self.settings.ingest.scan_on_start:
                self.scan_all("startup")
            elif self._registered:
                # Tables stay as the catalog has them, but a join whose definition changed is built again.
                with self._scan_lock:
                    for project in list(self.projects):
                        self._run_joins(project)
        except CatalogUnwritableError:
            pass  # The catalog logged why, and _resume does the rest once writes work.
        if self._stopping.is_set():
            return  # stop() came during the start-up scan, so no reconcile or watch is started.
        self.status.state = self._resting_state()
        self._schedule_reconciles()
        if self._resume_needed and self.catalog.store.write_failure is None:
            self._schedule_resume()  # Writes failed and worked again before the scheduler ran.

        if self.settings.ingest.watch_mode != "off":
            settle_seconds = {
                workflow.id: self._timings(project, workflow).settle_seconds
                for project in self.projects
                for workflow in project.workflows
                if workflow.id is not None
            }
            self._watcher = Watcher(
                self.projects,
                self.rescan_workflow,
                settle_seconds,
                self.settings.ingest.watch_mode,
                self._ignore,
                self.settings.ingest.poll_seconds,
            )
            self._watcher.start()
            # The watcher replaces an entry when it restarts a watch, so the status shares its list.
            self.status.locations = self._watcher.locations
        self.status.startup = "finished"

    def _write_state_changed(self, failure: CatalogUnwritableError | None) -> None:
        """Pause ingestion while the catalog cannot be written, and reconcile every project once it can.

        Runs on the catalog's thread that noticed the change, so it only records the state
        and leaves the reconcile to the scheduler.
        """
        if failure is not None:
            # Set since the fault started when a write failed again on trial, which logs nothing new.
            continued = self.status.write_error is not None
            self.status.write_error = f"{failure.summary} ({failure.detail})"
            self._resume_needed = True
            if self.status.state == "idle":
                self.status.state = "paused"
            if not continued:
                logger.info("ingestion paused until the catalog can be written again")
            return
        # Writes are accepted on trial. write_error stays set, so readiness stays 503, until
        # the resume scan succeeds and confirms the recovery.
        self._schedule_resume()

    def _schedule_resume(self) -> None:
        if self._stopping.is_set() or self._scheduler is None:
            return  # Still starting: start() schedules it once the scheduler runs.
        self._scheduler.add_job(
            self._resume,
            id="resume-ingestion",
            name="reconcile of every project after the catalog could be written again",
            misfire_grace_time=None,
            replace_existing=True,
        )

    def _resume(self) -> None:
        """Register the projects if start-up could not, then scan every project for what arrived meanwhile."""
        logger.info("ingestion resumes: scanning every project for the changes made while it was paused")
        self._resume_needed = False
        try:
            if not self._registered:
                self.register_projects()
                self._registered = True
                with self._projects_lock:
                    sent = [project for project in self.projects if project.id in self._sent]
                for project in sent:
                    for workflow in project.workflows:
                        self._follow_workflow(project, workflow)
            self.scan_all("resume")
            # scan_all returns early, without raising, when a write fails on the way.
            if self.catalog.store.write_failure is None:
                self.catalog.store.confirm_writable(self._clear_write_error)
        except CatalogUnwritableError:
            pass  # Paused again; the next recovery schedules this once more.
        except Exception:
            # The scheduler thread must outlive the resume, and the scheduled reconciles retry.
            logger.exception("reconcile after the catalog could be written again failed; scheduled reconciles retry")
            # The failure was not a rejected write, so writes work.
            self.catalog.store.confirm_writable(self._clear_write_error)

    def _clear_write_error(self) -> None:
        self.status.write_error = None

    def _schedule_reconciles(self) -> None:
        """Add one interval job per workflow whose reconcile_seconds is above 0.

        max_instances=1 and coalesce make a trigger that comes while the workflow's
        reconcile still runs collapse into one later run, instead of piling up.
        """
        jobs = [
            (project, workflow, self._timings(project, workflow).reconcile_seconds)
            for project in self.projects
            for workflow in project.workflows
        ]
        jobs = [job for job in jobs if job[2] > 0]
        # One scan runs at a time (_scan_lock), so a few threads let every workflow wait its turn.
        # The scheduler starts even without jobs, for the projects that clients send later.
        executor = ThreadPoolExecutor(max_workers=4, pool_kwargs={"thread_name_prefix": "ingest-reconcile"})
        self._scheduler = BackgroundScheduler(daemon=True, executors={"default": executor})
        for project, workflow, interval in jobs:
            self._add_reconcile_job(project, workflow, interval)
        self._scheduler.start()

    def _add_reconcile_job(self, project: Project, workflow: Workflow, interval: float) -> None:
        assert self._scheduler is not None
        self._scheduler.add_job(
            self._reconcile_workflow,
            "interval",
            seconds=interval,
            args=[project, workflow],
            id=f"reconcile-{workflow.id}",
            name=f"reconcile of workflow {workflow.name} ({workflow.id})",
            max_instances=1,
            coalesce=True,
            # A run delayed by a busy thread pool still happens, once.
            misfire_grace_time=None,
            replace_existing=True,
        )
        logger.info("reconcile of workflow %s (%s) scheduled every %g s", workflow.name, workflow.id, interval)

    def stop(self) -> None:
        """Stop the scheduler, and wait for a running scan to end after its current step."""
        self._stopping.set()
        self.catalog.store.remove_write_listener(self._write_state_changed)
        if self._starter is not None:
            # The start-up scan ends after its current step; joining first means the thread
            # cannot start a scheduler or a watcher after they were stopped below.
            self._starter.join()
            self._starter = None
        if self._requests is not None:
            self._requests.shutdown(wait=True, cancel_futures=True)
            self._requests = None
            # Cancelled rescans never run, so they never count themselves out.
            with self._requests_lock:
                self._requests_pending = 0
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        with self._scan_lock:
            self.status.state = "stopped"
