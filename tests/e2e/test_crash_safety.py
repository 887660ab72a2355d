"""SIGKILL at random moments of an ingest never leaves a table that differs from the files."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from tests.examples import write_settings

RUNS = 100
KILLS = 20
COMMAND_DEADLINE_SECONDS = 120
PROJECT = """\
name: crash-test
workflows:
  - name: crash
    engine: {name: test}
    data_location: {structure: sequencing-runs, runs_regex: "run_", locations: [data]}
    data_collections:
      - data_collection_tag: counts
        config:
          type: table
          scan: {mode: recursive, scan_parameters: {regex_config: {pattern: 'counts_.*\\\\.csv$'}}}
          dc_specific_properties: {format: csv}
      - data_collection_tag: summary
        config:
          type: table
          scan: {mode: recursive, scan_parameters: {regex_config: {pattern: 'summary\\\\.tsv$'}}}
          dc_specific_properties: {format: tsv}
"""


def _write_tree(root: Path) -> Path:
    generator = random.Random(11)
    for run in range(RUNS):
        folder = root / "data" / f"run_{run:03d}"
        folder.mkdir(parents=True)
        for index in range(3):
            rows = "".join(f"g{row},{generator.randint(0, 999)},{generator.random():.4f}\n" for row in range(50))
            (folder / f"counts_{index}.csv").write_text("gene,count,score\n" + rows)
        (folder / "summary.tsv").write_text(f"sample\treads\ns{run}\t{generator.randint(1, 10**6)}\n")
    project = root / "project.yaml"
    project.write_text(PROJECT)
    return project


def _scan(settings: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "depictiod", "scan", "--config", str(settings)],
        capture_output=True,
        text=True,
        timeout=COMMAND_DEADLINE_SECONDS,
        env={**os.environ, "DEPICTIO_INGEST_WATCH_MODE": "off"},
    )


def _tables(catalog_path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Return every aggregated table's rows without depictiod's own time and file columns."""
    connection = duckdb.connect(str(catalog_path), read_only=True)
    try:
        names = [
            row[0]
            for row in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'data' ORDER BY 1"
            ).fetchall()
        ]
        return {
            name: connection.execute(
                f'SELECT * EXCLUDE (aggregation_time, depictio_file_id) FROM data."{name}" ORDER BY ALL'
            ).fetchall()
            for name in names
        }
    finally:
        connection.close()


def test_sigkill_during_ingest_leaves_exact_tables(tmp_path: Path) -> None:
    project = _write_tree(tmp_path)
    reference_root = tmp_path / "reference"
    reference_root.mkdir()
    reference_settings = write_settings(reference_root, [project])
    assert _scan(reference_settings).returncode == 0
    expected = _tables(reference_root / "catalog.duckdb")

    crash_root = tmp_path / "crash"
    crash_root.mkdir()
    settings = write_settings(crash_root, [project])
    generator = random.Random(5)
    equal = 0
    for _ in range(KILLS):
        (crash_root / "catalog.duckdb").unlink(missing_ok=True)
        (crash_root / "catalog.duckdb.wal").unlink(missing_ok=True)
        process = subprocess.Popen(
            [sys.executable, "-m", "depictiod", "scan", "--config", str(settings)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "DEPICTIO_INGEST_WATCH_MODE": "off"},
        )
        time.sleep(generator.uniform(0.5, 3.0))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=COMMAND_DEADLINE_SECONDS)

        restart = _scan(settings)
        assert restart.returncode == 0, restart.stderr
        equal += _tables(crash_root / "catalog.duckdb") == expected

    assert equal == KILLS
