"""A location that vanishes keeps its runs for a grace period, then loses them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import catalog
import config
import ingestor
from tests.ingestor.helpers import table_collection, write_file, write_project


def _open(tmp_path: Path, grace_seconds: int) -> tuple[catalog.Catalog, ingestor.Ingestor, str]:
    project = config.load_projects([str(write_project(tmp_path, [table_collection("t", r"t\.csv$")]))])[0]
    opened = catalog.Catalog(str(tmp_path / "catalog.duckdb"))
    ingest = config.settings.IngestSettings(settle_seconds=0, missing_location_grace_seconds=grace_seconds)
    service = ingestor.Ingestor(opened, config.Settings(ingest=ingest), [project])
    service.register_projects()
    workflow_id = project.workflows[0].id
    assert workflow_id is not None
    return opened, service, workflow_id


def _unmount(data: Path) -> None:
    shutil.move(str(data), str(data.with_name("data-away")))


def test_missing_location_keeps_runs_in_grace(tmp_path: Path) -> None:
    write_file(tmp_path / "data" / "run_1" / "t.csv", "a,b\n1,2\n")
    write_file(tmp_path / "data" / "run_2" / "t.csv", "a,b\n3,4\n")
    opened, service, workflow_id = _open(tmp_path, grace_seconds=3600)
    try:
        service.scan_all()
        _unmount(tmp_path / "data")
        result = service.scan_all()[0]
        runs = [run.run_tag for run in opened.runs.list_for_workflow(workflow_id)]
    finally:
        opened.close()

    assert runs == ["run_1", "run_2"]
    assert result.workflows[0].counts.files_removed == 0
    assert any("kept until it returns" in warning for warning in result.workflows[0].warnings)


def test_missing_location_after_grace_loses_runs(tmp_path: Path) -> None:
    write_file(tmp_path / "data" / "run_1" / "t.csv", "a,b\n1,2\n")
    opened, service, workflow_id = _open(tmp_path, grace_seconds=0)
    try:
        service.scan_all()
        _unmount(tmp_path / "data")
        result = service.scan_all()[0]
        runs = opened.runs.list_for_workflow(workflow_id)
    finally:
        opened.close()

    assert runs == []
    assert any("its runs are removed" in warning for warning in result.workflows[0].warnings)


def test_returning_location_resets_grace(tmp_path: Path) -> None:
    write_file(tmp_path / "data" / "run_1" / "t.csv", "a,b\n1,2\n")
    opened, service, workflow_id = _open(tmp_path, grace_seconds=3600)
    try:
        service.scan_all()
        _unmount(tmp_path / "data")
        service.scan_all()
        os.rename(tmp_path / "data-away", tmp_path / "data")
        back = service.scan_all()[0]
        runs = [run.run_tag for run in opened.runs.list_for_workflow(workflow_id)]
    finally:
        opened.close()

    assert runs == ["run_1"]
    assert back.workflows[0].warnings == []
