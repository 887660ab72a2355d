"""Project files, data files and a scan harness over a real catalog, for ingestor tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

import catalog
import config
import ingestor
from config import Project
from tests import backends


def table_collection(
    tag: str,
    pattern: str,
    file_format: str = "csv",
    *,
    wildcards: dict[str, str] | None = None,
    max_depth: int | None = None,
    ignore: list[str] | None = None,
    **properties: Any,
) -> dict[str, Any]:
    """Return a recursive table data collection in Depictio's YAML layout."""
    regex_config: dict[str, Any] = {"pattern": pattern}
    if wildcards:
        regex_config["wildcards"] = [{"name": name, "wildcard_regex": regex} for name, regex in wildcards.items()]
    scan_parameters: dict[str, Any] = {"regex_config": regex_config}
    if max_depth is not None:
        scan_parameters["max_depth"] = max_depth
    if ignore is not None:
        scan_parameters["ignore"] = ignore
    return {
        "data_collection_tag": tag,
        "config": {
            "type": "table",
            "metatype": "Aggregate",
            "scan": {"mode": "recursive", "scan_parameters": scan_parameters},
            "dc_specific_properties": {"format": file_format, **properties},
        },
    }


def write_project(
    folder: Path,
    collections: list[dict[str, Any]],
    *,
    structure: str = "sequencing-runs",
    runs_regex: str | None = "run_.*",
    location: str | list[str] = "data",
) -> Path:
    """Write a one-workflow project file into `folder` and create its location folders."""
    locations = [location] if isinstance(location, str) else location
    for name in locations:
        (folder / name).mkdir(parents=True, exist_ok=True)
    data_location: dict[str, Any] = {"structure": structure, "locations": locations}
    if runs_regex is not None:
        data_location["runs_regex"] = runs_regex
    project = {
        "name": "ingest-test",
        "workflows": [
            {
                "name": "pipeline",
                "engine": {"name": "snakemake"},
                "data_location": data_location,
                "data_collections": collections,
            }
        ],
    }
    path = folder / "project.yaml"
    path.write_text(yaml.safe_dump(project, sort_keys=False), encoding="utf-8")
    return path


def wait_until(condition: Callable[[], bool], seconds: float, description: str) -> None:
    """Poll `condition` every 50 ms until it is true, and fail naming `description` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {seconds} s waiting for {description}"
        time.sleep(0.05)


def write_file(path: Path, text: str) -> Path:
    """Write `text` to `path`, creating its folders, and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


class Harness:
    """A project file, its catalog in the same folder, and an Ingestor over both.

    `catalog_settings` sets DuckDB's memory limit, threads and spill folder, and `ingest`
    overrides ingest settings. Without them, the catalog and the ingestor get the
    service's defaults, except that every file counts as settled at once.
    """

    def __init__(
        self,
        folder: Path,
        project_path: Path,
        catalog_settings: config.CatalogSettings | None = None,
        ingest: dict[str, Any] | None = None,
    ) -> None:
        self.folder = folder
        self.project_path = project_path
        self.catalog_path = folder / "catalog.duckdb"
        self.catalog_settings = catalog_settings
        # Test files are written just before each scan, so they must count as settled.
        self.ingest_settings = config.settings.IngestSettings(**{"settle_seconds": 0, **(ingest or {})})
        self._open()

    def _open(self) -> None:
        self.project: Project = config.load_projects([str(self.project_path)])[0]
        self.catalog = catalog.Catalog(
            str(self.catalog_path), backends.catalog_settings(self.catalog_path, self.catalog_settings)
        )
        settings = config.Settings(ingest=self.ingest_settings)
        self.ingestor = ingestor.Ingestor(self.catalog, settings, [self.project])
        self.ingestor.register_projects()

    @property
    def workflow_id(self) -> str:
        workflow_id = self.project.workflows[0].id
        assert workflow_id is not None
        return workflow_id

    def scan(self) -> ingestor.ProjectScan:
        """Scan and aggregate the project once and return its result."""
        results = self.ingestor.scan_all()
        assert len(results) == 1, f"scan of the project failed: {self.ingestor.status.last_error}"
        return results[0]

    def reopen(self) -> None:
        """Close the catalog and start again from the files on disk, as a restart does."""
        self.close()
        self._open()

    def close(self) -> None:
        """Stop the Ingestor's threads, if it was started, and close the catalog."""
        self.ingestor.stop()
        self.catalog.close()

    def collection_id(self, tag: str) -> str:
        for collection in self.project.workflows[0].data_collections:
            if collection.data_collection_tag == tag:
                assert collection.id is not None
                return collection.id
        raise KeyError(tag)

    def files(self, tag: str) -> list[catalog.FileRecord]:
        return self.catalog.files.list_for_collection(self.collection_id(tag))

    def file_names(self, tag: str) -> list[str]:
        """Return the registered files of a collection as paths relative to the location folder."""
        location = Path(self.project.workflows[0].data_location.locations[0]).resolve()
        return sorted(Path(record.file_location).relative_to(location).as_posix() for record in self.files(tag))

    def file(self, tag: str, filename: str) -> catalog.FileRecord:
        records = self.files(tag)
        found = [record for record in records if record.filename == filename]
        locations = [record.file_location for record in records]
        assert len(found) == 1, f"expected one file named {filename!r} in collection {tag!r}, got {locations}"
        return found[0]

    def runs(self) -> list[catalog.RunRecord]:
        return self.catalog.runs.list_for_workflow(self.workflow_id)

    def run_tags(self) -> list[str]:
        return [run.run_tag for run in self.runs()]

    def table(self, tag: str) -> catalog.TableRecord:
        table = self.catalog.tables.get(self.collection_id(tag))
        assert table is not None, f"collection {tag!r} has no aggregated table"
        return table

    def specs(self, tag: str) -> dict[str, catalog.ColumnSpec]:
        return {spec.name: spec for spec in self.catalog.tables.column_specs(self.collection_id(tag))}

    def column_types(self, tag: str) -> dict[str, str]:
        """Return {column name: DuckDB type} of the collection's aggregated table."""
        rows = self.catalog.store.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'data' AND table_name = ? ORDER BY ordinal_position",
            [f"dc_{self.collection_id(tag)}"],
        )
        return {str(name): str(kind) for name, kind in rows}

    def rows(self, tag: str, columns: str = "*", order_by: str = "ALL") -> list[tuple[Any, ...]]:
        """Return the rows of the collection's aggregated table."""
        table = f'data."dc_{self.collection_id(tag)}"'
        return self.catalog.store.query(f"SELECT {columns} FROM {table} ORDER BY {order_by}")

    def row_count_by_run(self, tag: str) -> dict[str, int]:
        """Return {run tag: number of rows} of the collection's aggregated table."""
        table = f'data."dc_{self.collection_id(tag)}"'
        rows = self.catalog.store.query(f"SELECT depictio_run_id, count(*) FROM {table} GROUP BY ALL ORDER BY 1")
        return {str(run_tag): int(count) for run_tag, count in rows}
