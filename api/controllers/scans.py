"""`/scans` and `/projects/{project_id}/scan`: scan history, and scans on request."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import FromPath, QueryParameter

from api.access import Access, format_time
from api.errors import error_responses
from api.monitoring import ingestion_out, is_client_ingestion
from api.schemas import IngestionFailureOut, ScanCollectionOut, ScanPage, ScanReportOut, ScanTriggerOut
from catalog import ScanReport, utc_now
from ingestor import Ingestor
from ingestor.scan import collection_status

MAX_SCANS_PER_PAGE = 500


MAX_OFFSET = 2**62


class ScanController(Controller):
    path = "/"
    tags = ["scans"]

    @get(
        "/scans",
        sync_to_thread=True,
        opt={"access": "read"},
        responses=error_responses(400, 401, 404),
        summary="Scan reports of readable projects, newest first",
    )
    def list_scans(
        self,
        access: NamedDependency[Access],
        project_id: Annotated[str | None, QueryParameter(description="only this project's scans")] = None,
        limit: Annotated[int, QueryParameter(description="reports per page, 1 to 500")] = 50,
        offset: Annotated[int, QueryParameter(description="reports to skip, 0 or more")] = 0,
    ) -> ScanPage:
        if project_id is not None:
            project_ids = [access.project(project_id).id]
        else:
            project_ids = [record.id for record in access.projects()]
        limit = min(max(limit, 1), MAX_SCANS_PER_PAGE)
        # DuckDB takes a 64-bit offset; a larger one would skip every report anyway.
        offset = min(max(offset, 0), MAX_OFFSET)
        reports, total = access.catalog.scans.list(project_ids, limit, offset)
        return ScanPage(total=total, limit=limit, offset=offset, scans=[_report_out(report) for report in reports])

    @post(
        "/projects/{project_id:str}/scan",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "write"},
        responses=error_responses(400, 401, 403, 404, 409),
        summary="Scan a project now (editors, owners and administrators)",
    )
    def scan_project(
        self, request: Request[Any, Any, Any], access: NamedDependency[Access], project_id: FromPath[str]
    ) -> ScanTriggerOut:
        access.project(project_id)
        ingestor: Ingestor = request.app.state.ingestor
        if ingestor.serving_only:
            raise ClientException(
                "this process only serves the API (serve --role api); the ingest processes scan every project "
                "on their schedule, or send the request to a process of role ingest or all",
                status_code=409,
            )
        result = ingestor.scan_project(project_id, trigger="api")
        if result is None:
            raise NotFoundException(f"project {project_id!r} is not scanned by this service")
        return ScanTriggerOut(
            project_id=project_id,
            runs=sum(scan.runs for scan in result.workflows),
            files=sum(collection.files for scan in result.workflows for collection in scan.collections),
            rows=sum(table.rows for table in result.tables),
            files_failed=result.files_failed,
            files_unsettled=result.unsettled,
            seconds=round(result.seconds, 3),
            warnings=[warning for scan in result.workflows for warning in scan.warnings],
        )


def _report_out(report: ScanReport) -> ScanReportOut:
    details = report.details
    # Reports are listed by project, so each one listed has its project.
    assert report.project_id is not None
    return ScanReportOut(
        id=report.id,
        project_id=report.project_id,
        workflow_id=report.workflow_id,
        trigger=str(details.get("trigger", "schedule")),
        started_at=format_time(report.started_at) or "",
        finished_at=format_time(report.finished_at) or "",
        runs=report.runs,
        files_total=report.files_total,
        files_new=report.files_new,
        files_changed=report.files_changed,
        files_removed=report.files_removed,
        files_failed=report.files_failed,
        files_unsettled=int(details.get("unsettled", 0)),
        warnings=[str(warning) for warning in details.get("warnings", [])],
        timed_out=bool(details.get("timed_out", False)),
        collections=[
            ScanCollectionOut(
                collection_id=str(item["collection_id"]),
                tag=str(item["tag"]),
                files=int(item["files"]),
                empty_files=int(item["empty_files"]),
                # Reports written before these counts existed lack their keys.
                files_new=int(item.get("files_new", 0)),
                files_changed=int(item.get("files_changed", 0)),
                files_removed=int(item.get("files_removed", 0)),
                files_unsettled=int(item.get("unsettled", 0)),
                warning=item.get("warning"),
                files_unchanged=int(item.get("files_unchanged", 0)),
                files_failed=int(item.get("files_failed", 0)),
                failures=[
                    IngestionFailureOut(
                        file=str(failure.get("file")),
                        run_tag=str(failure.get("run_tag")),
                        reason=str(failure.get("reason")),
                        line=failure.get("line"),
                    )
                    for failure in item.get("failures", [])
                ],
                outcome=item.get("outcome"),
                rows=item.get("rows"),
                status=str(item.get("status") or collection_status(int(item["files"]), int(item.get("unsettled", 0)))),
            )
            for item in details.get("collections", [])
        ],
        ingestion=ingestion_out(report, utc_now()) if is_client_ingestion(report) else None,
    )
