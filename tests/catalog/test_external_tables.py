"""Reports of tables that clients wrote outside depictiod."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from catalog import Catalog, ExternalTableRecord, external_tables, utc_now
from config import load_projects
from tests.examples import copy_bundled_examples

IRIS_TABLE = "6a0002000000000000000003"


def _record(collection_id: str, version: int) -> ExternalTableRecord:
    return ExternalTableRecord(
        data_collection_id=collection_id,
        location=f"s3://bucket/{collection_id}",
        size_bytes=100,
        version=version,
        rows_total=150,
        write_mode="overwrite",
        document={"delta_version": version},
        recorded_by="u1",
        recorded_at=utc_now() + timedelta(seconds=version),
    )


def test_newest_reports_are_kept(tmp_path: Path) -> None:
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    try:
        for version in range(external_tables.KEPT_PER_COLLECTION + 4):
            catalog.external_tables.add(_record("c1", version))
        catalog.external_tables.add(_record("c2", 0))
        latest = catalog.external_tables.latest("c1")
        deleted = catalog.external_tables.delete("c1")
        other = catalog.external_tables.latest("c2")
    finally:
        catalog.close()

    assert latest is not None
    assert latest.version == external_tables.KEPT_PER_COLLECTION + 3
    assert latest.document == {"delta_version": external_tables.KEPT_PER_COLLECTION + 3}
    assert deleted == external_tables.KEPT_PER_COLLECTION
    assert other is not None


def test_removed_project_takes_its_reports(tmp_path: Path) -> None:
    _, iris = copy_bundled_examples(tmp_path)
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    try:
        catalog.projects.sync_from_config(load_projects([str(iris)]))
        catalog.external_tables.add(_record(IRIS_TABLE, 1))
        catalog.projects.sync_from_config([])
        latest = catalog.external_tables.latest(IRIS_TABLE)
    finally:
        catalog.close()

    assert latest is None
