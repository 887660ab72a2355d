"""Runs and files that clients such as the Depictio CLI register, update and delete over the API.

A client's records carry the ids it chose and `origin = 'client'`. depictiod never removes
them itself: a run or file stays until a client deletes it, and a file that vanished from
disk is marked failed with the reason, so its rows leave the table until it returns. Files
uploaded into a collection's table have `origin = 'upload'` and live in the service's own
uploads folder.
"""

from __future__ import annotations

import msgspec

from catalog.errors import ConflictError, NotFoundError
from catalog.events import EventLog
from catalog.records import FileRecord, RunRecord
from catalog.runs_files import (
    _FILE_COLUMNS,
    _RUN_COLUMNS,
    _delete_ids,
    _file_record,
    _file_row,
    _insert_records,
    _run_row,
)
from catalog.store import Connection, Store

# Scan results kept per run; a client that watches a folder sends one per cycle.
MAX_SCAN_RESULTS = 50


class UpsertCounts(msgspec.Struct, kw_only=True):
    """Counts of an upsert: new records, records replaced, and records left as they were."""

    inserted: int = 0
    updated: int = 0
    existing: int = 0


class DeleteCounts(msgspec.Struct, kw_only=True):
    requested: int
    deleted: int
    # Each deleted record's (workflow id, collection id or None), for rebuilding tables.
    touched: list[tuple[str, str | None]] = msgspec.field(default_factory=list)


class Registry:
    def __init__(self, store: Store, events: EventLog) -> None:
        self._store = store
        self._events = events

    def upsert_runs(self, workflow_id: str, runs: list[RunRecord], update: bool) -> UpsertCounts:
        """Register runs of one workflow in one transaction.

        A run whose id is registered is replaced when `update` is true and left alone
        otherwise. A new run whose tag another run of the workflow has raises ConflictError,
        as does an id that a run of another workflow has. Replacing a run keeps its
        registration time and adds the new `scan_results` to the old ones.
        """

        added: list[RunRecord] = []

        def work(connection: Connection) -> UpsertCounts:
            counts = UpsertCounts()
            added.clear()
            ids = [run.id for run in runs]
            stored = {
                row[0]: row[1:]
                for row in connection.execute(
                    "SELECT id, workflow_id, run_tag, registration_time, document FROM runs "
                    "WHERE id IN (SELECT unnest(?::VARCHAR[]))",
                    [ids],
                ).fetchall()
            }
            tags = {
                str(row[0]): str(row[1])
                for row in connection.execute(
                    "SELECT run_tag, id FROM runs WHERE workflow_id = ?", [workflow_id]
                ).fetchall()
            }
            written: list[RunRecord] = []
            for index, run in enumerate(runs):
                previous = stored.get(run.id)
                if previous is not None and previous[0] != workflow_id:
                    raise ConflictError(
                        f"runs[{index}].id: run id {run.id!r} is used by another workflow; use a new id"
                    )
                holder = tags.get(run.run_tag)
                if holder is not None and holder != run.id:
                    raise ConflictError(
                        f"runs[{index}].run_tag: workflow {workflow_id} already has a run tagged {run.run_tag!r} "
                        f"(id {holder}); send that id to update it, or delete that run first"
                    )
                if previous is None:
                    counts.inserted += 1
                    written.append(run)
                    added.append(run)
                elif update:
                    counts.updated += 1
                    old_document = msgspec.json.decode(str(previous[3] or "{}"))
                    written.append(_merged_run(run, previous[2], old_document))
                else:
                    counts.existing += 1
            _delete_ids(connection, "runs", [run.id for run in written])
            _insert_records(connection, "runs", _RUN_COLUMNS, [_run_row(run) for run in written])
            return counts

        counts = self._store.write(work)
        self._events.runs_added(added)
        return counts

    def upsert_files(self, files: list[FileRecord], update: bool) -> UpsertCounts:
        """Register files in one transaction.

        A file whose id is registered is replaced when `update` is true and left alone
        otherwise. A new file at a location that another file of the same collection has
        replaces that file, so a location is never counted twice. An id that a file of
        another collection has raises ConflictError.
        """

        added: list[FileRecord] = []

        def work(connection: Connection) -> UpsertCounts:
            counts = UpsertCounts()
            added.clear()
            collections = sorted({file.data_collection_id for file in files})
            present = {
                str(row[0])
                for row in connection.execute(
                    "SELECT id FROM data_collections WHERE id IN (SELECT unnest(?::VARCHAR[]))", [collections]
                ).fetchall()
            }
            for index, file in enumerate(files):
                if file.data_collection_id not in present:
                    raise ConflictError(
                        f"files[{index}].data_collection_id: data collection {file.data_collection_id} was removed "
                        "from its project meanwhile"
                    )
            stored = {
                record.id: record
                for record in (
                    _file_record(row)
                    for row in connection.execute(
                        f"SELECT {_FILE_COLUMNS} FROM files WHERE id IN (SELECT unnest(?::VARCHAR[]))",
                        [[file.id for file in files]],
                    ).fetchall()
                )
            }
            # Files already registered at a location of the batch, by (collection, location).
            at_location: dict[tuple[str, str], list[str]] = {}
            for file_id, collection_id, location in connection.execute(
                "SELECT id, data_collection_id, file_location FROM files "
                "WHERE file_location IN (SELECT unnest(?::VARCHAR[]))",
                [sorted({file.file_location for file in files})],
            ).fetchall():
                at_location.setdefault((str(collection_id), str(location)), []).append(str(file_id))
            written: list[FileRecord] = []
            replaced: list[str] = []
            for index, file in enumerate(files):
                previous = stored.get(file.id)
                if previous is not None and previous.data_collection_id != file.data_collection_id:
                    raise ConflictError(
                        f"files[{index}].id: file id {file.id!r} is used by another data collection; use a new id"
                    )
                if previous is not None and not update:
                    counts.existing += 1
                    continue
                if previous is None:
                    counts.inserted += 1
                    added.append(file)
                else:
                    counts.updated += 1
                    file = _kept_observations(file, previous)
                written.append(file)
                # The same location registered under another id: the newest registration wins.
                others = at_location.get((file.data_collection_id, file.file_location), [])
                replaced += [other for other in others if other != file.id]
            _delete_ids(connection, "files", replaced + [file.id for file in written])
            _insert_records(connection, "files", _FILE_COLUMNS, [_file_row(file) for file in written])
            return counts

        counts = self._store.write(work)
        self._events.files_added(added)
        return counts

    def add_uploads(self, collection_id: str, files: list[FileRecord], replace: bool) -> list[FileRecord]:
        """Register files uploaded into a collection in one transaction; return the files it removed.

        With `replace`, the collection's files that clients registered or uploaded are removed
        first; files found by scans stay. Raise NotFoundError when the collection no longer
        exists, for example because it was deleted while the upload was being stored.
        """

        def work(connection: Connection) -> list[FileRecord]:
            if connection.execute("SELECT 1 FROM data_collections WHERE id = ?", [collection_id]).fetchone() is None:
                raise NotFoundError("data collection", collection_id)
            removed = _client_files(connection, collection_id) if replace else []
            _delete_ids(connection, "files", [file.id for file in removed])
            _insert_records(connection, "files", _FILE_COLUMNS, [_file_row(file) for file in files])
            return removed

        removed = self._store.write(work)
        self._events.files_added(files)
        return removed

    def clear_collection(self, collection_id: str) -> list[FileRecord]:
        """Remove the files that clients registered or uploaded into a collection; return them."""

        def work(connection: Connection) -> list[FileRecord]:
            removed = _client_files(connection, collection_id)
            _delete_ids(connection, "files", [file.id for file in removed])
            return removed

        return self._store.write(work)

    def delete_runs(self, run_ids: list[str]) -> DeleteCounts:
        """Delete runs by id; their files stay until deleted too, as Depictio clients expect."""
        return self._delete("runs", "workflow_id, NULL", run_ids)

    def delete_files(self, file_ids: list[str]) -> DeleteCounts:
        return self._delete("files", "workflow_id, data_collection_id", file_ids)

    def _delete(self, table: str, owners: str, ids: list[str]) -> DeleteCounts:
        def work(connection: Connection) -> DeleteCounts:
            rows = connection.execute(
                f"SELECT id, {owners} FROM {table} WHERE id IN (SELECT unnest(?::VARCHAR[]))", [ids]
            ).fetchall()
            _delete_ids(connection, table, [str(row[0]) for row in rows])
            touched = sorted({(str(row[1]), None if row[2] is None else str(row[2])) for row in rows})
            return DeleteCounts(requested=len(ids), deleted=len(rows), touched=touched)

        return self._store.write(work)


def _client_files(connection: Connection, collection_id: str) -> list[FileRecord]:
    rows = connection.execute(
        f"SELECT {_FILE_COLUMNS} FROM files WHERE data_collection_id = ? AND origin IN ('client', 'upload')",
        [collection_id],
    ).fetchall()
    return [_file_record(row) for row in rows]


def _kept_observations(file: FileRecord, previous: FileRecord) -> FileRecord:
    """Return a file registered again, keeping its first registration time.

    At the same location, it also keeps what depictiod saw on disk (size, times, hash, outcome):
    registering a file again does not change its content, and the next check finds any change.
    """
    file = msgspec.structs.replace(file, registration_time=previous.registration_time)
    if file.file_location != previous.file_location:
        return file
    return msgspec.structs.replace(
        file,
        filesize=previous.filesize,
        mtime_ns=previous.mtime_ns,
        creation_time=previous.creation_time,
        modification_time=previous.modification_time,
        content_hash=previous.content_hash,
        status=previous.status,
        error=previous.error,
        error_line=previous.error_line,
        row_count=previous.row_count,
        link_target=previous.link_target,
        read_details=previous.read_details,
    )


def _merged_run(run: RunRecord, registered: object, old_document: dict[str, object]) -> RunRecord:
    """Return `run` with the first registration time and every scan result, old and new."""
    old_results = old_document.get("scan_results")
    results = list(old_results) if isinstance(old_results, list) else []
    for result in run.document.get("scan_results") or []:
        if result not in results:
            results.append(result)
    document = {**run.document, "scan_results": results[-MAX_SCAN_RESULTS:]}
    return msgspec.structs.replace(run, registration_time=registered, document=document)
