"""Reason classes of failed files: a short fixed set of labels for counting failures.

A failed file keeps its full message in the catalog. Its reason class groups such
messages for metrics, where a label must take few values:

- `empty`: the file has no bytes.
- `link`: a symbolic link that is broken or resolves outside the folders depictiod may read.
- `missing`: the file disappeared before it was read.
- `permission`: the operating system denied reading it.
- `io`: another operating-system error while reading it, or it is not a regular file.
- `format`: its content is not valid in its declared format (a parse or type error).
"""

from __future__ import annotations

import duckdb

FAILURE_REASONS = ("empty", "link", "missing", "permission", "io", "format")


def os_error_reason(error: OSError) -> str:
    """Return the reason class of an operating-system error met while reading a file."""
    if isinstance(error, FileNotFoundError):
        return "missing"
    if isinstance(error, PermissionError):
        return "permission"
    return "io"


def read_error_reason(error: BaseException) -> str:
    """Return the reason class of an error that made a table build skip a file.

    DuckDB reports a file it cannot open or read as IOException. The other errors come from
    parsing: DuckDB and Arrow errors, UnreadableFileError, and a ValueError or EOFError from
    a truncated compressed file.
    """
    if isinstance(error, OSError):
        return os_error_reason(error)
    if isinstance(error, duckdb.IOException):
        return "io"
    return "format"
