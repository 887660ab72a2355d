"""Scan reports: what each scan of a workflow found."""

from __future__ import annotations

from typing import Any

import msgspec

from catalog.records import ScanReport
from catalog.store import Connection, Store

# Scan reports kept per workflow; older ones are deleted as new ones arrive.
KEPT_PER_WORKFLOW = 1000

_COLUMNS = (
    "id, project_id, workflow_id, started_at, finished_at, runs, files_total, files_new, "
    "files_changed, files_removed, files_failed, details"
)


class ScanRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    def add(self, report: ScanReport) -> None:
        """Store a report, and drop the workflow's reports beyond the newest KEPT_PER_WORKFLOW."""
        values = [getattr(report, name) for name in ScanReport.__struct_fields__]
        values[-1] = msgspec.json.encode(report.details).decode()

        def work(connection: Connection) -> None:
            connection.execute(f"INSERT INTO scan_reports ({_COLUMNS}) VALUES ({', '.join('?' * len(values))})", values)
            # A reconcile every 5 minutes adds about 100,000 reports a year per workflow.
            connection.execute(
                "DELETE FROM scan_reports WHERE workflow_id = ? AND id IN ("
                "SELECT id FROM scan_reports WHERE workflow_id = ? "
                "ORDER BY finished_at DESC, id DESC OFFSET ?)",
                [report.workflow_id, report.workflow_id, KEPT_PER_WORKFLOW],
            )

        self._store.write(work)

    def add_collection_outcomes(self, report_id: str, outcomes: dict[str, dict[str, Any]]) -> None:
        """Merge each collection's aggregation outcome into the stored report, by collection id."""

        def work(connection: Connection) -> None:
            row = connection.execute("SELECT details FROM scan_reports WHERE id = ?", [report_id]).fetchall()
            if not row:
                return
            details = msgspec.json.decode(str(row[0][0]))
            for collection in details.get("collections", []):
                collection.update(outcomes.get(collection.get("collection_id"), {}))
            connection.execute(
                "UPDATE scan_reports SET details = ?, files_failed = ? WHERE id = ?",
                [
                    msgspec.json.encode(details).decode(),
                    sum(int(item.get("files_failed", 0)) for item in outcomes.values()),
                    report_id,
                ],
            )

        self._store.write(work)

    def latest(self, project_id: str) -> list[ScanReport]:
        """Return the newest report of each workflow of the project, in workflow id order."""
        rows = self._store.query(
            f"SELECT {_COLUMNS} FROM scan_reports WHERE project_id = ? "
            "QUALIFY row_number() OVER (PARTITION BY workflow_id ORDER BY finished_at DESC, id DESC) = 1 "
            "ORDER BY workflow_id",
            [project_id],
        )
        return [_scan_report(row) for row in rows]

    def list(self, project_ids: list[str], limit: int, offset: int) -> tuple[list[ScanReport], int]:
        """Return the newest reports of these projects (a page of them) and their total count."""
        with self._store.read() as cursor:
            total_row = cursor.execute(
                "SELECT count(*) FROM scan_reports WHERE project_id IN (SELECT unnest(?::VARCHAR[]))", [project_ids]
            ).fetchone()
            rows = cursor.execute(
                f"SELECT {_COLUMNS} FROM scan_reports WHERE project_id IN (SELECT unnest(?::VARCHAR[])) "
                "ORDER BY finished_at DESC, id LIMIT ? OFFSET ?",
                [project_ids, limit, offset],
            ).fetchall()
        reports = [_scan_report(row) for row in rows]
        return reports, int(total_row[0]) if total_row else 0


def _scan_report(row: tuple[object, ...]) -> ScanReport:
    values = dict(zip(ScanReport.__struct_fields__, row, strict=True))
    values["details"] = msgspec.json.decode(str(values["details"]))
    return ScanReport(**values)  # type: ignore[arg-type]
