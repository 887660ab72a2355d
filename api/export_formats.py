"""Table rows as CSV, TSV, Parquet or an Arrow IPC stream, written batch by batch into a streamed response.

`export_response` turns a pyarrow RecordBatchReader into a Litestar `Stream`. Each record
batch is written into a small in-memory sink whose bytes are sent and dropped before the
next batch is read, so memory contains about one batch whatever the number of rows. Litestar 2.x
runs each step of a sync iterator in a worker thread (`AsyncIteratorWrapper`), so a slow
read does not block the event loop.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import anyio
import msgspec
import pyarrow as pa
import pyarrow.csv
import pyarrow.ipc
import pyarrow.parquet
from litestar import Response
from litestar.background_tasks import BackgroundTask
from litestar.datastructures.headers import Accept
from litestar.response import Stream

logger = logging.getLogger(__name__)

JSON_MEDIA_TYPE = "application/json"


class ExportFormat(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    media_type: str
    # The file name extension of a download, without the dot.
    extension: str


# Both binary media types are registered with IANA: application/vnd.apache.parquet since 2024, and
# application/vnd.apache.arrow.stream for the Arrow IPC stream format, whose files end in .arrows.
FORMATS = {
    item.name: item
    for item in (
        ExportFormat(name="csv", media_type="text/csv", extension="csv"),
        ExportFormat(name="tsv", media_type="text/tab-separated-values", extension="tsv"),
        ExportFormat(name="parquet", media_type="application/vnd.apache.parquet", extension="parquet"),
        ExportFormat(name="arrow", media_type="application/vnd.apache.arrow.stream", extension="arrows"),
    )
}
# A weight as HTTP defines it: 0 to 1 with at most three decimals.
_QUALITY = re.compile(r"0(\.\d{0,3})?|1(\.0{0,3})?")
# The maximum length, in characters, of the file name stem in Content-Disposition.
MAX_FILENAME_STEM = 100


class ExportFormatError(Exception):
    """Raised when a format is unknown or cannot hold a column type of the rows. The message names the fix."""


def export_format(name: str | None) -> ExportFormat:
    """Return the format called `name`, or raise ExportFormatError listing the formats for any other name."""
    if name is None:
        raise ExportFormatError(f"format: missing; use one of {', '.join(FORMATS)}")
    found = FORMATS.get(name.strip().lower())
    if found is None:
        raise ExportFormatError(f"format: {name!r} is not an export format; use one of {', '.join(FORMATS)}")
    return found


def negotiate(accept_header: str | None) -> ExportFormat | str | None:
    """Return the format that an Accept header prefers: JSON_MEDIA_TYPE, an ExportFormat, or None for nothing served.

    JSON comes first among equals, so `*/*` and a missing header get JSON. A media type with
    `q=0` is one the client refuses.
    """
    accepted = [part for part in (accept_header or "*/*").split(",") if part.strip() and _quality(part) > 0]
    if not accepted:
        return None
    served = [JSON_MEDIA_TYPE, *(item.media_type for item in FORMATS.values())]
    best = Accept(",".join(accepted)).best_match(served)
    if best is None:
        return None
    if best == JSON_MEDIA_TYPE:
        return JSON_MEDIA_TYPE
    return next(item for item in FORMATS.values() if item.media_type == best)


def _quality(media_range: str) -> float:
    """Return the `q` weight of one media range: 1 without one, 0 when it is not a valid weight (such as inf or nan)."""
    for parameter in media_range.split(";")[1:]:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "q":
            text = value.strip()
            return float(text) if _QUALITY.fullmatch(text) else 0
    return 1


def not_acceptable_detail() -> str:
    """Return the message of a 406: the media types that a route with Accept negotiation serves."""
    served = ", ".join([JSON_MEDIA_TYPE, *(item.media_type for item in FORMATS.values())])
    return f"the Accept header names no format this route serves; accept one of {served}"


def attachment(stem: str, extension: str) -> str:
    """Return a Content-Disposition value for a download named `stem.extension`.

    Every character other than ASCII letters, digits, `.`, `_` and `-` becomes `_`, so quotes,
    semicolons, slashes and line breaks never reach the header. A leading dot is dropped.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", stem)[:MAX_FILENAME_STEM].lstrip(".") or "export"
    return f'attachment; filename="{safe}.{extension}"'


def export_response(
    reader: pa.RecordBatchReader,
    format_name: str,
    *,
    description: str,
    filename_stem: str | None = None,
    close: Callable[[], None] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    """Return a streamed response of `reader`'s rows in the format `format_name`.

    Raise ExportFormatError before anything is sent when the format is unknown or cannot hold
    a column type; the caller still owns `close` then. Otherwise the response calls `close`
    once: after the last batch, on an error, or when the client disconnects. `description`
    names the rows in the log line written when the response ends. `filename_stem` adds
    `Content-Disposition: attachment`.
    """
    chosen = export_format(format_name)
    sink = _ChunkSink()
    writer = _open_writer(chosen, reader.schema, sink)
    export = _Export(reader=reader, writer=writer, sink=sink, description=description, format=chosen, close=close)
    all_headers = dict(headers or {})
    if filename_stem is not None:
        all_headers["Content-Disposition"] = attachment(filename_stem, chosen.extension)

    async def finish() -> None:
        # Runs after the last chunk and after a disconnect. On a disconnect, Litestar (2.x on
        # asyncio) stops waiting for the step of the iterator that runs in a worker thread, so
        # that step may still be reading a batch: `finish` waits for it, then closes the source.
        await anyio.to_thread.run_sync(export.finish)

    return Stream(export.chunks(), media_type=chosen.media_type, headers=all_headers, background=BackgroundTask(finish))


class ExportAbortedError(RuntimeError):
    """Raised inside a stream that fails after its first bytes were sent: the connection is cut, not completed.

    A RuntimeError on purpose, because Litestar ends a sync stream quietly on a ValueError,
    which pyarrow's ArrowInvalid is, and the client would take a cut body for a whole one.
    """


class _ChunkSink(io.RawIOBase):
    """A write-only file that keeps what the writers wrote until `take()`."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self.size += len(chunk)
        return len(chunk)

    def take(self) -> bytes:
        chunk = b"".join(self._parts)
        self._parts.clear()
        return chunk


def _open_writer(chosen: ExportFormat, schema: pa.Schema, sink: _ChunkSink) -> Any:
    """Return a pyarrow writer of `chosen` on `sink`, or raise ExportFormatError for a column type it cannot hold."""
    try:
        if chosen.name in ("csv", "tsv"):
            _check_text_types(schema, chosen)
            options = pyarrow.csv.WriteOptions(delimiter="\t" if chosen.name == "tsv" else ",")
            return pyarrow.csv.CSVWriter(sink, schema, write_options=options)
        if chosen.name == "parquet":
            return pyarrow.parquet.ParquetWriter(sink, schema)
        return pyarrow.ipc.new_stream(sink, schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as error:
        raise ExportFormatError(
            f"format: {chosen.name} cannot hold these columns ({str(error).splitlines()[0]}); "
            "export as arrow, or leave the column out with columns="
        ) from None


def _check_text_types(schema: pa.Schema, chosen: ExportFormat) -> None:
    """Raise ExportFormatError naming the first nested, binary or interval column, which pyarrow's CSV writer cannot write."""
    for item in schema:
        kind = item.type
        if pa.types.is_nested(kind):
            problem = "nested"
        elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
            problem = "binary"
        elif pa.types.is_interval(kind):
            problem = "interval"
        else:
            continue
        raise ExportFormatError(
            f"format: {chosen.name} cannot hold column {item.name!r} of {problem} type {kind}; "
            "export as parquet or arrow, or leave the column out with columns="
        )


@dataclass(kw_only=True)
class _Export:
    """One export in progress: writes batches, counts rows and bytes, logs one line when it ends."""

    reader: pa.RecordBatchReader
    writer: Any
    sink: _ChunkSink
    description: str
    format: ExportFormat
    close: Callable[[], None] | None
    rows: int = 0
    completed: bool = False
    finished: bool = False
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def chunks(self) -> Generator[bytes, None, None]:
        """Yield the encoded bytes batch by batch, and call `finish` at the end or on an error."""
        try:
            for batch in self.reader:
                self.writer.write_batch(batch)
                self.rows += batch.num_rows
                chunk = self.sink.take()
                if chunk:
                    yield chunk
            self.writer.close()
            self.completed = True
            tail = self.sink.take()
            if tail:
                yield tail
        except Exception as error:
            logger.warning(
                "export of %s as %s failed after %d rows: %s; the response is cut short",
                self.description,
                self.format.name,
                self.rows,
                str(error).splitlines()[0] if str(error) else type(error).__name__,
            )
            raise ExportAbortedError(f"export of {self.description} failed after {self.rows} rows") from error
        finally:
            self.finish()

    def finish(self) -> None:
        """Release the rows' source and log the outcome. Later calls do nothing."""
        with self.lock:
            if self.finished:
                return
            self.finished = True
        try:
            if self.close is not None:
                self.close()
        finally:
            outcome = "exported" if self.completed else "stopped (client disconnected or error)"
            logger.info(
                "%s %s as %s: %d rows, %d bytes in %.2f s",
                outcome,
                self.description,
                self.format.name,
                self.rows,
                self.sink.size,
                time.monotonic() - self.started,
            )
