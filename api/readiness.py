"""Whether the service can read its catalog, and whether it is ready for traffic."""

from __future__ import annotations

import duckdb

from catalog import Catalog, CatalogError
from ingestor import Ingestor


def catalog_read_error(catalog: Catalog) -> str | None:
    """Return why the catalog cannot be read, or None when a query on it works."""
    try:
        catalog.store.query("SELECT 1")
    except (duckdb.Error, CatalogError) as error:
        return str(error).splitlines()[0]
    return None


def not_ready_reason(catalog: Catalog, ingestor: Ingestor) -> str | None:
    """Return why the service is not ready for traffic, or None when it is.

    Ready means that the start-up scan is finished, so the tables show the files as they
    were at start, and that the catalog can be read and written. The reasons name no path
    or project, because the readiness route is public.
    """
    status = ingestor.status
    if status.state == "stopped":
        return "the service is stopping"
    if status.startup == "failed":
        return "the start-up scan failed; see the service log"
    if status.startup != "finished":
        return "the start-up scan has not finished"
    if status.write_error is not None:
        return "the catalog cannot be written, so ingestion is paused; see the service log"
    if catalog_read_error(catalog) is not None:
        return "the catalog cannot be read"
    return None
