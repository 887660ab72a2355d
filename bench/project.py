"""Project YAML files for generated data, and depictiod's ingestor run in the benchmark's own process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec

from catalog import Catalog
from catalog.row_filters import RowFilter, RowsQuery
from config import Settings, load_projects
from config.settings import IngestSettings
from ingestor import Ingestor

PROJECT_ID = "6b0000000000000000000001"
WORKFLOW_ID = "6b0000000000000000000002"


class Collection(msgspec.Struct, kw_only=True, frozen=True):
    """A table collection of the generated project: its id, tag and file name pattern."""

    id: str
    tag: str
    # re.match pattern on the file name, as in a Depictio project YAML.
    pattern: str


def collection_id(index: int) -> str:
    """Return the fixed id of the project's `index`-th collection, so that API paths can name it."""
    return f"6b00000000000000000001{index:02x}"


def write_project(
    root: Path,
    collections: list[Collection],
    location: str = "data",
    *,
    name: str = "bench",
    project_id: str = PROJECT_ID,
    workflow_id: str = WORKFLOW_ID,
    file_name: str = "project.yaml",
) -> Path:
    """Write root/file_name: one workflow whose run folders `run_*` lie in root/location."""
    lines = [
        f'id: "{project_id}"',
        f"name: {name}",
        "workflows:",
        f'  - id: "{workflow_id}"',
        f"    name: {name}",
        "    engine: {name: bench}",
        f"    data_location: {{structure: sequencing-runs, runs_regex: 'run_', locations: [{location}]}}",
        "    data_collections:",
    ]
    for collection in collections:
        lines += [
            f'      - id: "{collection.id}"',
            f"        data_collection_tag: {collection.tag}",
            "        config:",
            "          type: table",
            f"          scan: {{mode: recursive, scan_parameters: {{regex_config: {{pattern: '{collection.pattern}'}}}}}}",
            "          dc_specific_properties: {format: csv}",
        ]
    path = root / file_name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@contextmanager
def open_ingestor(project: Path, catalog_path: Path) -> Iterator[Ingestor]:
    """Open a catalog and an ingestor over `project`, as `depictiod scan` does, and close the catalog after.

    Files count as settled at once (settle_seconds = 0), because the benchmark wrote them
    before it starts the clock, and nothing watches the folders.
    """
    catalog = Catalog(str(catalog_path))
    try:
        settings = Settings(ingest=IngestSettings(settle_seconds=0, watch_mode="off", reconcile_seconds=0))
        ingestor = Ingestor(catalog, settings, load_projects([str(project)]))
        ingestor.register_projects()
        yield ingestor
    finally:
        catalog.close()


def table_rows(ingestor: Ingestor, collection: str) -> int:
    """Return the row count of a collection's table, or 0 when it has none."""
    record = ingestor.catalog.tables.get(collection)
    return record.row_count if record is not None else 0


def run_rows(ingestor: Ingestor, collection: str, run_tag: str) -> int:
    """Count the rows of one run in a collection's table with a query, as a reader would."""
    run_filter = RowFilter(column="depictio_run_id", operator="eq", values=(run_tag,))
    page = ingestor.catalog.tables.rows(collection, RowsQuery(filters=(run_filter,), limit=1, count_total=True))
    return page.total or 0 if page is not None else 0
