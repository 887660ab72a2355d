"""Aggregated tables: build one table per data collection and swap it in atomically."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import msgspec

from catalog.build import BuildRequest, BuildResult, build_table, table_name
from catalog.records import ColumnSpec, DriftNote, TableRecord
from catalog.schema import AGGREGATED_TABLE_COLUMNS
from catalog.store import Connection, Store

logger = logging.getLogger(__name__)


class TableRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, collection_id: str) -> TableRecord | None:
        row = self._store.query_one(
            f"SELECT {AGGREGATED_TABLE_COLUMNS} FROM aggregated_tables WHERE data_collection_id = ?", [collection_id]
        )
        if row is None:
            return None
        values = dict(zip(TableRecord.__struct_fields__, row, strict=True))
        values["drift"] = msgspec.json.decode(str(values["drift"] or "[]"), type=list[DriftNote])
        return TableRecord(**values)

    def column_specs(self, collection_id: str) -> list[ColumnSpec]:
        rows = self._store.query(
            "SELECT name, duckdb_type, type, description, specs FROM column_specs "
            "WHERE data_collection_id = ? ORDER BY position",
            [collection_id],
        )
        return [
            ColumnSpec(
                name=name,
                duckdb_type=duckdb_type,
                type=kind,
                description=description,
                specs=msgspec.json.decode(spec_json),
            )
            for name, duckdb_type, kind, description, spec_json in rows
        ]

    def preview(self, collection_id: str, limit: int) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Return (column names, first `limit` rows) of the collection's table."""
        with self._store.read() as cursor:
            result = cursor.execute(f"SELECT * FROM {table_name(collection_id)} LIMIT ?", [limit])
            columns = [description[0] for description in result.description or []]
            return columns, result.fetchall()

    def build(self, request: BuildRequest) -> BuildResult:
        """Read every file of the request into a new table and swap it in for the old one."""
        return self._store.write_steps(lambda connection: build_table(connection, request))

    def drop(self, collection_id: str) -> None:
        """Remove a collection's table, for a collection that has no file left."""

        def work(connection: Connection) -> None:
            connection.execute(f"DROP TABLE IF EXISTS {table_name(collection_id)}")
            connection.execute("DELETE FROM aggregated_tables WHERE data_collection_id = ?", [collection_id])
            connection.execute("DELETE FROM column_specs WHERE data_collection_id = ?", [collection_id])

        self._store.write(work)


def fingerprint(parts: list[str]) -> str:
    """Return a hex digest identifying a table's inputs."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
