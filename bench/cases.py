"""Benchmark cases: each generates data and times depictiod and a reference on it."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import duckdb
import msgspec

from catalog import Catalog
from config import Settings, load_projects
from config.settings import IngestSettings
from ingestor import Ingestor

RUNS = 200
FILES_PER_RUN = 10
ROWS_PER_FILE = 200


class Case(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    reference_name: str
    generate: Callable[[Path], None]
    depictiod: Callable[[Path], None]
    reference: Callable[[Path], None]


def _generate_many_files(root: Path) -> None:
    """Write RUNS run folders of FILES_PER_RUN small CSVs, with an int/float drift in one column."""
    generator = random.Random(7)
    for run in range(RUNS):
        folder = root / "data" / f"run_{run:04d}"
        folder.mkdir(parents=True)
        for index in range(FILES_PER_RUN):
            lines = ["sample,gene,count,score"]
            for row in range(ROWS_PER_FILE):
                # Odd runs write integer scores and even runs decimals, so the table widens to DOUBLE.
                score = generator.randint(0, 100) if run % 2 else round(generator.random() * 100, 3)
                lines.append(f"s{index},g{row},{generator.randint(0, 10_000)},{score}")
            (folder / f"counts_{index}.csv").write_text("\n".join(lines) + "\n")
    (root / "project.yaml").write_text(
        "name: bench\nworkflows:\n  - name: bench\n    engine: {name: bench}\n"
        "    data_location: {structure: sequencing-runs, runs_regex: 'run_', locations: [data]}\n"
        "    data_collections:\n      - data_collection_tag: counts\n        config:\n          type: table\n"
        "          scan: {mode: recursive, scan_parameters: {regex_config: {pattern: 'counts_.*\\.csv$'}}}\n"
        "          dc_specific_properties: {format: csv}\n"
    )


def _depictiod_many_files(root: Path) -> None:
    """Scan and aggregate into an empty catalog, as a first start does."""
    catalog_path = root / "catalog.duckdb"
    catalog_path.unlink(missing_ok=True)
    catalog = Catalog(str(catalog_path))
    try:
        # The files were generated just now; waiting for them to settle is not what is measured.
        settings = Settings(ingest=IngestSettings(settle_seconds=0, watch_mode="off"))
        ingestor = Ingestor(catalog, settings, load_projects([str(root / "project.yaml")]))
        ingestor.register_projects()
        ingestor.scan_all()
    finally:
        catalog.close()


def _duckdb_many_files(root: Path) -> None:
    """Load the same files with one DuckDB read_csv over the file list into an on-disk table."""
    target = root / "reference.duckdb"
    target.unlink(missing_ok=True)
    files = sorted(str(path) for path in (root / "data").glob("run_*/counts_*.csv"))
    connection = duckdb.connect(str(target))
    try:
        connection.execute(
            "CREATE TABLE counts AS SELECT * FROM read_csv(?, union_by_name = true, filename = true)", [files]
        )
    finally:
        connection.close()


CASES: dict[str, Case] = {
    "many_files": Case(
        name="many_files",
        reference_name="duckdb read_csv(list)",
        generate=_generate_many_files,
        depictiod=_depictiod_many_files,
        reference=_duckdb_many_files,
    ),
}
