"""Table files uploaded over the API, kept in a folder that the service owns.

An upload is stored as `<catalog path>.uploads/<collection id>/<file id>.<suffix>`. It is
written under a hidden temporary name with mode 0600, flushed to disk, and renamed once
complete, so an aggregation never reads part of a file. The folder of a collection that
no longer exists is removed with its files.
"""

from __future__ import annotations

import logging
import os
import shutil
from datetime import datetime
from typing import IO

import msgspec

from ingestor.discover import timestamp
from ingestor.hashing import content_hash

logger = logging.getLogger(__name__)

# Upload file names by ending, with the format they are read in and the suffix they are stored under.
# Compression is found from a file's first bytes, so `.gz` only needs to be allowed.
UPLOAD_SUFFIXES = {
    ".csv": ("csv", ".csv"),
    ".csv.gz": ("csv", ".csv.gz"),
    ".tsv": ("tsv", ".tsv"),
    ".tsv.gz": ("tsv", ".tsv.gz"),
    ".tab": ("tsv", ".tsv"),
    ".tab.gz": ("tsv", ".tsv.gz"),
    ".parquet": ("parquet", ".parquet"),
    ".pq": ("parquet", ".parquet"),
}
_PARTIAL_PREFIX = ".partial-"
_COPY_CHUNK_BYTES = 1 << 20


class UploadStorageError(Exception):
    """Raised when an uploaded file cannot be written to the uploads folder."""


class StoredUpload(msgspec.Struct, kw_only=True, frozen=True):
    """An upload written to the uploads folder, as the disk shows it."""

    path: str
    size: int
    mtime_ns: int
    creation_time: datetime
    modification_time: datetime
    content_hash: str


def upload_format(filename: str) -> tuple[str, str] | None:
    """Return (format, stored suffix) of an uploaded file by the end of its name, or None for other files."""
    name = filename.lower()
    for ending in sorted(UPLOAD_SUFFIXES, key=len, reverse=True):
        if name.endswith(ending):
            return UPLOAD_SUFFIXES[ending]
    return None


class UploadFolder:
    """The folder of uploaded files, one subfolder per data collection."""

    def __init__(self, root: str) -> None:
        self.root = root

    @classmethod
    def for_catalog(cls, catalog_path: str) -> UploadFolder:
        """Return the uploads folder of a catalog file: `<catalog path>.uploads`, beside it."""
        return cls(os.path.abspath(catalog_path) + ".uploads")

    def store(self, collection_id: str, file_id: str, suffix: str, source: IO[bytes]) -> StoredUpload:
        """Write `source` as the file `file_id` of the collection; raise UploadStorageError on a disk error."""
        folder = os.path.join(self.root, collection_id)
        path = os.path.join(folder, f"{file_id}{suffix}")
        partial = os.path.join(folder, f"{_PARTIAL_PREFIX}{file_id}{suffix}")
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                shutil.copyfileobj(source, handle, _COPY_CHUNK_BYTES)
                handle.flush()
                os.fsync(handle.fileno())
            os.rename(partial, path)
            info = os.stat(path)
            digest = content_hash(path)
        except OSError as error:
            _remove_quietly(partial)
            _remove_quietly(path)
            raise UploadStorageError(
                f"the uploaded file could not be stored ({error.strerror or error}); try again later"
            ) from error
        return StoredUpload(
            path=path,
            size=info.st_size,
            mtime_ns=info.st_mtime_ns,
            creation_time=timestamp(info.st_ctime),
            modification_time=timestamp(info.st_mtime),
            content_hash=digest,
        )

    def remove(self, paths: list[str]) -> None:
        """Delete uploaded files; a path outside the uploads folder is left alone."""
        prefix = self.root.rstrip(os.sep) + os.sep
        for path in paths:
            if os.path.abspath(path).startswith(prefix):
                _remove_quietly(path)

    def sweep(self, collection_ids: set[str], registered: set[str] | None = None) -> int:
        """Delete the folders of collections not in `collection_ids`; return how many went.

        With `registered` (the paths of every upload in the catalog), files that are not
        registered and partial files left by an interrupted upload go too. Pass it only
        while no upload can be running, such as at start.
        """
        try:
            entries = sorted(os.scandir(self.root), key=lambda entry: entry.name)
        except FileNotFoundError:
            return 0
        except OSError as error:
            logger.warning("uploads folder %s cannot be listed (%s); the next sweep tries again", self.root, error)
            return 0
        removed = 0
        for entry in entries:
            if entry.name not in collection_ids:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    _remove_quietly(entry.path)
                logger.info("removed the uploads of data collection %s: it no longer exists", entry.name)
                removed += 1
                continue
            if registered is not None and entry.is_dir():
                self._remove_unregistered(entry.path, registered)
        return removed

    def _remove_unregistered(self, folder: str, registered: set[str]) -> None:
        try:
            entries = list(os.scandir(folder))
        except OSError as error:
            logger.warning("uploads folder %s cannot be listed (%s); the next start tries again", folder, error)
            return
        for entry in entries:
            if entry.path in registered:
                continue
            _remove_quietly(entry.path)
            logger.info("removed %s from the uploads folder: no file of the catalog names it", entry.path)


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as error:
        logger.warning("uploaded file %s could not be deleted (%s); the next start deletes it", path, error)
