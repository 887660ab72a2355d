"""Aggregate the files of a table data collection into its DuckDB table."""

from __future__ import annotations

import logging
import time
from collections import Counter

import msgspec

from catalog import BuildRequest, Catalog, FileRecord, SourceFile, fingerprint
from catalog.safe_open import releasing_fifos
from config import DataCollection, ReaderOptions, TableProperties, parse_reader_options

logger = logging.getLogger(__name__)

# Depictio processes image collections exactly like tables: their rows describe images.
TABLE_TYPES = ("table", "image")


class CollectionAggregate(msgspec.Struct, kw_only=True):
    collection_id: str
    tag: str
    # built (whole table written), updated (rows of changed files replaced), unchanged,
    # empty (no file to read), skipped (not a table collection) or error.
    outcome: str
    rows: int = 0
    files_aggregated: int = 0
    files_failed: int = 0
    seconds: float = 0.0
    # Rows read from the files that this aggregation read; `rows` is the whole table's.
    rows_read: int = 0
    # Files that failed when this aggregation read them, by reason class (see catalog.failures).
    failures: dict[str, int] = msgspec.field(default_factory=dict)


def aggregate_collection(
    catalog: Catalog, collection: DataCollection, unreadable: dict[str, str] | None = None
) -> CollectionAggregate:
    """Rebuild the collection's table when its files or settings changed since the last build.

    `unreadable` maps a collection id to the inputs fingerprint at which no file could be
    read. The same inputs are not read again until something changes.
    """
    unreadable = {} if unreadable is None else unreadable
    assert collection.id is not None
    started = time.monotonic()
    tag = collection.data_collection_tag
    if collection.config.type not in TABLE_TYPES or collection.config.source != "native":
        return CollectionAggregate(collection_id=collection.id, tag=tag, outcome="skipped")

    # A file that a client registered is read only once a check of registered files has seen
    # it under the workflow's locations, which gives it a content hash.
    files = [
        record
        for record in catalog.files.list_for_collection(collection.id)
        if record.filesize > 0 and (record.origin != "client" or record.content_hash)
    ]
    if not files:
        catalog.tables.drop(collection.id)
        return CollectionAggregate(collection_id=collection.id, tag=tag, outcome="empty")

    settings = msgspec.json.encode(collection.config).decode()
    inputs = fingerprint([settings, *(f"{r.id}:{r.run_tag}:{r.content_hash}" for r in files)])
    settings_fingerprint = fingerprint([settings])
    existing = catalog.tables.get(collection.id)
    if unreadable.get(collection.id) == inputs:
        return CollectionAggregate(
            collection_id=collection.id, tag=tag, outcome="empty", files_failed=_count_failed(files)
        )
    if existing is not None and existing.inputs_fingerprint == inputs:
        # Files that failed at the last build still fail: report them again.
        return CollectionAggregate(
            collection_id=collection.id,
            tag=tag,
            outcome="unchanged",
            rows=existing.row_count,
            files_failed=_count_failed(files),
        )

    properties = msgspec.convert(collection.config.dc_specific_properties, TableProperties)
    options, problems = parse_reader_options(properties.polars_kwargs)
    assert options is not None, f"config.load_project rejects invalid polars_kwargs: {problems}"
    sources = [_source_file(record, properties.format, options) for record in files]
    request = BuildRequest(
        collection_id=collection.id,
        files=sources,
        inputs_fingerprint=inputs,
        settings_fingerprint=settings_fingerprint,
        keep_columns=properties.keep_columns or None,
        descriptions=properties.columns_description or {},
        input_bytes=sum(r.filesize for r in files),
    )
    unreadable.pop(collection.id, None)
    with releasing_fifos([source.location for source in sources]):
        result = catalog.tables.build(request)

    failed = sum(1 for f in result.files if f.status == "failed")
    read = len(result.files) - failed
    rows_read = sum(f.row_count or 0 for f in result.files if f.status != "failed")
    failures = Counter(f.reason or "format" for f in result.files if f.status == "failed")
    if result.updated_in_place:
        # Files that were not read again keep their outcome: the unchanged failed ones still fail.
        outcomes = {f.file_id for f in result.files}
        failed += sum(1 for record in files if record.status == "failed" and record.id not in outcomes)
    seconds = time.monotonic() - started
    if result.table is None:
        # The table shows the files as they are now, so rows of files that no longer read go.
        catalog.tables.drop(collection.id)
        unreadable[collection.id] = inputs
        logger.warning(
            "collection %s (%s): no file could be read, %d failed; the collection has no table until one is fixed",
            tag,
            collection.id,
            failed,
        )
        return CollectionAggregate(
            collection_id=collection.id,
            tag=tag,
            outcome="empty",
            files_failed=failed,
            seconds=seconds,
            failures=dict(failures),
        )

    logger.info(
        "collection %s (%s): table version %d %s from %d files read, %d rows, %d files failed, %.2f s",
        tag,
        collection.id,
        result.table.aggregation_version,
        "updated" if result.updated_in_place else "built",
        read,
        result.table.row_count,
        failed,
        seconds,
    )
    return CollectionAggregate(
        collection_id=collection.id,
        tag=tag,
        outcome="updated" if result.updated_in_place else "built",
        rows=result.table.row_count,
        files_aggregated=read,
        files_failed=failed,
        seconds=seconds,
        rows_read=rows_read,
        failures=dict(failures),
    )


def _source_file(record: FileRecord, collection_format: str, options: ReaderOptions) -> SourceFile:
    """Return how to read a file of the collection.

    An uploaded file is read in its own format (CSV, TSV or Parquet, from its name). The
    collection's reader options apply to it only when that is the collection's format, since
    a separator set for CSV files would split a TSV file wrongly.
    """
    file_format = collection_format
    if record.origin == "upload":
        file_format = str(record.document.get("format") or collection_format)
    return SourceFile(
        file_id=record.id,
        run_tag=record.run_tag,
        location=record.file_location,
        format=file_format,
        options=options if file_format == collection_format else ReaderOptions(),
        content_hash=record.content_hash,
    )


def _count_failed(files: list[FileRecord]) -> int:
    """Count the files whose last aggregation failed; unchanged inputs fail the same way again."""
    return sum(1 for record in files if record.status == "failed")
