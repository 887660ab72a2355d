"""Checking a backup of the catalog, and putting it in place of the catalog.

A restore copies the backup next to the catalog and checks the copy (sizes and xxh3-128
digests against the manifest, then the schema version and the row count of every table
with DuckDB) before it replaces anything. The replaced catalog file, its WAL and its
uploads folder are kept under their names with `.before-restore` appended.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile

import duckdb
import msgspec

from catalog.backup import (
    DATABASE_NAME,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_NAME,
    UPLOADS_FOLDER,
    WAL_SUFFIX,
    BackupManifest,
    LastBackup,
    set_last_backup,
    utc_naive,
)
from catalog.backup_files import BackupFile, copy_file, describe_file, sync_path
from catalog.build import quote
from catalog.schema import MIGRATIONS, SCHEMA_VERSION
from catalog.store import lock_holder

logger = logging.getLogger(__name__)

BEFORE_RESTORE_SUFFIX = ".before-restore"


class InvalidBackupError(Exception):
    """Raised when a backup folder is incomplete, damaged, or of a format or schema this depictiod cannot read."""


class RestoreError(Exception):
    """Raised when a valid backup cannot be put in place; the catalog was left as it was."""


class RestoreResult(msgspec.Struct, kw_only=True, frozen=True):
    manifest: BackupManifest
    catalog_path: str
    # The files and folders that the restore moved aside, under their new names.
    replaced: list[str]
    # Tokens that the restore revoked, or None when it was not asked to revoke them.
    revoked_tokens: int | None = None


def read_manifest(folder: str) -> BackupManifest:
    """Read and check the manifest.json of a backup folder; raise InvalidBackupError when it is not usable."""
    if not os.path.isdir(folder):
        raise InvalidBackupError(f"the backup folder {folder!r} does not exist or is not a folder")
    path = os.path.join(folder, MANIFEST_NAME)
    _refuse_links(folder, MANIFEST_NAME)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise InvalidBackupError(
            f"{folder!r} contains no {MANIFEST_NAME}: it is not a depictiod backup, or its backup was interrupted"
        ) from None
    except OSError as error:
        raise InvalidBackupError(f"the manifest {path!r} cannot be read: {error.strerror}") from None
    try:
        manifest = msgspec.json.decode(raw, type=BackupManifest)
    except msgspec.DecodeError as error:
        raise InvalidBackupError(f"the manifest {path!r} is invalid: {error}") from None

    if manifest.format != FORMAT or manifest.format_version != FORMAT_VERSION:
        raise InvalidBackupError(
            f"the manifest {path!r} has format {manifest.format!r} version {manifest.format_version}; this "
            f"depictiod reads {FORMAT!r} version {FORMAT_VERSION}"
        )
    version = manifest.schema_version
    if version != SCHEMA_VERSION and version not in MIGRATIONS:
        raise InvalidBackupError(
            f"the backup {folder!r} has catalog schema version {version}, but this depictiod uses version "
            f"{SCHEMA_VERSION}; restore it with the depictiod release that wrote it ({manifest.depictiod_version})"
        )
    for entry in manifest.files:
        if not _is_safe_name(entry.path):
            raise InvalidBackupError(f"the manifest {path!r} names the file {entry.path!r}, outside the backup folder")
    if not any(entry.path == DATABASE_NAME for entry in manifest.files):
        raise InvalidBackupError(f"the manifest {path!r} lists no {DATABASE_NAME}")
    return manifest


def verify_backup(folder: str) -> BackupManifest:
    """Check a backup where it is, without changing anything; return its manifest or raise InvalidBackupError."""
    manifest = read_manifest(folder)
    for entry in manifest.files:
        _check_entry(_describe_or_fail(folder, entry), entry, folder)
    check_database(os.path.join(folder, DATABASE_NAME), manifest, folder)
    return manifest


def restore_backup(folder: str, catalog_path: str, uploads_folder: str, revoke_tokens: bool = False) -> RestoreResult:
    """Put the backup in `folder` in place of the catalog at `catalog_path` and its `uploads_folder`.

    The restored catalog has the users, passwords and tokens of the backup's time, so an
    account deleted or a token revoked since then works again. With `revoke_tokens`, every
    token of the restored catalog is revoked, and every user must sign in again.

    Raise InvalidBackupError when the backup fails a check, and RestoreError when another process
    has the catalog open or a file of an earlier restore is in the way. Neither changes the catalog.
    """
    folder = os.path.realpath(folder)
    catalog_path = os.path.abspath(catalog_path)
    uploads_folder = os.path.abspath(uploads_folder)
    manifest = read_manifest(folder)
    _check_not_in_use(catalog_path)
    moves = [(path, path + BEFORE_RESTORE_SUFFIX) for path in (catalog_path, catalog_path + WAL_SUFFIX, uploads_folder)]
    for _, aside in moves:
        if os.path.lexists(aside):
            raise RestoreError(
                f"{aside!r} already exists, left by an earlier restore; move it away or delete it, then run restore again"
            )

    try:
        replaced, revoked = _stage_and_swap(folder, manifest, catalog_path, uploads_folder, moves, revoke_tokens)
    except (OSError, duckdb.Error) as error:
        reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
        raise RestoreError(f"restoring {folder!r} failed: {reason}; the catalog was not changed") from None
    logger.info(
        "restored catalog %s from the backup %s made at %s; %d uploaded files; %s; replaced files kept as %s",
        catalog_path,
        folder,
        manifest.created_at.isoformat(),
        manifest.uploads,
        "users and tokens as at backup time" if revoked is None else f"{revoked} tokens revoked",
        ", ".join(replaced) or "none",
    )
    return RestoreResult(manifest=manifest, catalog_path=catalog_path, replaced=replaced, revoked_tokens=revoked)


def _stage_and_swap(
    folder: str,
    manifest: BackupManifest,
    catalog_path: str,
    uploads_folder: str,
    moves: list[tuple[str, str]],
    revoke_tokens: bool,
) -> tuple[list[str], int | None]:
    """Copy and check the backup in a folder beside the catalog, then swap it in.

    Return the paths moved aside, and the count of revoked tokens (None without `revoke_tokens`).
    """
    catalog_folder = os.path.dirname(catalog_path)
    os.makedirs(catalog_folder, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(catalog_path)}.restore-", dir=catalog_folder)
    try:
        _stage(folder, manifest, staging)
        staged_database = os.path.join(staging, DATABASE_NAME)
        check_database(staged_database, manifest, folder)
        revoked = _adapt(staged_database, manifest, folder, uploads_folder, revoke_tokens)
        # NOTE: a service that starts between this check and the renames below would open the
        # old catalog file; the window is as short as the renames.
        _check_not_in_use(catalog_path)
        installs = [(staged_database, catalog_path), (os.path.join(staging, UPLOADS_FOLDER), uploads_folder)]
        return _swap(moves, installs), revoked
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_database(path: str, manifest: BackupManifest, folder: str) -> None:
    """Open a backup's catalog file read-only and check its schema version and the rows of every table."""
    try:
        connection = duckdb.connect(
            path, read_only=True, config={"enable_external_access": False, "autoinstall_known_extensions": False}
        )
    except duckdb.Error as error:
        raise InvalidBackupError(
            f"the catalog file of the backup {folder!r} cannot be opened: {str(error).splitlines()[0]}"
        ) from None
    try:
        _check_contents(connection, manifest, folder)
    except duckdb.Error as error:
        raise InvalidBackupError(
            f"the catalog file of the backup {folder!r} cannot be read: {str(error).splitlines()[0]}"
        ) from None
    finally:
        connection.close()


def _check_contents(connection: duckdb.DuckDBPyConnection, manifest: BackupManifest, folder: str) -> None:
    rows = connection.execute("SELECT value FROM catalog_meta WHERE key = 'schema_version'").fetchall()
    found = rows[0][0] if rows else "missing"
    if found != str(manifest.schema_version):
        raise InvalidBackupError(
            f"the catalog file of the backup {folder!r} has schema version {found}, but the manifest records "
            f"{manifest.schema_version}"
        )
    for table in manifest.tables:
        counted = connection.execute(f"SELECT count(*) FROM {quote(table.schema)}.{quote(table.table)}").fetchall()
        if counted[0][0] != table.rows:
            raise InvalidBackupError(
                f"table {table.schema}.{table.table} of the backup {folder!r} has {counted[0][0]} rows, but the "
                f"manifest records {table.rows}"
            )


def _refuse_links(folder: str, name: str) -> None:
    """Raise InvalidBackupError when the file `name` of a backup, or a folder on its way, is a symbolic link.

    A backup's files are regular files, so a link means that someone changed the folder,
    and a restore would read a file from elsewhere.
    """
    path = folder
    for part in name.split("/"):
        path = os.path.join(path, part)
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return
        except OSError as error:
            raise InvalidBackupError(
                f"file {name!r} of the backup {folder!r} cannot be read: {error.strerror}"
            ) from None
        if stat.S_ISLNK(mode):
            raise InvalidBackupError(
                f"{path!r} in the backup {folder!r} is a symbolic link; a backup contains only files and folders, "
                "so the backup was changed after it was written"
            )


def _describe_or_fail(folder: str, entry: BackupFile) -> BackupFile:
    """Return the entry of a backup file as it is on disk; raise InvalidBackupError when it is missing."""
    _refuse_links(folder, entry.path)
    try:
        return describe_file(os.path.join(folder, *entry.path.split("/")), entry.path)
    except FileNotFoundError:
        raise InvalidBackupError(
            f"the backup {folder!r} lacks the file {entry.path!r} that its manifest lists"
        ) from None
    except OSError as error:
        raise InvalidBackupError(
            f"file {entry.path!r} of the backup {folder!r} cannot be read: {error.strerror}"
        ) from None


def _check_entry(found: BackupFile, expected: BackupFile, folder: str) -> None:
    if found.size != expected.size:
        raise InvalidBackupError(
            f"file {expected.path!r} of the backup {folder!r} has {found.size} bytes, but the manifest records "
            f"{expected.size}: the file is truncated or was changed"
        )
    if found.xxh3_128 != expected.xxh3_128:
        raise InvalidBackupError(
            f"file {expected.path!r} of the backup {folder!r} has the xxh3-128 digest {found.xxh3_128}, but the "
            f"manifest records {expected.xxh3_128}: the file is damaged or was changed"
        )


def _stage(folder: str, manifest: BackupManifest, staging: str) -> None:
    """Copy every file of the backup into `staging`, checking each against the manifest."""
    for entry in manifest.files:
        source = os.path.join(folder, *entry.path.split("/"))
        target = os.path.join(staging, *entry.path.split("/"))
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        _refuse_links(folder, entry.path)
        try:
            copied = copy_file(source, target, entry.path, entry.mtime_ns)
        except FileNotFoundError:
            raise InvalidBackupError(
                f"the backup {folder!r} lacks the file {entry.path!r} that its manifest lists"
            ) from None
        except OSError as error:
            raise RestoreError(f"copying {entry.path!r} of the backup {folder!r} failed: {error.strerror}") from None
        _check_entry(copied, entry, folder)


def _adapt(path: str, manifest: BackupManifest, folder: str, uploads_folder: str, revoke_tokens: bool) -> int | None:
    """Point the uploaded files at the new uploads folder, and record the restored backup as the last one.

    With `revoke_tokens`, also revoke every token and return how many were live; else return None.
    The CHECKPOINT at the end writes every change into the file, so no WAL is left beside it.
    """
    revoked = None
    connection = duckdb.connect(path, config={"enable_external_access": False})
    try:
        old_root = manifest.uploads_folder.rstrip(os.sep) + os.sep
        new_root = uploads_folder.rstrip(os.sep) + os.sep
        connection.execute("BEGIN TRANSACTION")
        if old_root != new_root and any(entry.path.startswith(UPLOADS_FOLDER + "/") for entry in manifest.files):
            connection.execute(
                "UPDATE files SET file_location = ? || substr(file_location, ?) "
                "WHERE origin = 'upload' AND starts_with(file_location, ?)",
                [new_root, len(old_root) + 1, old_root],
            )
        set_last_backup(connection, LastBackup(time=utc_naive(manifest.created_at), path=folder))
        if revoke_tokens:
            # Revoked rather than deleted: a later use of one is then recognised as revoked.
            row = connection.execute("UPDATE tokens SET revoked = true WHERE NOT revoked").fetchone()
            revoked = int(row[0]) if row else 0
        connection.execute("COMMIT")
        connection.execute("CHECKPOINT")
    finally:
        connection.close()
    return revoked


def _swap(moves: list[tuple[str, str]], installs: list[tuple[str, str]]) -> list[str]:
    """Move the old catalog aside and the staged one in; undo the moves done when one fails."""
    done: list[tuple[str, str]] = []
    try:
        for source, target in moves:
            if os.path.lexists(source):
                os.rename(source, target)
                done.append((source, target))
        for source, target in installs:
            if os.path.lexists(source):
                os.rename(source, target)
                done.append((source, target))
    except OSError as error:
        stranded = []
        for source, target in reversed(done):
            try:
                os.rename(target, source)
            except OSError as undo_error:
                logger.error("could not move %s back to %s: %s", target, source, undo_error.strerror)
                stranded.append(f"{target} (was {source})")
        outcome = "every file was moved back" if not stranded else "move these back by hand: " + ", ".join(stranded)
        raise RestoreError(f"putting the restored catalog in place failed: {error.strerror}; {outcome}") from None
    for folder in {os.path.dirname(target) for _, target in done}:
        try:
            sync_path(folder)
        except OSError as error:
            logger.warning("the renames in %s could not be flushed to disk: %s", folder, error.strerror)
    return [target for source, target in done if (source, target) in moves]


def _check_not_in_use(catalog_path: str) -> None:
    """Raise RestoreError when another process, such as a running service, has the catalog file open."""
    if not os.path.exists(catalog_path):
        return
    try:
        connection = duckdb.connect(catalog_path, read_only=True)
    except duckdb.Error as error:
        holder = lock_holder(error)
        if holder is None:
            # A damaged catalog cannot be opened either, and replacing it is what a restore is for.
            reason = str(error).splitlines()[0]
            logger.warning("the catalog %s cannot be opened (%s); restoring over it", catalog_path, reason)
            return
        program, pid = holder
        raise RestoreError(
            f"cannot restore into the catalog {catalog_path!r}: it is in use by PID {pid} ({program}); stop the "
            "depictiod service first, then run restore again"
        ) from None
    connection.close()


def _is_safe_name(name: str) -> bool:
    parts = name.split("/")
    return bool(name) and not name.startswith("/") and all(part not in ("", ".", "..") for part in parts)
