"""Request and response bodies of the routes that change a data collection and its table.

Field names follow Depictio 1.19: the upload form field `files`, the rename body
`new_name`, and `success`, `message`, `rows_total`, `rows_added` and `aggregation_version`
in upload responses.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar.datastructures import UploadFile

# Files that one upload request may carry.
MAX_UPLOAD_FILES = 100


class TableUploadIn(msgspec.Struct, kw_only=True):
    """The multipart body of append and replace: CSV, TSV or Parquet files in the field `files`."""

    files: Annotated[list[UploadFile], msgspec.Meta(min_length=1, max_length=MAX_UPLOAD_FILES)]


class UploadedFileOut(msgspec.Struct, kw_only=True):
    """One uploaded file after the aggregation: `aggregated`, `failed` with its reason, or `registered`."""

    id: str
    filename: str
    # csv, tsv or parquet, from the file's name.
    format: str
    filesize: int
    status: str
    error: str | None
    error_line: int | None
    row_count: int | None


class TableUploadOut(msgspec.Struct, kw_only=True):
    """The table after an upload, replace or clear."""

    success: bool
    message: str
    data_collection_id: str
    # False when a running scan held the table past the wait: the rows come with a later aggregation.
    aggregated: bool
    # Rows of the collection's table now, and rows that the uploaded files added to it.
    rows_total: int
    rows_added: int
    # None while the collection has no table.
    aggregation_version: int | None
    files: list[UploadedFileOut]
    # Files that clients had registered or uploaded and that replace or clear removed.
    files_removed: int = 0


class CollectionRenameIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The body of `PUT /datacollections/{id}/name`."""

    new_name: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


class CollectionChangeOut(msgspec.Struct, kw_only=True):
    """The response to a rename or delete of a data collection."""

    success: bool
    message: str
    data_collection_id: str
    data_collection_tag: str
