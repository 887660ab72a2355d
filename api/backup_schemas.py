"""Bodies of `POST /utils/backup`, and the last backup shown by `/utils/status`."""

from __future__ import annotations

import msgspec


class BackupIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # Absolute path of a new or empty folder on the service's machine, whose parent exists.
    to: str


class BackupOut(msgspec.Struct, kw_only=True):
    # The backup folder, with symbolic links resolved.
    path: str
    # The catalog file that the backup is a copy of, as the service that wrote it opened it.
    catalog_path: str
    # UTC.
    created_at: str
    schema_version: int
    files: int
    size_bytes: int
    tables: int
    uploads: int
    # Uploaded files that the catalog lists but that were missing from the uploads folder.
    missing_uploads: list[str]
    # False when the CHECKPOINT before the copy failed, so the backup includes the WAL.
    checkpointed: bool
    # Seconds during which writes to the catalog waited for the copy, and seconds in all.
    writes_paused_seconds: float
    seconds: float


class LastBackupOut(msgspec.Struct, kw_only=True):
    # When the last backup was made, UTC. After a restore, the time of the backup restored.
    time: str
    # Its folder; for administrators only, null for everyone else.
    path: str | None
