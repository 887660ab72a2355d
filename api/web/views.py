"""Page contents read from the catalog through the request's Access, as plain values for the templates."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from api.access import Access
from catalog import FileRecord, ProjectRecord, RunRecord, ScanReport, TableRecord, WorkflowRecord
from config import DataCollection, Workflow

# Longer cell and parameter values are cut on the pages; the downloads contain them whole.
MAX_CELL_CHARS = 200
FAILED_FILES_SHOWN = 200


@dataclass
class ProjectSummary:
    record: ProjectRecord
    workflows: int
    collections: int
    runs: int


@dataclass
class RunRow:
    record: RunRecord
    workflow_name: str
    files: int
    failed: int


@dataclass
class CollectionRow:
    id: str
    tag: str
    workflow_name: str
    kind: str
    table: TableRecord | None


@dataclass
class WorkflowView:
    id: str
    workflow: Workflow
    runs: list[RunRow] = field(default_factory=list)


@dataclass
class ProjectView:
    record: ProjectRecord
    workflows: list[WorkflowView]
    collections: list[CollectionRow]
    scans: list[ScanReport]

    @property
    def runs(self) -> list[RunRow]:
        return [run for workflow in self.workflows for run in workflow.runs]


@dataclass
class FileFailure:
    file: FileRecord
    project: ProjectRecord
    collection_tag: str


def project_summaries(access: Access) -> list[ProjectSummary]:
    summaries = []
    for record in access.projects():
        workflows = record.project.workflows
        runs = sum(len(access.catalog.runs.list_for_workflow(workflow.id or "")) for workflow in workflows)
        collections = sum(len(workflow.data_collections) for workflow in workflows)
        summaries.append(ProjectSummary(record=record, workflows=len(workflows), collections=collections, runs=runs))
    return summaries


def project_view(access: Access, record: ProjectRecord) -> ProjectView:
    workflows: list[WorkflowView] = []
    collections: list[CollectionRow] = []
    for workflow in record.project.workflows:
        workflow_id = workflow.id or ""
        view = WorkflowView(id=workflow_id, workflow=workflow)
        counts = access.catalog.files.counts_by_run(workflow_id)
        for run in access.catalog.runs.list_for_workflow(workflow_id):
            files, failed = counts.get(run.id, (0, 0))
            view.runs.append(RunRow(record=run, workflow_name=workflow.name, files=files, failed=failed))
        view.runs.sort(key=lambda row: row.record.run_tag)
        workflows.append(view)
        collections += [_collection_row(access, collection, workflow.name) for collection in workflow.data_collections]
    scans = access.catalog.scans.latest(record.id)
    return ProjectView(record=record, workflows=workflows, collections=collections, scans=scans)


def _collection_row(access: Access, collection: DataCollection, workflow_name: str) -> CollectionRow:
    collection_id = collection.id or ""
    return CollectionRow(
        id=collection_id,
        tag=collection.data_collection_tag,
        workflow_name=workflow_name,
        kind=str(collection.config.type),
        table=access.catalog.tables.get(collection_id),
    )


@dataclass
class RunView:
    record: RunRecord
    project: ProjectRecord
    workflow: WorkflowRecord | None
    files: list[FileRecord]
    collection_tags: dict[str, str]
    parameters: list[tuple[str, str]]
    parameters_source: str | None

    @property
    def failed(self) -> int:
        return sum(1 for record in self.files if record.status == "failed")

    @property
    def status(self) -> str:
        if not self.files:
            return "no files"
        if self.failed:
            return f"{self.failed} of {len(self.files)} files failed"
        if all(record.status == "aggregated" for record in self.files):
            return "all files aggregated"
        return "files waiting for aggregation"


def run_view(access: Access, run: RunRecord, project: ProjectRecord) -> RunView:
    files = [
        record for file_id in access.catalog.runs.file_ids(run.id) if (record := access.catalog.files.get(file_id))
    ]
    files.sort(key=lambda record: record.file_location)
    tags: dict[str, str] = {}
    for record in files:
        if record.data_collection_id not in tags:
            collection = access.catalog.projects.collection(record.data_collection_id)
            tags[record.data_collection_id] = collection.collection.data_collection_tag if collection else "?"
    values = run.parameters.get("values") if isinstance(run.parameters, dict) else None
    parameters = sorted(_flatten(values)) if isinstance(values, dict) else []
    source = run.parameters.get("source") if isinstance(run.parameters, dict) else None
    return RunView(
        record=run,
        project=project,
        workflow=access.catalog.projects.workflow(run.workflow_id),
        files=files,
        collection_tags=tags,
        parameters=parameters,
        parameters_source=str(source) if source else None,
    )


def _flatten(values: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Return nested parameters as (dotted name, text) pairs."""
    pairs: list[tuple[str, str]] = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            pairs += _flatten(value, f"{name}.")
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        pairs.append((name, _cut(text)))
    return pairs


@dataclass
class DriftRow:
    column: str
    file_type: str
    table_type: str
    file: FileRecord | None


def drift_rows(access: Access, table: TableRecord | None) -> list[DriftRow]:
    if table is None:
        return []
    return [
        DriftRow(
            column=note.column,
            file_type=note.file_type,
            table_type=note.table_type,
            file=access.catalog.files.get(note.file_id),
        )
        for note in table.drift
    ]


def failed_files(access: Access, projects: list[ProjectRecord]) -> list[FileFailure]:
    """Return the failed files of the projects' collections, at most FAILED_FILES_SHOWN, by project and run."""
    failures: list[FileFailure] = []
    for project in projects:
        for workflow in project.project.workflows:
            for collection in workflow.data_collections:
                remaining = FAILED_FILES_SHOWN - len(failures)
                if remaining <= 0:
                    return failures
                for record in access.catalog.files.list_failed(collection.id or "", remaining):
                    failures.append(
                        FileFailure(file=record, project=project, collection_tag=collection.data_collection_tag)
                    )
    return failures


def cell_text(value: Any) -> str:
    """Return a table value as the preview shows it: NULL as empty, long text cut, floats as Python writes them."""
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, (datetime, date)):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (dict, list)):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    return _cut(text)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 1] + "…"
