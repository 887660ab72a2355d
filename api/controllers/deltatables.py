"""`/deltatables`: the aggregated table of a data collection, under Depictio's names."""

from __future__ import annotations

import math
from datetime import date, datetime, time
from decimal import Decimal
from typing import Annotated, Any

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, QueryParameter

from api.access import Access, format_time
from api.schemas import AggregationOut, ColumnSpecOut, DeltaTableDocument, DriftOut, PreviewOut, ShapeOut
from catalog import TableSnapshot

MAX_PREVIEW_ROWS = 1000


class DeltaTableController(Controller):
    path = "/deltatables"
    tags = ["deltatables"]

    @get(
        "/get/{data_collection_id:str}",
        sync_to_thread=True,
        opt={"access": "read"},
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
        )

    @get(
        "/specs/{data_collection_id:str}",
        sync_to_thread=True,
        opt={"access": "read"},
        summary="Column specs of the latest aggregation",
    )
    def specs(self, access: NamedDependency[Access], data_collection_id: FromPath[str]) -> list[ColumnSpecOut]:
        return _specs(_snapshot(access, data_collection_id))

    @get(
        "/shape/{data_collection_id:str}",
        sync_to_thread=True,
        opt={"access": "read"},
        summary="Row and column counts",
    )
    def shape(self, access: NamedDependency[Access], data_collection_id: FromPath[str]) -> ShapeOut:
        table = _snapshot(access, data_collection_id).record
        return ShapeOut(num_rows=table.row_count, num_columns=table.column_count)

    @get(
        "/preview/{data_collection_id:str}",
        sync_to_thread=True,
        opt={"access": "read"},
        summary="The first rows of the table",
    )
    def preview(
        self,
        access: NamedDependency[Access],
        data_collection_id: FromPath[str],
        limit: Annotated[int, QueryParameter(description="rows to return; values outside 1 to 1000 are clamped")] = 100,
    ) -> PreviewOut:
        snapshot = _snapshot(access, data_collection_id, preview_rows=min(max(limit, 1), MAX_PREVIEW_ROWS))
        columns = snapshot.columns
        return PreviewOut(
            columns=columns,
            rows=[
                {name: _json_value(value) for name, value in zip(columns, row, strict=True)} for row in snapshot.rows
            ],
            total_rows=snapshot.record.row_count,
            total_columns=snapshot.record.column_count,
        )


def _snapshot(access: Access, collection_id: str, preview_rows: int = 0) -> TableSnapshot:
    access.collection(collection_id)
    snapshot = access.catalog.tables.snapshot(collection_id, preview_rows)
    if snapshot is None:
        raise NotFoundException(f"data collection {collection_id!r} has no aggregated table yet")
    return snapshot


def _specs(snapshot: TableSnapshot) -> list[ColumnSpecOut]:
    return [
        ColumnSpecOut(name=spec.name, type=spec.type, description=spec.description, specs=spec.specs)
        for spec in snapshot.specs
    ]


def _json_value(value: Any) -> Any:
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
