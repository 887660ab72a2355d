"""Scan reports in the catalog: what is kept as reports pile up."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

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


def _client_report(number: int, user_id: str, project_id: str | None) -> ScanReport:
    at = utc_now() + timedelta(seconds=number)
    return ScanReport(
        id=f"client-{user_id}-{number}",
        project_id=project_id,
        workflow_id=None,
        started_at=at,
        finished_at=at,
        runs=0,
        files_total=0,
        files_new=0,
        files_changed=0,
        files_removed=0,
        files_failed=0,
        details={"trigger": "client", "ingestion": {"user_id": user_id}},
    )


def test_old_client_ingestions_of_a_user_are_dropped(tmp_path: Path) -> None:
    store = Catalog(str(tmp_path / "catalog.duckdb"))
    try:
        for number in range(scans.KEPT_CLIENT_PER_USER + 3):
            store.scans.add_client(_client_report(number, "u1", None), "u1")
        store.scans.add_client(_client_report(0, "u2", None), "u2")
        kept = store.store.query("SELECT id FROM scan_reports ORDER BY finished_at")
    finally:
        store.close()

    ids = [row[0] for row in kept]
    assert len(ids) == scans.KEPT_CLIENT_PER_USER + 1
    assert "client-u1-0" not in ids
    assert "client-u2-0" in ids
    assert f"client-u1-{scans.KEPT_CLIENT_PER_USER + 2}" in ids


def test_client_ingestions_stay_out_of_workflow_reports(tmp_path: Path) -> None:
    store = Catalog(str(tmp_path / "catalog.duckdb"))
    try:
        store.scans.add_client(_client_report(0, "u1", "p"), "u1")
        latest = store.scans.latest("p")
        clients = store.scans.latest_client("p", limit=10)
        reports, total = store.scans.list(["p"], limit=10, offset=0)
    finally:
        store.close()

    assert latest == []
    assert [report.id for report in clients] == ["client-u1-0"]
    assert total == 1
    assert reports[0].workflow_id is None


def test_update_of_client_ingestion_keeps_it_on_error(tmp_path: Path) -> None:
    store = Catalog(str(tmp_path / "catalog.duckdb"))

    def fail(report: ScanReport) -> ScanReport:
        raise ValueError("rejected")

    try:
        store.scans.add_client(_client_report(0, "u1", "p"), "u1")
        with pytest.raises(ValueError, match="rejected"):
            store.scans.update_client("client-u1-0", fail)
        kept = store.scans.get_client("client-u1-0")
        missing = store.scans.update_client("no-such-id", fail)
    finally:
        store.close()

    assert kept is not None
    assert kept.project_id == "p"
    assert missing is None
