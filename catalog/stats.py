"""Counts and sizes of the whole catalog, for monitoring."""

from __future__ import annotations

import os

import msgspec

from catalog.store import Store


class CatalogStats(msgspec.Struct, kw_only=True, frozen=True):
    """Counts of the catalog's records, and the sizes of its files on disk."""

    runs: int
    # Files by status: registered (not read yet), aggregated or failed.
    files: dict[str, int]
    # Tables of data collections and of joins, and their rows.
    tables: int
    table_rows: int
    # Bytes of the DuckDB file and of its write-ahead log; 0 for a file that does not exist.
    database_bytes: int
    wal_bytes: int


def read_stats(store: Store) -> CatalogStats:
    """Count the catalog's runs, files and table rows, and measure its files on disk."""
    runs = store.query_one("SELECT count(*) FROM runs")
    files = store.query("SELECT status, count(*) FROM files GROUP BY status")
    tables = store.query_one("SELECT count(*), coalesce(sum(row_count), 0) FROM aggregated_tables")
    return CatalogStats(
        runs=int(runs[0]) if runs else 0,
        files={str(status): int(count) for status, count in files},
        tables=int(tables[0]) if tables else 0,
        table_rows=int(tables[1]) if tables else 0,
        database_bytes=_file_size(store.path),
        # DuckDB keeps the write-ahead log beside the database, named <database>.wal.
        wal_bytes=_file_size(f"{store.path}.wal"),
    )


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
