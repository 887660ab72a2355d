"""Time a backup, its check and a restore of a generated catalog, and how long writes wait meanwhile.

`python -m bench.backup --rows 20000000` builds a catalog with one data table of that many
rows in a temporary folder, then backs it up while a thread keeps committing small writes,
checks the backup and restores it next to the original. It prints the catalog's size, the
seconds of each step, and the longest time one of the small writes took during the backup.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time

from catalog import Catalog, restore_backup, verify_backup
from catalog.store import Connection

# Seconds between two of the small writes that run during the backup.
_WRITE_INTERVAL_SECONDS = 0.01


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backup", description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000_000, help="rows of the generated data table")
    arguments = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="depictiod-backup-bench-") as root:
        path = os.path.join(root, "service", "catalog.duckdb")
        catalog = Catalog(path)
        try:
            _fill(catalog, arguments.rows)
            size = os.path.getsize(path)
            backup = os.path.join(root, "backup")
            seconds, longest_write, writes = _timed_backup(catalog, backup)
        finally:
            catalog.close()

        started = time.monotonic()
        verify_backup(backup)
        verify_seconds = time.monotonic() - started
        target = os.path.join(root, "restored", "catalog.duckdb")
        started = time.monotonic()
        restore_backup(backup, target, target + ".uploads")
        restore_seconds = time.monotonic() - started

    mebibytes = size / 2**20
    print(f"catalog: {arguments.rows} rows in one data table, {mebibytes:.1f} MiB")
    print(f"backup: {seconds:.2f} s ({mebibytes / seconds:.0f} MiB/s)")
    print(f"small writes during the backup: {writes}, the longest took {longest_write:.2f} s")
    print(f"verify: {verify_seconds:.2f} s")
    print(f"restore to a new path: {restore_seconds:.2f} s")
    return 0


def _fill(catalog: Catalog, rows: int) -> None:
    def work(connection: Connection) -> None:
        connection.execute(
            "CREATE TABLE data.dc_bench AS SELECT range AS id, range % 1000 AS sample, "
            f"random() AS value, 'run_' || (range % 200) AS depictio_run_id FROM range({rows})"
        )

    catalog.store.write(work)
    catalog.store.checkpoint()


def _timed_backup(catalog: Catalog, backup: str) -> tuple[float, float, int]:
    """Back up the catalog while a thread commits small writes; return seconds, longest write, writes."""
    stop = threading.Event()
    durations: list[float] = []

    def write_often() -> None:
        def work(connection: Connection) -> None:
            connection.execute("DELETE FROM catalog_meta WHERE key = 'bench'")
            connection.execute("INSERT INTO catalog_meta VALUES ('bench', 'x')")

        while not stop.is_set():
            started = time.monotonic()
            catalog.store.write(work)
            durations.append(time.monotonic() - started)
            time.sleep(_WRITE_INTERVAL_SECONDS)

    writer = threading.Thread(target=write_often, name="bench-writes")
    writer.start()
    time.sleep(0.2)
    started = time.monotonic()
    try:
        catalog.backups.write(backup, catalog.path + ".uploads", [])
    finally:
        seconds = time.monotonic() - started
        stop.set()
        writer.join()
    return seconds, max(durations, default=0.0), len(durations)


if __name__ == "__main__":
    raise SystemExit(main())
