"""Catalog exceptions. None of them refers to HTTP: api/ maps them to status codes."""

from __future__ import annotations


class CatalogError(Exception):
    """Raised when the catalog file cannot be opened or used."""


class CatalogLockedError(CatalogError):
    """Raised when another process, such as a running service, holds the lock of the catalog file."""

    def __init__(self, message: str, pid: int) -> None:
        super().__init__(message)
        self.pid = pid


class SchemaVersionError(CatalogError):
    """Raised when the catalog file was written by a depictiod with another schema version."""

    def __init__(self, path: str, found: str, expected: int) -> None:
        super().__init__(
            f"the catalog {path!r} has schema version {found}, but this depictiod uses version "
            f"{expected}; use the depictiod release that wrote it, or move the file away to start "
            "a new catalog (tables are rebuilt from the workflow files)"
        )


class NotFoundError(CatalogError):
    """Raised when a requested catalog record does not exist."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} not found")


class ConflictError(CatalogError):
    """Raised when a write would break a uniqueness rule of the catalog."""


class CatalogUnwritableError(CatalogError):
    """Raised when the catalog file cannot be written now (disk full, read-only file system, I/O error).

    Reads still work. The store retries writing in the background and notifies its
    listeners when writes work again.
    """

    def __init__(self, summary: str, detail: str) -> None:
        # The cause in plain words, without file paths, for anyone who may read the service status.
        self.summary = summary
        # DuckDB's message, which names the file that could not be written.
        self.detail = detail
        super().__init__(f"the catalog cannot be written: {summary} ({detail})")
