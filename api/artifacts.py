"""Serve the bytes of registered files: safe opening, validators, byte ranges and zip archives.

Only paths stored in the catalog are opened, never a path from a request. A path that
resolves outside the folders its workflow's scans read (see `Ingestor.file_roots`) is
rejected, and so is a file whose size or content hash differs from the catalog's record.
"""

from __future__ import annotations

import errno
import logging
import mimetypes
import os
import re
import threading
import time
import zipfile
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import quote

import xxhash

from catalog import ConflictError, FileRecord
from catalog.safe_open import open_beneath
from ingestor.scan import under_any

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20

# Compressions that `mimetypes` reports as an encoding. The bytes are sent as stored, so a
# compressed file gets the media type of its compression, never Content-Encoding.
_COMPRESSION_TYPES = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "compress": "application/x-compress",
    "br": "application/octet-stream",
}
# Formats of workflow outputs that the standard `mimetypes` table does not list.
_EXTRA_TYPES = {
    ".tsv": "text/tab-separated-values",
    ".parquet": "application/vnd.apache.parquet",
    ".arrow": "application/vnd.apache.arrow.file",
    ".feather": "application/vnd.apache.arrow.file",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".geojson": "application/geo+json",
}
# Positions of more than 18 digits exceed any file size; such a header is ignored like any invalid one.
_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})")
# Files whose content was hashed because their mtime differed from the catalog's: (path,
# size, mtime_ns) -> xxh3-128. A repeated request for such a file does not hash it again.
_VERIFIED_MAX = 1024
_verified: dict[tuple[str, int, int], str] = {}
_verified_lock = threading.Lock()
# One lock per file being hashed, so that concurrent requests for it hash it once.
_hashing: dict[str, threading.Lock] = {}


class FileChangedError(ConflictError):
    """Raised when a registered file on disk no longer matches its record in the catalog."""


class ArtifactAbortedError(RuntimeError):
    """Raised inside a stream when a file changes after the first bytes were sent: the connection is cut.

    A RuntimeError on purpose, because Litestar ends a sync stream quietly on a ValueError,
    and the client would take a cut body for a whole one.
    """


def media_type(filename: str) -> str:
    """Return the media type of a file name's extension; application/octet-stream when it is unknown."""
    guessed, encoding = mimetypes.guess_type(filename, strict=False)
    if encoding is not None:
        return _COMPRESSION_TYPES.get(encoding, "application/octet-stream")
    extra = _EXTRA_TYPES.get(os.path.splitext(filename)[1].lower())
    return extra or guessed or "application/octet-stream"


def content_disposition(filename: str) -> str:
    """Return `attachment` with an ASCII `filename` and, for other names, a UTF-8 `filename*` (RFC 6266).

    In the ASCII fallback, every character other than printable ASCII becomes `_`, and so
    do quotes and backslashes, so the header never carries a line break or an open quote.
    """
    fallback = re.sub(r'[^\x20-\x7e]|["\\]', "_", filename).strip() or "download"
    value = f'attachment; filename="{fallback}"'
    if fallback != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value


def entity_tag(record: FileRecord) -> str:
    return f'"{record.content_hash}"'


def etag_matches(header: str | None, etag: str) -> bool:
    """Return True when an If-None-Match or If-Range value names `etag`, by the weak comparison of RFC 9110."""
    if header is None:
        return False
    candidates = [part.strip().removeprefix("W/") for part in header.split(",")]
    return "*" in candidates or etag in candidates


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Return the (first, last) byte positions of a single-range request, inclusive; None to send the whole file.

    A header that is not one `bytes=` range is ignored, as RFC 9110 allows, so the whole
    file is sent. Raise ValueError when the range starts at or after the end of the file.
    """
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first_text, last_text = match.groups()
    if first_text == "":
        # A suffix range: the last N bytes.
        length = int(last_text)
        if length == 0 or size == 0:
            raise ValueError(f"the range {header!r} selects no byte of a file of {size} bytes")
        return max(size - length, 0), size - 1
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None  # Not a valid range, so it is ignored.
    if first >= size:
        raise ValueError(f"the range {header!r} starts at or after the end of a file of {size} bytes")
    last = int(last_text) if last_text else size - 1
    return first, min(last, size - 1)


def open_registered(record: FileRecord, roots: list[str]) -> BinaryIO:
    """Open a registered file for reading after checking it against its catalog record.

    The path is resolved once, must lie inside one of `roots`, and is then opened from that
    root without following links (catalog.safe_open.open_beneath), so a link swapped in
    meanwhile cannot lead the open elsewhere. Raise FileChangedError (409) when the file is
    missing, is not a regular file, resolves outside `roots`, or differs from the catalog
    in size or content hash. When size and nanosecond mtime match the record, the stored
    hash is trusted, as the scans trust it.
    """
    name = f"file {record.file_location!r} ({record.id})"
    if not record.content_hash:
        raise FileChangedError(
            f"{name} has no content in the catalog: {record.error or 'it was not read yet'}; "
            "it can be downloaded after a scan reads it"
        )
    try:
        real_path = os.path.realpath(record.file_location)
    except OSError:
        # A link that turns into a file while it is resolved makes readlink fail with EINVAL.
        raise FileChangedError(f"{name} was replaced while it was opened; try again") from None
    root = next((root for root in roots if under_any(real_path, [root]) and real_path != root), None)
    if root is None:
        raise FileChangedError(
            f"{name} resolves to a path outside its workflow's locations, so it is not served; "
            "replace the link by the file, or add the target's folder to ingest.link_roots"
        )
    try:
        handle = open_beneath(real_path, root)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise FileChangedError(f"{name} was replaced while it was opened; try again") from None
        raise FileChangedError(f"{name} cannot be opened ({error.strerror}); the next scan records why") from None
    try:
        _check_opened(handle, record, name)
    except BaseException:
        handle.close()
        raise
    return handle


def _check_opened(handle: BinaryIO, record: FileRecord, name: str) -> None:
    opened = os.fstat(handle.fileno())
    if opened.st_size != record.filesize:
        raise FileChangedError(
            f"{name} has {opened.st_size} bytes on disk but {record.filesize} in the catalog, so it changed "
            "since it was registered; try again after the next scan"
        )
    if opened.st_mtime_ns == record.mtime_ns:
        return
    if _content_hash(handle, record.file_location, opened) != record.content_hash:
        raise FileChangedError(
            f"{name} has other content on disk than in the catalog, so it changed since it was registered; "
            "try again after the next scan"
        )


def _content_hash(handle: BinaryIO, path: str, opened: os.stat_result) -> str:
    """Return the xxh3-128 digest of an opened file, from the cache when its size and mtime were hashed before."""
    key = (path, opened.st_size, opened.st_mtime_ns)
    with _verified_lock:
        file_lock = _hashing.setdefault(path, threading.Lock())
    with file_lock:
        with _verified_lock:
            cached = _verified.get(key)
        if cached is not None:
            return cached
        digest = xxhash.xxh3_128()
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
        handle.seek(0)
        with _verified_lock:
            if len(_verified) >= _VERIFIED_MAX:
                _verified.pop(next(iter(_verified)))
            _verified[key] = digest.hexdigest()
            _hashing.pop(path, None)
        return digest.hexdigest()


def unchanged_since(handle: BinaryIO, before: os.stat_result) -> bool:
    after = os.fstat(handle.fileno())
    return (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


@dataclass(kw_only=True)
class FileStream:
    """One download of a file or a slice of it; closes the file once, at the end, on an error or on a disconnect."""

    handle: BinaryIO
    first: int
    length: int
    description: str
    # The content hash to check the bytes against while they are sent; None for a slice.
    expected_hash: str | None = None
    sent: int = 0
    closed: bool = False
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def chunks(self) -> Generator[bytes, None, None]:
        before = os.fstat(self.handle.fileno())
        digest = xxhash.xxh3_128()
        try:
            self.handle.seek(self.first)
            while self.sent < self.length:
                chunk = self.handle.read(min(CHUNK_BYTES, self.length - self.sent))
                if not chunk:
                    break
                digest.update(chunk)
                # The last chunk is held back until the file proves unchanged, so a changed
                # file never reaches the client as a complete body.
                if self.sent + len(chunk) >= self.length:
                    self._check_end(before, digest.hexdigest())
                self.sent += len(chunk)
                yield chunk
            if self.sent < self.length:
                self._abort("the file became shorter while it was sent")
            logger.info("sent %s, %d bytes in %.2f s", self.description, self.sent, time.monotonic() - self.started)
        finally:
            self.close()

    def _check_end(self, before: os.stat_result, digest: str) -> None:
        if not unchanged_since(self.handle, before):
            self._abort("the file changed while it was sent")
        if self.expected_hash is not None and digest != self.expected_hash:
            self._abort("the bytes read differ from the catalog's content hash")

    def _abort(self, reason: str) -> None:
        logger.warning("download of %s cut after %d bytes: %s", self.description, self.sent, reason)
        raise ArtifactAbortedError(f"download of {self.description} cut short: {reason}")

    def close(self) -> None:
        with self.lock:
            if not self.closed:
                self.closed = True
                self.handle.close()


class _ChunkSink:
    """A write-only, unseekable file that keeps what zipfile wrote until `take()`."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def take(self) -> bytes:
        chunk = b"".join(self._parts)
        self._parts.clear()
        return chunk


@dataclass(kw_only=True)
class ArchiveEntry:
    """A file of a run in the archive: its record and its name inside the zip file."""

    record: FileRecord
    name: str
    roots: list[str]


@dataclass(kw_only=True)
class ArchiveStream:
    """One zip archive of a run's files, written while it is sent (ZIP64, stored with data descriptors)."""

    entries: list[ArchiveEntry]
    description: str
    open_file: Callable[[FileRecord, list[str]], BinaryIO] = open_registered
    sent: int = 0
    started: float = field(default_factory=time.monotonic)

    def chunks(self) -> Generator[bytes, None, None]:
        sink = _ChunkSink()
        # Deflating would cost more CPU than most workflow outputs (often compressed) save.
        with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for entry in self.entries:
                yield from self._write_entry(archive, entry, sink)
        tail = sink.take()
        self.sent += len(tail)
        yield tail
        logger.info(
            "sent %s, %d files, %d bytes in %.2f s",
            self.description,
            len(self.entries),
            self.sent,
            time.monotonic() - self.started,
        )

    def _write_entry(
        self, archive: zipfile.ZipFile, entry: ArchiveEntry, sink: _ChunkSink
    ) -> Generator[bytes, None, None]:
        try:
            handle = self.open_file(entry.record, entry.roots)
        except FileChangedError as error:
            logger.warning("%s cut at %s: %s", self.description, entry.name, error)
            raise ArtifactAbortedError(f"{self.description} cut short: {error}") from None
        with handle:
            before = os.fstat(handle.fileno())
            info = zipfile.ZipInfo(entry.name, date_time=time.localtime(before.st_mtime)[:6])
            info.file_size = before.st_size
            digest = xxhash.xxh3_128()
            with archive.open(info, mode="w", force_zip64=True) as member:
                while chunk := handle.read(CHUNK_BYTES):
                    digest.update(chunk)
                    member.write(chunk)
                    yield from self._take(sink)
            if not unchanged_since(handle, before) or digest.hexdigest() != entry.record.content_hash:
                # The central directory is never written, so the client gets no valid archive.
                logger.warning("%s cut at %s: the file changed while it was sent", self.description, entry.name)
                raise ArtifactAbortedError(f"{self.description} cut short: {entry.name} changed")
        yield from self._take(sink)

    def _take(self, sink: _ChunkSink) -> Generator[bytes, None, None]:
        chunk = sink.take()
        if chunk:
            self.sent += len(chunk)
            yield chunk


def archive_names(records: list[FileRecord], run_location: str) -> list[tuple[FileRecord, str]]:
    """Return each distinct file of a run with its name in the archive: its path below the run folder.

    A file outside the run folder is named by its file name. A name that is taken already
    gets the file id as a folder in front. Two records of one path (two collections that
    match one file) give one entry.
    """
    run_folder = os.path.abspath(run_location)
    named: list[tuple[FileRecord, str]] = []
    taken: set[str] = set()
    locations: set[str] = set()
    for record in sorted(records, key=lambda item: item.file_location):
        location = os.path.abspath(record.file_location)
        if location in locations:
            continue
        locations.add(location)
        name = os.path.relpath(location, run_folder) if under_any(location, [run_folder]) else record.filename
        # Zip names separate folders with "/" only, and extractors on Windows would read a
        # backslash in a Linux file name as a separator too.
        name = name.replace("\\", "_")
        if name in taken or name.startswith(("..", "/")) or name == ".":
            name = f"{record.id}/{os.path.basename(location)}"
        taken.add(name)
        named.append((record, name))
    return named
