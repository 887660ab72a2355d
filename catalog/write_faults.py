"""Tell a write that the file system rejected from other DuckDB errors.

DuckDB 1.5.5 reports such a write as `Could not write file "<path>": <strerror>`, and what
happens next depends on where it failed (tried with ENOSPC on tmpfs, EFBIG from
RLIMIT_FSIZE and EROFS from an ext4 file system that went read-only):

- A commit whose WAL append fails raises TransactionException "Failed to commit: ...".
  DuckDB rolls the transaction back, and the connection stays usable for reads and writes.
- A large insert writes row groups to the database file ahead of its commit; when those
  writes fail, the commit fails the same way.
- A checkpoint that fails raises FatalException "Failed to create checkpoint because of
  error: ...". DuckDB then invalidates the database: every later statement on any of its
  connections fails with "database has been invalidated because of a previous fatal
  error" until the file is opened again. Opening it again replays the WAL, so no committed
  write is lost.
- Opening the file for writing on a read-only file system fails with IOException "Cannot
  open file ...: Read-only file system"; opening it read-only works.
"""

from __future__ import annotations

import duckdb

from catalog.errors import CatalogUnwritableError

_READ_ONLY = "the file system is read-only"
# The strerror texts of the errno values that mean "this file cannot be written now", with
# the words the service status uses for each.
_CAUSES = (
    ("No space left on device", "the disk is full"),
    ("Disk quota exceeded", "the disk quota is used up"),
    # EFBIG: the file system's largest file size or the process's RLIMIT_FSIZE.
    ("File too large", "a file size limit is reached"),
    ("Read-only file system", _READ_ONLY),
    ("Input/output error", "the disk reported an I/O error"),
)
_INVALIDATED = "database has been invalidated"
_ORIGINAL_ERROR = 'Original error: "'


def classify_write_error(error: BaseException) -> CatalogUnwritableError | None:
    """Return the CatalogUnwritableError for `error` of the catalog connection, or None for another kind of error.

    Any invalidated database counts, whatever invalidated it, because the file has to be
    opened again before anything can be written.
    """
    if isinstance(error, CatalogUnwritableError):
        return error
    if not isinstance(error, duckdb.Error):
        return None
    text = str(error)
    detail = _detail(error)
    for marker, summary in _CAUSES:
        if marker in text:
            return CatalogUnwritableError(summary, detail)
    if is_invalidated(error):
        return CatalogUnwritableError("DuckDB closed the database after a fatal error", detail)
    return None


def is_invalidated(error: BaseException) -> bool:
    """Tell whether `error` means that DuckDB invalidated the database, so it must be opened again."""
    return isinstance(error, duckdb.FatalException) or _INVALIDATED in str(error)


def is_read_only_file_system(failure: CatalogUnwritableError) -> bool:
    """Tell whether `failure` came from a read-only file system (EROFS)."""
    return failure.summary == _READ_ONLY


def _detail(error: duckdb.Error) -> str:
    """Return the line of a DuckDB message that names the failed operation and file."""
    text = str(error)
    start = text.find(_ORIGINAL_ERROR)
    if start >= 0:
        return text[start + len(_ORIGINAL_ERROR) :].splitlines()[0].removesuffix('"')
    return text.splitlines()[0] if text else type(error).__name__
