"""Runs and files: registered by scans, listed by the API."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from catalog.records import FileRecord, RunRecord
from catalog.store import Connection, Store

_RUN_COLUMNS = (
    "id, workflow_id, run_tag, run_location, workflow_config_id, creation_time, "
    "last_modification_time, registration_time, run_hash"
)
_FILE_COLUMNS = (
    "id, data_collection_id, workflow_id, run_id, run_tag, file_location, filename, filesize, "
    "mtime_ns, creation_time, modification_time, content_hash, wildcards, status, error, "
    "error_line, row_count, registration_time"
)


class SyncCounts(msgspec.Struct, kw_only=True):
    """Counts of the runs and files that one workflow sync changed in the catalog."""

    runs_added: int = 0
    runs_removed: int = 0
    files_added: int = 0
    files_changed: int = 0
    files_removed: int = 0


class RunRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    def list_for_workflow(self, workflow_id: str) -> list[RunRecord]:
        rows = self._store.query(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE workflow_id = ? ORDER BY run_tag", [workflow_id]
        )
        return [RunRecord(**dict(zip(RunRecord.__struct_fields__, row, strict=True))) for row in rows]

    def get(self, run_id: str) -> RunRecord | None:
        row = self._store.query_one(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", [run_id])
        if row is None:
            return None
        return RunRecord(**dict(zip(RunRecord.__struct_fields__, row, strict=True)))

    def file_ids(self, run_id: str) -> list[str]:
        return [
            row[0]
            for row in self._store.query("SELECT id FROM files WHERE run_id = ? ORDER BY file_location", [run_id])
        ]


class FileRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    def list_for_collection(self, collection_id: str) -> list[FileRecord]:
        rows = self._store.query(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE data_collection_id = ? ORDER BY run_tag, file_location",
            [collection_id],
        )
        return [_file_record(row) for row in rows]

    def list_for_workflow(self, workflow_id: str) -> list[FileRecord]:
        rows = self._store.query(f"SELECT {_FILE_COLUMNS} FROM files WHERE workflow_id = ?", [workflow_id])
        return [_file_record(row) for row in rows]

    def sync_workflow(self, workflow_id: str, runs: list[RunRecord], files: list[FileRecord]) -> SyncCounts:
        """Make the workflow's runs and files exactly `runs` and `files`, in one transaction.

        A file whose size, mtime and content hash are unchanged keeps its row, so its status
        and row count survive a rescan.
        """

        def work(connection: Connection) -> SyncCounts:
            counts = SyncCounts()
            _sync_runs(connection, workflow_id, runs, counts)
            _sync_files(connection, workflow_id, files, counts)
            return counts

        return self._store.write(work)

    def set_results(self, results: list[tuple[str, str, str | None, int | None, int | None]]) -> None:
        """Record (file id, status, error, error line, row count) after an aggregation."""

        def work(connection: Connection) -> None:
            for file_id, status, error, line, rows in results:
                connection.execute(
                    "UPDATE files SET status = ?, error = ?, error_line = ?, row_count = ? WHERE id = ?",
                    [status, error, line, rows, file_id],
                )

        self._store.write(work)


def _file_record(row: tuple[object, ...]) -> FileRecord:
    values = dict(zip(FileRecord.__struct_fields__, row, strict=True))
    values["wildcards"] = msgspec.json.decode(str(values["wildcards"] or "{}"))
    return FileRecord(**values)  # type: ignore[arg-type]


def _sync_runs(connection: Connection, workflow_id: str, runs: list[RunRecord], counts: SyncCounts) -> None:
    stored = {
        row[0] for row in connection.execute("SELECT id FROM runs WHERE workflow_id = ?", [workflow_id]).fetchall()
    }
    wanted = {run.id for run in runs}

    for run_id in stored - wanted:
        connection.execute("DELETE FROM runs WHERE id = ?", [run_id])
        counts.runs_removed += 1

    for run in runs:
        previous = connection.execute("SELECT registration_time FROM runs WHERE id = ?", [run.id]).fetchone()
        registered = previous[0] if previous else run.registration_time
        if previous is None:
            counts.runs_added += 1
        connection.execute("DELETE FROM runs WHERE id = ?", [run.id])
        values = [getattr(run, name) for name in RunRecord.__struct_fields__]
        values[RunRecord.__struct_fields__.index("registration_time")] = registered
        connection.execute(f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES ({', '.join('?' * len(values))})", values)


def _sync_files(connection: Connection, workflow_id: str, files: list[FileRecord], counts: SyncCounts) -> None:
    stored = {
        row[0]: (row[1], row[2], row[3])
        for row in connection.execute(
            "SELECT id, filesize, mtime_ns, content_hash FROM files WHERE workflow_id = ?", [workflow_id]
        ).fetchall()
    }
    wanted = {file.id for file in files}

    for file_id in set(stored) - wanted:
        connection.execute("DELETE FROM files WHERE id = ?", [file_id])
        counts.files_removed += 1

    for file in files:
        previous = stored.get(file.id)
        if previous == (file.filesize, file.mtime_ns, file.content_hash):
            continue
        if previous is None:
            counts.files_added += 1
        else:
            counts.files_changed += 1
        connection.execute("DELETE FROM files WHERE id = ?", [file.id])
        values = [getattr(file, name) for name in FileRecord.__struct_fields__]
        values[FileRecord.__struct_fields__.index("wildcards")] = msgspec.json.encode(file.wildcards).decode()
        connection.execute(f"INSERT INTO files ({_FILE_COLUMNS}) VALUES ({', '.join('?' * len(values))})", values)


def utc_now() -> datetime:
    """Return the current UTC time without a zone, as the catalog stores times."""
    return datetime.now(UTC).replace(tzinfo=None)
