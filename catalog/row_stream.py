"""The rows of a query read in Arrow record batches, inside one read transaction that stays open until closed."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import ExitStack, suppress

import duckdb
import pyarrow as pa

from catalog.store import Connection

logger = logging.getLogger(__name__)

# Rows in one record batch: bounds the memory of one step of an export, and is one row group of a Parquet export.
BATCH_ROWS = 65_536


class RowStream:
    """Record batches of one query, all read in the same transaction, so a table swapped in meanwhile never shows.

    The first batch is read when the stream is opened, so that DuckDB's errors in running the
    query come before a response starts. Call `close()` when done: it ends the transaction and
    closes the cursor. A stream may be read from one thread and closed from another, but not
    both at once; `close()` waits for a batch being read.
    """

    def __init__(self, cursor: Connection, reader: pa.RecordBatchReader, cleanup: ExitStack) -> None:
        self._cursor = cursor
        self._reader = reader
        self._cleanup = cleanup
        self._lock = threading.Lock()
        self._closed = False
        self._first: list[pa.RecordBatch] = []
        with suppress(StopIteration):
            self._first.append(reader.read_next_batch())

    @property
    def schema(self) -> pa.Schema:
        return self._reader.schema

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Yield the record batches in query order, or raise RuntimeError when the stream was closed meanwhile."""
        while (batch := self._next_batch()) is not None:
            yield batch

    def _next_batch(self) -> pa.RecordBatch | None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the row stream was closed before its last batch was read")
            if self._first:
                return self._first.pop()
            try:
                return self._reader.read_next_batch()
            except StopIteration:
                return None

    def reader(self) -> pa.RecordBatchReader:
        """Return the stream as a pyarrow RecordBatchReader (it does not close the stream)."""
        return pa.RecordBatchReader.from_batches(self.schema, self.batches())

    def close(self) -> None:
        """End the read transaction and close the cursor. Later calls do nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._cursor.execute("ROLLBACK")
            except duckdb.Error as error:
                # The cursor closes below in any case, and DuckDB ends its transaction with it.
                logger.warning("ending the read transaction of an export failed: %s", str(error).splitlines()[0])
            finally:
                self._cleanup.close()
