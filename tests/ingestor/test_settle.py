"""Files modified within the settle window are left for a later scan."""

from __future__ import annotations

import os
from pathlib import Path

import catalog
import config
import ingestor
from tests.ingestor.helpers import table_collection, write_file, write_project

SETTLE_SECONDS = 30.0


def _age(path: Path, seconds: float) -> None:
    stamp = path.stat().st_mtime_ns - int(seconds * 1e9)
    os.utime(path, ns=(stamp, stamp))


def _open(tmp_path: Path) -> tuple[catalog.Catalog, ingestor.Ingestor, str]:
    project = config.load_projects([str(write_project(tmp_path, [table_collection("t", r"t\.csv$")]))])[0]
    opened = catalog.Catalog(str(tmp_path / "catalog.duckdb"))
    settings = config.Settings(ingest=config.settings.IngestSettings(settle_seconds=SETTLE_SECONDS))
    service = ingestor.Ingestor(opened, settings, [project])
    service.register_projects()
    collection_id = project.workflows[0].data_collections[0].id
    assert collection_id is not None
    return opened, service, collection_id


def test_fresh_file_waits_for_settle(tmp_path: Path) -> None:
    fresh = write_file(tmp_path / "data" / "run_1" / "t.csv", "a,b\n1,2\n")
    opened, service, collection_id = _open(tmp_path)
    try:
        first = service.scan_all()[0]
        registered_first = opened.files.list_for_collection(collection_id)
        _age(fresh, 2 * SETTLE_SECONDS)
        second = service.scan_all()[0]
        registered_second = opened.files.list_for_collection(collection_id)
    finally:
        opened.close()

    assert first.unsettled == 1
    assert registered_first == []
    assert second.unsettled == 0
    assert len(registered_second) == 1


def test_changing_file_keeps_previous_rows(tmp_path: Path) -> None:
    path = write_file(tmp_path / "data" / "run_1" / "t.csv", "a,b\n1,2\n")
    _age(path, 2 * SETTLE_SECONDS)
    opened, service, collection_id = _open(tmp_path)
    try:
        service.scan_all()
        path.write_text("a,b\n1,2\n3,4\n5,")
        during = service.scan_all()[0]
        table = opened.tables.get(collection_id)
    finally:
        opened.close()

    assert during.unsettled == 1
    assert table is not None
    assert table.row_count == 1
