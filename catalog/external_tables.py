"""Tables that clients wrote outside depictiod and reported with `POST /deltatables/upsert`.

depictiod does not read these tables: it keeps serving its own aggregated table of the
collection. A report records where the client wrote its copy, at which Delta
version and with how many rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from catalog.store import Connection, Store

# Reports kept per data collection; older ones are deleted as new ones arrive.
KEPT_PER_COLLECTION = 100

_COLUMNS = (
    "data_collection_id, location, size_bytes, version, rows_total, write_mode, document, recorded_by, recorded_at"
)


class ExternalTableRecord(msgspec.Struct, kw_only=True, frozen=True):
    data_collection_id: str
    # Location of the client's table, such as s3://bucket/<collection id>.
    location: str
    size_bytes: int | None
    # The Delta table version that the client's write committed.
    version: int | None
    rows_total: int | None
    write_mode: str | None
    # Every field of the client's report, as it sent them.
    document: dict[str, Any]
    # The id of the user who reported it.
    recorded_by: str
    recorded_at: datetime


class ExternalTableRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    def add(self, record: ExternalTableRecord) -> None:
        """Store a report, and drop the collection's reports beyond the newest KEPT_PER_COLLECTION."""
        fields = msgspec.structs.asdict(record)
        fields["document"] = msgspec.json.encode(record.document).decode()
        values = list(fields.values())

        def work(connection: Connection) -> None:
            connection.execute(
                f"INSERT INTO external_tables ({_COLUMNS}) VALUES ({', '.join('?' * len(values))})", values
            )
            # Rows have no id column, so the newest KEPT_PER_COLLECTION by time stay.
            connection.execute(
                "DELETE FROM external_tables WHERE data_collection_id = ? AND recorded_at < ("
                "SELECT min(recorded_at) FROM (SELECT recorded_at FROM external_tables "
                "WHERE data_collection_id = ? ORDER BY recorded_at DESC LIMIT ?))",
                [record.data_collection_id, record.data_collection_id, KEPT_PER_COLLECTION],
            )

        self._store.write(work)

    def latest(self, collection_id: str) -> ExternalTableRecord | None:
        row = self._store.query_one(
            f"SELECT {_COLUMNS} FROM external_tables WHERE data_collection_id = ? ORDER BY recorded_at DESC LIMIT 1",
            [collection_id],
        )
        if row is None:
            return None
        values = dict(zip(ExternalTableRecord.__struct_fields__, row, strict=True))
        values["document"] = msgspec.json.decode(str(values["document"]))
        return ExternalTableRecord(**values)

    def delete(self, collection_id: str) -> int:
        """Delete every report of the collection and return how many there were."""

        def work(connection: Connection) -> int:
            row = connection.execute(
                "SELECT count(*) FROM external_tables WHERE data_collection_id = ?", [collection_id]
            ).fetchone()
            connection.execute("DELETE FROM external_tables WHERE data_collection_id = ?", [collection_id])
            return int(row[0]) if row else 0

        return self._store.write(work)
