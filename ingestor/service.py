"""The ingestor: scans every configured project at start and reconciles on a schedule."""

from __future__ import annotations

import logging
import os
import threading
import time

import msgspec
from apscheduler.schedulers.background import BackgroundScheduler

from catalog import Catalog, utc_now
from config import DataCollection, Project, Settings, Workflow
from ingestor.aggregate import CollectionAggregate, aggregate_collection
from ingestor.progress import ProgressCallback, ScanProgress
from ingestor.scan import WorkflowScan, scan_workflow
from ingestor.watch import LocationWatch, Watcher

logger = logging.getLogger(__name__)


class ProjectScan(msgspec.Struct, kw_only=True):
    """The result of scanning and aggregating one project."""

    project_id: str
    name: str
    workflows: list[WorkflowScan]
    tables: list[CollectionAggregate]
    seconds: float

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


class ScanStopped(Exception):
    """Raised inside a scan when the service is stopping; the scan ends early."""


class IngestStatus(msgspec.Struct, kw_only=True):
    # starting, scanning, idle or stopped.
    state: str = "starting"
    last_scan_started: str | None = None
    last_scan_finished: str | None = None
    scans_completed: int = 0
    last_error: str | None = None
    # How each workflow location is watched.
    locations: list[LocationWatch] = msgspec.field(default_factory=list)


class Ingestor:
    """Keeps the catalog in step with the workflow folders of the configured projects."""

    def __init__(self, catalog: Catalog, settings: Settings, projects: list[Project]) -> None:
        self.catalog = catalog
        self.settings = settings
        self.projects = projects
        self.status = IngestStatus()
        self._scan_lock = threading.Lock()
        # Set by stop(): a running scan ends after the step it is in.
        self._stopping = threading.Event()
        # Collections whose files could not be read, by inputs fingerprint (see aggregate_collection).
        self._unreadable: dict[str, str] = {}
        # When each missing location was first found missing (monotonic seconds).
        self._missing_since: dict[str, float] = {}
        self._scheduler: BackgroundScheduler | None = None
        self._watcher: Watcher | None = None

    def register_projects(self) -> None:
        """Store the configured projects in the catalog, dropping ones no longer configured."""
        self.catalog.projects.sync_from_config(self.projects)

    def scan_all(self, trigger: str = "schedule") -> list[ProjectScan]:
        """Scan and aggregate every project once; one failing project does not stop the others."""
        with self._scan_lock:
            self.status.state = "scanning"
            self.status.last_scan_started = utc_now().isoformat(sep=" ", timespec="seconds")
            results = []
            for project in self.projects:
                try:
                    results.append(self._scan_project(project, trigger))
                except ScanStopped:
                    logger.info("scan stopped before it finished, because the service is stopping")
                    break
                except Exception as error:
                    # One project's failure must not stop the others or the service.
                    logger.exception(
                        "scan of project %s (%s) failed; the next scan retries it", project.name, project.id
                    )
                    self.status.last_error = f"project {project.name!r}: {error}"
            self.status.state = "idle"
            self.status.scans_completed += 1
            self.status.last_scan_finished = utc_now().isoformat(sep=" ", timespec="seconds")
            return results

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
            scan, workflow_tables = self._scan_workflow(project, workflow, trigger)
            scans.append(scan)
            tables.extend(workflow_tables)

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
        return ProjectScan(project_id=project.id, name=project.name, workflows=scans, tables=tables, seconds=seconds)

    def _scan_workflow(
        self, project: Project, workflow: Workflow, trigger: str
    ) -> tuple[WorkflowScan, list[CollectionAggregate]]:
        self._raise_if_stopping()
        scan = scan_workflow(
            self.catalog,
            project,
            workflow,
            self.settings.ingest.settle_seconds,
            self._held_locations,
            trigger,
            self.settings.ingest.link_roots,
        )
        for folder in workflow.data_location.locations:
            if os.path.isdir(folder):
                self._missing_since.pop(folder, None)  # Back again: a later absence starts a new grace.
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
            self._raise_if_stopping()
            table = self._aggregate(project, collection)
            tables.append(table)
            files = found.get(table.collection_id, 0)
            self._report_progress(
                ScanProgress(step="collection", project=project.name, name=table.tag, files=files, rows=table.rows)
            )
        return scan, tables

    # Set by a caller that displays progress, such as `depictiod scan` on a terminal.
    progress: ProgressCallback | None = None

    def _report_progress(self, event: ScanProgress) -> None:
        if self.progress is not None:
            self.progress(event)

    def rescan_workflow(self, workflow_id: str) -> None:
        """Scan one workflow and rebuild its changed tables, after a change event."""
        found = [(p, w) for p in self.projects for w in p.workflows if w.id == workflow_id]
        if not found:
            logger.warning("change event for unknown workflow %s ignored", workflow_id)
            return
        project, workflow = found[0]
        with self._scan_lock:
            if self._stopping.is_set():
                return
            started = time.monotonic()
            try:
                scan, tables = self._scan_workflow(project, workflow, "event")
            except ScanStopped:
                return
            counts = scan.counts
            logger.info(
                "rescanned workflow %s (%s) after a change: %d runs, +%d ~%d -%d files, %d rows, %.2f s",
                workflow.name,
                workflow_id,
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

    def _raise_if_stopping(self) -> None:
        if self._stopping.is_set():
            raise ScanStopped()

    def _aggregate(self, project: Project, collection: DataCollection) -> CollectionAggregate:
        assert collection.id is not None
        try:
            return aggregate_collection(self.catalog, collection, self._unreadable)
        except Exception as error:
            # One collection's failure must not stop the other collections of the project.
            logger.exception(
                "aggregation of collection %s (%s) in project %s failed; its previous table is kept",
                collection.data_collection_tag,
                collection.id,
                project.name,
            )
            self.status.last_error = f"collection {collection.data_collection_tag!r}: {error}"
            return CollectionAggregate(collection_id=collection.id, tag=collection.data_collection_tag, outcome="error")

    def start(self) -> None:
        """Register projects, scan them once, then reconcile every `reconcile_seconds`."""
        self.register_projects()
        if self.settings.ingest.scan_on_start:
            self.scan_all("startup")
        self.status.state = "idle"

        interval = self.settings.ingest.reconcile_seconds
        if interval > 0:
            self._scheduler = BackgroundScheduler(daemon=True)
            self._scheduler.add_job(
                self._reconcile, "interval", seconds=interval, id="reconcile", max_instances=1, coalesce=True
            )
            self._scheduler.start()
            logger.info("reconcile scheduled every %d s", interval)

        if self.settings.ingest.watch_mode != "off":
            self._watcher = Watcher(
                self.projects,
                self.rescan_workflow,
                self.settings.ingest.settle_seconds,
                self.settings.ingest.watch_mode,
            )
            self._watcher.start()
            self.status.locations = list(self._watcher.locations)

    def _reconcile(self) -> None:
        try:
            self.scan_all()
        except Exception:
            logger.exception("scheduled reconcile failed; the next one runs as scheduled")

    def stop(self) -> None:
        """Stop the scheduler, and wait for a running scan to end after its current step."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        with self._scan_lock:
            self.status.state = "stopped"
