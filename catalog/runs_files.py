"""Runs and files: registered by scans, listed by the API."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pyarrow

from catalog.events import EventLog
from catalog.records import FileRecord, RunRecord
from catalog.store import Connection, Store

_RUN_COLUMNS = (
    "id, workflow_id, run_tag, run_location, workflow_config_id, creation_time, "
    "last_modification_time, registration_time, run_hash, parameters, origin, document"
)
_FILE_COLUMNS = (
    "id, data_collection_id, workflow_id, run_id, run_tag, file_location, filename, filesize, "
    "mtime_ns, creation_time, modification_time, content_hash, wildcards, status, error, "
    "error_line, row_count, registration_time, link_target, read_details, origin, document"
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
        return [_run_record(row) for row in rows]

    def get(self, run_id: str) -> RunRecord | None:
        row = self._store.query_one(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", [run_id])
        if row is None:
            return None
        return _run_record(row)

    def workflows_of(self, run_ids: list[str]) -> dict[str, str]:
        """Return {run id: workflow id} of the runs among `run_ids` that exist."""
        rows = self._store.query(
            "SELECT id, workflow_id FROM runs WHERE id IN (SELECT unnest(?::VARCHAR[]))", [run_ids]
        )
        return {str(run_id): str(workflow_id) for run_id, workflow_id in rows}

    def file_ids(self, run_id: str) -> list[str]:
        """Return the ids of the run's files in path order.

        Only files of the run's own workflow count. A client of another project may register
        a file under a run id that its project does not own (run ids of scanned runs are
        derived from names), and such a file must not appear in this run.
        """
        rows = self._store.query(
            "SELECT id FROM files WHERE run_id = ? "
            "AND workflow_id = (SELECT workflow_id FROM runs WHERE id = ?) ORDER BY file_location",
            [run_id, run_id],
        )
        return [row[0] for row in rows]

    def file_ids_by_run(self, workflow_id: str) -> dict[str, list[str]]:
        """Return {run id: its file ids in path order} of the workflow's runs that have files, in one query."""
        rows = self._store.query(
            "SELECT run_id, list(id ORDER BY file_location) FROM files WHERE workflow_id = ? GROUP BY run_id",
            [workflow_id],
        )
        return {str(run_id): list(file_ids) for run_id, file_ids in rows}


class FileRepository:
    def __init__(self, store: Store, events: EventLog) -> None:
        self._store = store
        self._events = events

    def get(self, file_id: str) -> FileRecord | None:
        row = self._store.query_one(f"SELECT {_FILE_COLUMNS} FROM files WHERE id = ?", [file_id])
        return _file_record(row) if row is not None else None

    def list_for_collection(self, collection_id: str) -> list[FileRecord]:
        rows = self._store.query(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE data_collection_id = ? ORDER BY run_tag, file_location",
            [collection_id],
        )
        return [_file_record(row) for row in rows]

    def list_for_workflow(self, workflow_id: str) -> list[FileRecord]:
        rows = self._store.query(f"SELECT {_FILE_COLUMNS} FROM files WHERE workflow_id = ?", [workflow_id])
        return [_file_record(row) for row in rows]

    def upload_locations(self) -> set[str]:
        """Return the path of every uploaded file in the catalog."""
        return {str(row[0]) for row in self._store.query("SELECT file_location FROM files WHERE origin = 'upload'")}

    def status_counts(self, collection_id: str) -> dict[str, int]:
        """Return {status: number of files} of the collection: registered, aggregated or failed."""
        rows = self._store.query(
            "SELECT status, count(*) FROM files WHERE data_collection_id = ? GROUP BY status", [collection_id]
        )
        return {str(status): int(count) for status, count in rows}

    def list_failed(self, collection_id: str, limit: int) -> list[FileRecord]:
        """Return at most `limit` failed files of the collection, in run tag and path order."""
        rows = self._store.query(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE data_collection_id = ? AND status = 'failed' "
            "ORDER BY run_tag, file_location LIMIT ?",
            [collection_id, limit],
        )
        return [_file_record(row) for row in rows]

    def counts_by_run(self, workflow_id: str) -> dict[str, tuple[int, int]]:
        """Return {run id: (files, failed files)} of the workflow's runs that have files."""
        rows = self._store.query(
            "SELECT run_id, count(*), count(*) FILTER (WHERE status = 'failed') FROM files "
            "WHERE workflow_id = ? GROUP BY run_id",
            [workflow_id],
        )
        return {str(run_id): (int(total), int(failed)) for run_id, total, failed in rows}

    def record_observations(self, files: list[FileRecord]) -> None:
        """Store what a check of registered files saw on disk: size, times, hash and outcome.

        Only a file still registered at the same location is updated, so a file that a
        client deleted or moved meanwhile is not brought back.
        """
        if not files:
            return
        names = [
            "id",
            "file_location",
            "filesize",
            "mtime_ns",
            "creation_time",
            "modification_time",
            "content_hash",
            "status",
            "error",
            "error_line",
            "row_count",
            "link_target",
            "read_details",
        ]
        rows = [{name: _file_row(file)[name] for name in names} for file in files]
        assignments = ", ".join(f"{name} = o.{name}" for name in names[2:])

        def work(connection: Connection) -> None:
            connection.register("observed_files", pyarrow.Table.from_pylist(rows))
            try:
                connection.execute(
                    f"UPDATE files SET {assignments} FROM observed_files AS o "
                    "WHERE files.id = o.id AND files.file_location = o.file_location"
                )
            finally:
                connection.unregister("observed_files")

        self._store.write(work)
        for file in files:
            if file.status == "failed":
                self._events.file_failed(file, file.error, file.error_line)

    def sync_workflow(self, workflow_id: str, runs: list[RunRecord], files: list[FileRecord]) -> SyncCounts:
        """Make the workflow's runs and files found by scans exactly `runs` and `files`, in one transaction.

        A file whose size, mtime and content hash are unchanged keeps its row, so its status
        and row count survive a rescan. Runs and files that clients registered or uploaded
        (origin other than `scan`) are left as they are.
        """

        def work(connection: Connection) -> tuple[SyncCounts, list[RunRecord], list[FileRecord], list[FileRecord]]:
            counts = SyncCounts()
            new_runs = _sync_runs(connection, workflow_id, runs, counts)
            new_files, changed_files = _sync_files(connection, workflow_id, files, counts)
            return counts, new_runs, new_files, changed_files

        counts, new_runs, new_files, changed_files = self._store.write(work)
        self._events.runs_added(new_runs)
        self._events.files_added(new_files)
        for file in changed_files:
            if file.status == "failed":
                self._events.file_failed(file, file.error, file.error_line)
        return counts


def _run_record(row: tuple[object, ...]) -> RunRecord:
    values = dict(zip(RunRecord.__struct_fields__, row, strict=True))
    values["parameters"] = msgspec.json.decode(str(values["parameters"] or "{}"))
    values["document"] = msgspec.json.decode(str(values["document"] or "{}"))
    values["origin"] = values["origin"] or "scan"
    return RunRecord(**values)  # type: ignore[arg-type]


def _file_record(row: tuple[object, ...]) -> FileRecord:
    values = dict(zip(FileRecord.__struct_fields__, row, strict=True))
    values["wildcards"] = msgspec.json.decode(str(values["wildcards"] or "{}"))
    values["read_details"] = msgspec.json.decode(str(values["read_details"] or "{}"))
    values["document"] = msgspec.json.decode(str(values["document"] or "{}"))
    values["origin"] = values["origin"] or "scan"
    return FileRecord(**values)  # type: ignore[arg-type]


def store_file_results(
    connection: Connection, results: list[tuple[str, str, str | None, int | None, int | None, str]]
) -> None:
    """Record (file id, status, error, error line, row count, read details as JSON) of each file after an aggregation."""
    if not results:
        return
    names = ("id", "status", "error", "error_line", "row_count", "read_details")
    connection.register("file_results", pyarrow.Table.from_pylist([dict(zip(names, r, strict=True)) for r in results]))
    try:
        connection.execute(
            "UPDATE files SET status = r.status, error = r.error, error_line = r.error_line, "
            "row_count = r.row_count, read_details = r.read_details FROM file_results AS r WHERE files.id = r.id"
        )
    finally:
        connection.unregister("file_results")


def _sync_runs(connection: Connection, workflow_id: str, runs: list[RunRecord], counts: SyncCounts) -> list[RunRecord]:
    """Write the runs that are new or changed and delete those gone; return the new ones."""
    compared = (
        "run_location",
        "workflow_config_id",
        "creation_time",
        "last_modification_time",
        "run_hash",
        "parameters",
    )
    stored = {
        row[0]: (row[1], row[2:])
        for row in connection.execute(
            f"SELECT id, registration_time, {', '.join(compared)} FROM runs WHERE workflow_id = ? AND origin = 'scan'",
            [workflow_id],
        ).fetchall()
    }
    found = {run.id for run in runs}
    removed = sorted(set(stored) - found)
    counts.runs_removed += len(removed)

    # A run keeps its first registration time; an unchanged run is not written again.
    written = []
    added = []
    for run in runs:
        previous = stored.get(run.id)
        if previous is not None and previous[1] == tuple(_run_row(run)[name] for name in compared):
            continue
        if previous is None:
            counts.runs_added += 1
            added.append(run)
        else:
            run = msgspec.structs.replace(run, registration_time=previous[0])
        written.append(run)

    _delete_ids(connection, "runs", removed + [run.id for run in written])
    _insert_records(connection, "runs", _RUN_COLUMNS, [_run_row(run) for run in written])
    return added


def _sync_files(
    connection: Connection, workflow_id: str, files: list[FileRecord], counts: SyncCounts
) -> tuple[list[FileRecord], list[FileRecord]]:
    """Write the files that are new or changed and delete those gone; return (new, changed)."""
    stored = {
        row[0]: (row[1], row[2], row[3])
        for row in connection.execute(
            "SELECT id, filesize, mtime_ns, content_hash FROM files WHERE workflow_id = ? AND origin = 'scan'",
            [workflow_id],
        ).fetchall()
    }
    found = {file.id for file in files}
    removed = sorted(set(stored) - found)
    counts.files_removed += len(removed)

    added = []
    changed = []
    for file in files:
        previous = stored.get(file.id)
        if previous == (file.filesize, file.mtime_ns, file.content_hash):
            continue
        if previous is None:
            counts.files_added += 1
            added.append(file)
        else:
            counts.files_changed += 1
            changed.append(file)

    written = added + changed
    _delete_ids(connection, "files", removed + [file.id for file in written])
    _insert_records(connection, "files", _FILE_COLUMNS, [_file_row(file) for file in written])
    return added, changed


def _run_row(run: RunRecord) -> dict[str, object]:
    row = {name: getattr(run, name) for name in RunRecord.__struct_fields__}
    row["parameters"] = msgspec.json.encode(run.parameters).decode() if run.parameters else None
    row["document"] = msgspec.json.encode(run.document).decode() if run.document else None
    return row


def _file_row(file: FileRecord) -> dict[str, object]:
    row = {name: getattr(file, name) for name in FileRecord.__struct_fields__}
    row["wildcards"] = msgspec.json.encode(file.wildcards).decode()
    row["read_details"] = msgspec.json.encode(file.read_details).decode()
    row["document"] = msgspec.json.encode(file.document).decode() if file.document else None
    return row


def _delete_ids(connection: Connection, table: str, ids: list[str]) -> None:
    if ids:
        connection.execute(f"DELETE FROM {table} WHERE id IN (SELECT unnest(?::VARCHAR[]))", [ids])


def _insert_records(connection: Connection, table: str, columns: str, rows: list[dict[str, object]]) -> None:
    """Insert many rows in one statement through an Arrow table; one INSERT per row is 100x slower."""
    if not rows:
        return
    view = f"new_{table}"
    connection.register(view, pyarrow.Table.from_pylist(rows))
    try:
        connection.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {view}")
    finally:
        connection.unregister(view)


def utc_now() -> datetime:
    """Return the current UTC time without a zone, as the catalog stores times."""
    return datetime.now(UTC).replace(tzinfo=None)
