"""Scan reports: what each scan of a workflow found."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from catalog.records import ScanReport
from catalog.store import Connection, Store

# Scan reports kept per workflow; older ones are deleted as new ones arrive.
KEPT_PER_WORKFLOW = 1000
# Client ingestions kept per user who started them and per project; older ones are deleted
# as new ones arrive. Any signed-in user may start one, so the first bound is the one
# that holds for ingestions of projects that do not exist.
KEPT_CLIENT_PER_USER = 100
KEPT_CLIENT_PER_PROJECT = 1000

# Reports of client ingestions (see api.monitoring), and the user who started each.
_IS_CLIENT = "json_extract_string(details, '$.trigger') = 'client'"
_STARTED_BY = "json_extract_string(details, '$.ingestion.user_id')"

_COLUMNS = (
    "id, project_id, workflow_id, started_at, finished_at, runs, files_total, files_new, "
    "files_changed, files_removed, files_failed, details"
)


class ScanRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    def add(self, report: ScanReport) -> None:
        """Store a report, and drop the workflow's reports beyond the newest KEPT_PER_WORKFLOW."""

        def work(connection: Connection) -> None:
            _insert(connection, report)
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

    def add_client(self, report: ScanReport, user_id: str) -> None:
        """Store a new client ingestion, and drop the oldest beyond the kept counts of its user and project."""

        def work(connection: Connection) -> None:
            _insert(connection, report)
            _drop_old_client_reports(connection, user_id, report.project_id)

        self._store.write(work)

    def update_client(self, report_id: str, change: Callable[[ScanReport], ScanReport]) -> ScanReport | None:
        """Replace a client ingestion by `change(current report)` in one transaction.

        Returns the new report, or None when there is no client ingestion of that id. An
        exception raised by `change` leaves the stored report as it was.
        """

        def work(connection: Connection) -> ScanReport | None:
            row = connection.execute(
                f"SELECT {_COLUMNS} FROM scan_reports WHERE id = ? AND {_IS_CLIENT}", [report_id]
            ).fetchone()
            if row is None:
                return None
            report = change(_scan_report(row))
            connection.execute("DELETE FROM scan_reports WHERE id = ?", [report_id])
            _insert(connection, report)
            if report.project_id is not None:
                _drop_old_client_reports(connection, None, report.project_id)
            return report

        return self._store.write(work)

    def get_client(self, report_id: str) -> ScanReport | None:
        row = self._store.query_one(f"SELECT {_COLUMNS} FROM scan_reports WHERE id = ? AND {_IS_CLIENT}", [report_id])
        return _scan_report(row) if row is not None else None

    def exists(self, report_id: str) -> bool:
        return self._store.query_one("SELECT 1 FROM scan_reports WHERE id = ?", [report_id]) is not None

    def latest_client(self, project_id: str, limit: int) -> list[ScanReport]:
        """Return the project's newest client ingestions, newest first."""
        rows = self._store.query(
            f"SELECT {_COLUMNS} FROM scan_reports WHERE project_id = ? AND {_IS_CLIENT} "
            "ORDER BY finished_at DESC, id LIMIT ?",
            [project_id, limit],
        )
        return [_scan_report(row) for row in rows]

    def latest(self, project_id: str) -> list[ScanReport]:
        """Return the newest scan report of each workflow of the project, in workflow id order.

        Client ingestions belong to no workflow and are left out.
        """
        rows = self._store.query(
            f"SELECT {_COLUMNS} FROM scan_reports WHERE project_id = ? AND workflow_id IS NOT NULL "
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


def _insert(connection: Connection, report: ScanReport) -> None:
    values = [getattr(report, name) for name in ScanReport.__struct_fields__]
    values[-1] = msgspec.json.encode(report.details).decode()
    connection.execute(f"INSERT INTO scan_reports ({_COLUMNS}) VALUES ({', '.join('?' * len(values))})", values)


def _drop_old_client_reports(connection: Connection, user_id: str | None, project_id: str | None) -> None:
    """Delete the client ingestions beyond the newest kept ones of the user and of the project."""
    groups = []
    if user_id is not None:
        groups.append((_STARTED_BY, user_id, KEPT_CLIENT_PER_USER))
    if project_id is not None:
        groups.append(("project_id", project_id, KEPT_CLIENT_PER_PROJECT))
    for column, value, keep_count in groups:
        connection.execute(
            f"DELETE FROM scan_reports WHERE id IN (SELECT id FROM scan_reports WHERE {_IS_CLIENT} AND {column} = ? "
            "ORDER BY finished_at DESC, id DESC OFFSET ?)",
            [value, keep_count],
        )


def _scan_report(row: tuple[object, ...]) -> ScanReport:
    values = dict(zip(ScanReport.__struct_fields__, row, strict=True))
    values["details"] = msgspec.json.decode(str(values["details"]))
    return ScanReport(**values)  # type: ignore[arg-type]
