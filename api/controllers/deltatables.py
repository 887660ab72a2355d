"""`/deltatables`: the aggregated table of a data collection, under Depictio's names.

Clients that write their own copy of a table elsewhere (the Depictio CLI writes a Delta
table to S3) report it with `POST /deltatables/upsert`. depictiod records the report and
keeps serving its own table; `GET /deltatables/get/{id}` shows the newest report.
"""

from __future__ import annotations

import logging
import math
from datetime import date, datetime, time
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.background_tasks import BackgroundTask
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import FromPath, JSONBody, QueryParameter

from api.access import Access, format_time
from api.errors import error_responses
from api.external_table_schemas import DeleteDeltaTableOut, ExternalTableOut, UpsertDeltaTableIn, UpsertDeltaTableOut
from api.schemas import (
    AggregationOut,
    ColumnSpecOut,
    DeltaTableDocument,
    DriftOut,
    PreviewOut,
    ShapeOut,
    UniqueValuesOut,
)
from catalog import ExternalTableRecord, TableSnapshot, utc_now
from catalog.row_filters import FilterError, RowFilter, parse_filters
from ingestor import Ingestor

logger = logging.getLogger(__name__)

MAX_PREVIEW_ROWS = 1000
MAX_UNIQUE_VALUES = 10_000
FILTERS_HELP = (
    "Filters are query parameters `column__operator=value`, combined with AND. Operators: eq, ne, lt, "
    "le, gt, ge (the value is converted to the column's type), in (values separated by commas), "
    "contains and startswith (on the column's text), isnull (true or false). An unknown column, "
    "operator or parameter, or a value that does not fit its column, is a 400."
)
# An upsert lists the run tags of the write, one per run.
MAX_UPSERT_BYTES = 4 * 1024 * 1024


class DeltaTableController(Controller):
    path = "/deltatables"
    tags = ["deltatables"]

    @get(
        "/get/{data_collection_id:str}",
        sync_to_thread=True,
        opt={"access": "read"},
        responses=error_responses(400, 401, 404),
        summary="The table record with its latest aggregation",
    )
    def get_table(self, access: NamedDependency[Access], data_collection_id: FromPath[str]) -> DeltaTableDocument:
        snapshot = _snapshot(access, data_collection_id)
        table = snapshot.record
        aggregation = AggregationOut(
            aggregation_time=format_time(table.aggregation_time) or "",
            aggregation_by=None,
            aggregation_version=table.aggregation_version,
            aggregation_hash=table.aggregation_hash,
            aggregation_columns_specs=_specs(snapshot),
        )
        return DeltaTableDocument(
            id=data_collection_id,
            data_collection_id=data_collection_id,
            delta_table_location=table.table_name,
            aggregation=[aggregation],
            num_rows=table.row_count,
            num_columns=table.column_count,
            drift=[
                DriftOut(file_id=d.file_id, column=d.column, file_type=d.file_type, table_type=d.table_type)
                for d in table.drift
            ],
            external_table=_external_out(access.catalog.external_tables.latest(data_collection_id)),
        )

    @post(
        "/upsert",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "write"},
        responses=error_responses(400, 401, 403, 404, 413),
        request_max_body_size=MAX_UPSERT_BYTES,
        summary="Record a table that a client wrote elsewhere (editors, owners and administrators)",
        description=(
            "depictiod stores the report and keeps serving its own aggregated table of the collection; "
            "it does not read the reported location. With `update` false, a collection that has a "
            "report already gets 400."
        ),
    )
    def upsert(self, access: NamedDependency[Access], data: JSONBody[UpsertDeltaTableIn]) -> UpsertDeltaTableOut:
        user = access.signed_in_user()
        collection, _ = access.collection(data.data_collection_id)
        if not data.update and access.catalog.external_tables.latest(collection.id) is not None:
            raise ClientException(
                f"update: data collection {collection.id!r} has a reported table already; "
                "send update true to record the new one"
            )

        document: dict[str, Any] = msgspec.to_builtins(data)
        access.catalog.external_tables.add(
            ExternalTableRecord(
                data_collection_id=collection.id,
                location=data.delta_table_location,
                size_bytes=data.deltatable_size_bytes,
                version=data.delta_version,
                rows_total=data.rows_total,
                write_mode=data.write_mode,
                document=document,
                recorded_by=user.id,
                recorded_at=utc_now(),
            )
        )
        logger.info(
            "recorded table of data collection %s written by user %s at %s: version %s, %s rows",
            collection.id,
            user.id,
            data.delta_table_location,
            data.delta_version,
            data.rows_total,
        )
        return UpsertDeltaTableOut(
            result="success",
            message=(
                f"table of data collection {collection.collection.data_collection_tag!r} at "
                f"{data.delta_table_location!r} recorded; depictiod keeps serving its own aggregated table"
            ),
        )

    @delete(
        "/delete/{data_collection_id:str}",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "write"},
        responses=error_responses(400, 401, 403, 404),
        summary="Drop the aggregated table and the reported tables of a collection (editors, owners and administrators)",
        description=(
            "The collection's files stay registered, so the next scan rebuilds its table. When "
            "depictiod scans the collection's workflow, it starts that scan right after the response."
        ),
    )
    def delete_table(
        self, request: Request[Any, Any, Any], access: NamedDependency[Access], data_collection_id: FromPath[str]
    ) -> Response[DeleteDeltaTableOut]:
        collection, _ = access.collection(data_collection_id)
        table = access.catalog.tables.get(collection.id)
        reports = access.catalog.external_tables.delete(collection.id)
        if table is None and reports == 0:
            raise NotFoundException(f"data collection {collection.id!r} has no aggregated table and no reported table")
        if table is not None:
            access.catalog.tables.drop(collection.id)

        ingestor: Ingestor | None = getattr(request.app.state, "ingestor", None)
        scanned = ingestor is not None and _scans_workflow(ingestor, collection.workflow_id)
        logger.info(
            "dropped the table of data collection %s (%s) and %d reported tables; rescan requested: %s",
            collection.collection.data_collection_tag,
            collection.id,
            reports,
            scanned,
        )
        body = DeleteDeltaTableOut(
            message=(
                f"table of data collection {collection.collection.data_collection_tag!r} deleted; its files "
                "stay registered, so the next scan rebuilds it"
            ),
            table_dropped=table is not None,
            external_reports_deleted=reports,
            rescan_requested=scanned and table is not None,
        )
        if not body.rescan_requested:
            return Response(body)
        assert ingestor is not None and collection.workflow_id is not None
        return Response(body, background=BackgroundTask(_rescan, ingestor, collection.workflow_id))

    @get(
        "/specs/{data_collection_id:str}",
        sync_to_thread=True,
        opt={"access": "read"},
        responses=error_responses(400, 401, 404),
        summary="Column specs of the latest aggregation",
    )
    def specs(self, access: NamedDependency[Access], data_collection_id: FromPath[str]) -> list[ColumnSpecOut]:
        return _specs(_snapshot(access, data_collection_id))

    @get(
        "/shape/{data_collection_id:str}",
        sync_to_thread=True,
        opt={"access": "read"},
        responses=error_responses(400, 401, 404),
        summary="Row and column counts",
    )
    def shape(self, access: NamedDependency[Access], data_collection_id: FromPath[str]) -> ShapeOut:
        table = _snapshot(access, data_collection_id).record
        return ShapeOut(num_rows=table.row_count, num_columns=table.column_count)

    @get(
        "/unique_values/{data_collection_id:str}",
        sync_to_thread=True,
        opt={"access": "read"},
        responses=error_responses(400, 401, 404),
        summary="The distinct values of one column, sorted, optionally among filtered rows",
        description=FILTERS_HELP,
    )
    def unique_values(
        self,
        request: Request[Any, Any, Any],
        access: NamedDependency[Access],
        data_collection_id: FromPath[str],
        column: Annotated[str, QueryParameter(description="the column whose values to list")],
        limit: Annotated[int, QueryParameter(description="values to return, 1 to 10000")] = 1000,
    ) -> UniqueValuesOut:
        filters = _filters(request, {"column", "limit"})
        record, _ = access.collection(data_collection_id)
        try:
            values = access.catalog.tables.unique_values(
                record.id, column, filters, min(max(limit, 1), MAX_UNIQUE_VALUES)
            )
        except FilterError as error:
            raise ClientException(f"invalid request: {error}") from None
        if values is None:
            raise NotFoundException(f"data collection {data_collection_id!r} has no aggregated table yet")
        return UniqueValuesOut(column=column, values=[json_value(value) for value in values])

    @get(
        "/preview/{data_collection_id:str}",
        sync_to_thread=True,
        opt={"access": "read"},
        responses=error_responses(400, 401, 404),
        summary="The first rows of the table, optionally filtered",
        description=FILTERS_HELP,
    )
    def preview(
        self,
        request: Request[Any, Any, Any],
        access: NamedDependency[Access],
        data_collection_id: FromPath[str],
        limit: Annotated[int, QueryParameter(description="rows to return; values outside 1 to 1000 are clamped")] = 100,
    ) -> PreviewOut:
        filters = _filters(request, {"limit"})
        snapshot = _snapshot(
            access, data_collection_id, preview_rows=min(max(limit, 1), MAX_PREVIEW_ROWS), filters=filters
        )
        columns = snapshot.columns
        return PreviewOut(
            columns=columns,
            rows=[{name: json_value(value) for name, value in zip(columns, row, strict=True)} for row in snapshot.rows],
            total_rows=snapshot.record.row_count,
            total_columns=snapshot.record.column_count,
        )


def _snapshot(
    access: Access, collection_id: str, preview_rows: int = 0, filters: list[RowFilter] | None = None
) -> TableSnapshot:
    record, _ = access.collection(collection_id)
    try:
        snapshot = access.catalog.tables.snapshot(record.id, preview_rows, filters)
    except FilterError as error:
        raise ClientException(f"invalid filter: {error}") from None
    if snapshot is None:
        raise NotFoundException(f"data collection {collection_id!r} has no aggregated table yet")
    return snapshot


def _filters(request: Request[Any, Any, Any], reserved: set[str]) -> list[RowFilter]:
    try:
        return parse_filters(list(request.query_params.multi_items()), reserved)
    except FilterError as error:
        raise ClientException(f"invalid filter: {error}") from None


def _external_out(record: ExternalTableRecord | None) -> ExternalTableOut | None:
    if record is None:
        return None
    document = record.document
    return ExternalTableOut(
        location=record.location,
        size_bytes=record.size_bytes,
        delta_version=record.version,
        delta_commit_timestamp=document.get("delta_commit_timestamp"),
        write_mode=record.write_mode,
        rows_total=record.rows_total,
        rows_added=document.get("rows_added"),
        run_tags=list(document.get("run_tags", [])),
        ingestion_run_id=document.get("ingestion_run_id"),
        trigger=document.get("trigger"),
        recorded_by=record.recorded_by,
        recorded_at=format_time(record.recorded_at) or "",
    )


def _scans_workflow(ingestor: Ingestor, workflow_id: str | None) -> bool:
    """Tell whether the ingestor scans this workflow: it belongs to a configured project."""
    return any(workflow.id == workflow_id for project in ingestor.projects for workflow in project.workflows)


def _rescan(ingestor: Ingestor, workflow_id: str) -> None:
    """Rescan a workflow after the response was sent, logging a failure instead of raising it."""
    try:
        ingestor.rescan_workflow(workflow_id, trigger="api")
    except Exception:
        logger.exception(
            "rescan of workflow %s after a table deletion failed; the next reconcile rebuilds the table", workflow_id
        )


def _specs(snapshot: TableSnapshot) -> list[ColumnSpecOut]:
    return [
        ColumnSpecOut(name=spec.name, type=spec.type, description=spec.description, specs=spec.specs)
        for spec in snapshot.specs
    ]


def json_value(value: Any) -> Any:
    """Return a table value in a JSON-safe form: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    return value
