"""Scan reports: what each scan of a workflow found."""

from __future__ import annotations

import msgspec

from catalog.records import ScanReport
from catalog.store import Store

_COLUMNS = (
    "id, project_id, workflow_id, started_at, finished_at, runs, files_total, files_new, "
    "files_changed, files_removed, files_failed, details"
)


class ScanRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    def add(self, report: ScanReport) -> None:
        values = [getattr(report, name) for name in ScanReport.__struct_fields__]
        values[-1] = msgspec.json.encode(report.details).decode()
        self._store.write(
            lambda c: c.execute(
                f"INSERT INTO scan_reports ({_COLUMNS}) VALUES ({', '.join('?' * len(values))})", values
            )
        )
