"""Scan reports in the catalog: what is kept as reports pile up."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from catalog import Catalog, ScanReport, scans, utc_now


def test_old_scan_reports_are_dropped(tmp_path: Path) -> None:
    store = Catalog(str(tmp_path / "catalog.duckdb"))
    try:
        started = utc_now()
        for number in range(scans.KEPT_PER_WORKFLOW + 5):
            at = started + timedelta(seconds=number)
            store.scans.add(
                ScanReport(
                    id=f"{number:024x}",
                    project_id="p",
                    workflow_id="w",
                    started_at=at,
                    finished_at=at,
                    runs=0,
                    files_total=0,
                    files_new=0,
                    files_changed=0,
                    files_removed=0,
                    files_failed=0,
                    details={"trigger": "schedule"},
                )
            )
        reports, total = store.scans.list(["p"], limit=1, offset=0)
    finally:
        store.close()

    assert total == scans.KEPT_PER_WORKFLOW
    assert reports[0].id == f"{scans.KEPT_PER_WORKFLOW + 4:024x}"
