"""SQL that reads one workflow file with DuckDB, by format, and the layout of delimited files.

DuckDB's CSV sniffer guesses a file's dialect from a sample, and its guesses fail in
ways that lose data silently (a `#` header taken for a comment, a comma chosen for a
pipe-separated file). depictiod therefore finds the separator, the compression, the
leading comment lines and the column names itself, from the file's first lines, and
gives them to DuckDB explicitly. DuckDB still detects quoting and column types.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import itertools
import os
import re
import zlib
from typing import Any

import msgspec
import pyarrow
import pyarrow.feather
import pyarrow.ipc

from catalog.safe_open import open_regular
from config import ReaderOptions

# The name of DuckDB's row id, which a column of that name (in any case) would hide.
ROW_ID = "rowid"
FORMATS = ("csv", "tsv", "parquet", "feather", "xls", "xlsx")
GZIP_MAGIC = b"\x1f\x8b"
# How much of a delimited file is read to find its layout.
_SAMPLE_BYTES = 1 << 16
_SAMPLE_LINES = 200
# Bytes read to tell binary content from text.
_BINARY_SAMPLE_BYTES = 8192
# Separators tried, in this order, after the one that the suffix or format implies.
_SEPARATORS = ("\t", ",", ";", "|")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# Temporary tables that DuckDB fills with the rows it rejects while rows are counted.
_REJECTS_TABLE = "depictiod_rejected_rows"
_REJECTS_SCAN = "depictiod_rejected_scans"


class SourceFile(msgspec.Struct, kw_only=True, frozen=True):
    """One registered file to aggregate, with how to read it."""

    file_id: str
    run_tag: str
    location: str
    format: str
    options: ReaderOptions = ReaderOptions()
    # The content hash the file was registered with; with run_tag, what a table records as read.
    content_hash: str = ""


class UnreadableFileError(Exception):
    """Raised when a file cannot be read in its declared format."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class TextLayout(msgspec.Struct, kw_only=True, frozen=True):
    """The layout of a delimited file, found from its first lines."""

    # gzip or none, from the file's first two bytes rather than its suffix.
    compression: str
    delimiter: str
    # Lines before the header: the configured skip_rows plus the leading comment lines.
    skip: int
    comment_lines: int
    # True when the header line itself starts with `#`, which is removed from the first name.
    hash_header: bool
    # The column names given to DuckDB, or () when the header is used as written.
    names: tuple[str, ...]
    # (1-based position, name in the header, name used) of every renamed column.
    renamed: tuple[tuple[int, str, str], ...]
    # Why the file is no delimited text (Parquet or other binary content), or None.
    binary_reason: str | None = None
    # True when the sampled lines have no single quote and no backslash, so the file can be
    # read with RFC 4180 quoting ('"' quotes, '""' escapes) without DuckDB trying others.
    plain_quoting: bool = False


def open_binary(location: str, compression: str) -> Any:
    """Open a regular file for reading, decompressing it when it is gzip; never block on a FIFO."""
    handle = open_regular(location)
    if compression != "gzip":
        return handle
    reader = gzip.GzipFile(fileobj=handle, mode="rb")
    # GzipFile closes the file it opened itself (`myfileobj`), so it closes this one too.
    reader.myfileobj = handle  # type: ignore[assignment]
    return reader


def compression_of(path: str) -> str:
    """Return "gzip" when the file starts with the gzip magic bytes, else "none"."""
    with open_regular(path) as handle:
        return "gzip" if handle.read(2) == GZIP_MAGIC else "none"


def separator_for(source: SourceFile) -> str:
    """Return the field separator: the configured one, else the one detected from the file."""
    return text_layout(source).delimiter


def _implied_separator(location: str, file_format: str) -> str:
    """Return the separator that the file suffix, else the declared format, implies."""
    name = location.lower().removesuffix(".gz")
    if name.endswith((".tsv", ".tab")):
        return "\t"
    if file_format == "tsv" and not name.endswith(".csv"):
        return "\t"
    return ","


def text_layout(source: SourceFile) -> TextLayout:
    """Return the layout of a delimited file, cached until the file's size or mtime changes."""
    info = os.stat(source.location)
    return _layout(source.location, source.format, source.options, info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=512)
def _layout(location: str, file_format: str, options: ReaderOptions, size: int, mtime_ns: int) -> TextLayout:
    # `size` and `mtime_ns` are part of the cache key only: a changed file gets a new layout.
    compression = compression_of(location)
    head, lines = _first_lines(location, compression)
    lines = lines[options.skip_rows :]
    quote = options.quote_char or '"'
    delimiter = options.separator or _detect_separator(lines, _implied_separator(location, file_format), quote)

    comment_lines, hash_header = 0, False
    # A configured header row or comment character turns the detection off.
    if options.has_header and options.skip_rows == 0 and options.comment_prefix is None:
        comment_lines, hash_header = _leading_comments(lines, delimiter, quote)

    names: tuple[str, ...] = ()
    renamed: tuple[tuple[int, str, str], ...] = ()
    if options.has_header and len(lines) > comment_lines:
        header = _split(lines[comment_lines], delimiter, quote)
        widest = max((len(_split(line, delimiter, quote)) for line in lines[comment_lines + 1 :]), default=0)
        # A row wider than the header is an error that DuckDB reports, and extra names would hide it.
        if widest <= len(header):
            names, renamed = _column_names(header, hash_header)
    return TextLayout(
        compression=compression,
        delimiter=delimiter,
        skip=options.skip_rows + comment_lines,
        comment_lines=comment_lines,
        hash_header=hash_header,
        names=names,
        renamed=renamed,
        binary_reason=_binary_reason(head),
        plain_quoting=not any("'" in line or "\\" in line for line in lines),
    )


def _first_lines(location: str, compression: str) -> tuple[bytes, list[str]]:
    """Return the first bytes of a file, decompressed, and its first lines without a UTF-8 byte-order mark."""
    try:
        with open_binary(location, compression) as handle:
            chunk = handle.read(_SAMPLE_BYTES)
            complete = not handle.read(1)
    except (OSError, EOFError, zlib.error):
        return b"", []  # The compression check and DuckDB report a broken file with a reason.
    lines = _LINE_BREAK.split(chunk.decode("utf-8", errors="replace").removeprefix("\ufeff"))
    if not complete:
        lines = lines[:-1]  # The last line may be cut by the sample's end.
    elif lines and lines[-1] == "":
        lines = lines[:-1]
    return chunk, lines[:_SAMPLE_LINES]


def _binary_reason(head: bytes) -> str | None:
    """Return why a file whose first bytes are `head` is binary rather than delimited text, or None."""
    if head.startswith(b"PAR1"):
        return "the file is a Parquet file, not delimited text; give the collection format parquet"
    if b"\x00" in head[:_BINARY_SAMPLE_BYTES]:
        return "the file contains NUL bytes, so it is binary, not delimited text; check the collection's pattern and format"
    return None


def _split(line: str, delimiter: str, quote: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter, quotechar=quote), [])
    except csv.Error:
        return [line]


def _detect_separator(lines: list[str], implied: str, quote: str) -> str:
    """Return the first separator that splits the lines into steady columns, else `implied`.

    Lines starting with `#` are left out, because comments need not contain the separator.
    """
    body = [line for line in lines if line.strip() and not line.startswith("#")]
    for candidate in (implied, *(separator for separator in _SEPARATORS if separator != implied)):
        if _splits_steadily(body, candidate, quote):
            return candidate
    return implied


def _splits_steadily(lines: list[str], separator: str, quote: str) -> bool:
    # The first line gives at least two fields, no line gives more, and at least half of
    # the other lines give as many. Shorter lines are allowed: they are padded with NULL.
    if not lines:
        return False
    counts = [len(_split(line, separator, quote)) for line in lines]
    first, rest = counts[0], counts[1:]
    if first < 2 or any(count > first for count in rest):
        return False
    return 2 * sum(count == first for count in rest) >= len(rest)


def _leading_comments(lines: list[str], delimiter: str, quote: str) -> tuple[int, bool]:
    """Return (comment lines before the header, whether the header starts with `#`).

    Of the leading lines that start with `#`, the last one is the header when it splits
    into as many fields as the line after it, and into at least two. Every other one is
    a comment: a featureCounts program line, VCF `##` meta lines.
    """
    count = 0
    while count < len(lines) and lines[count].startswith("#"):
        count += 1
    if count == 0 or count == len(lines):
        return count, False
    header = _split(lines[count - 1].lstrip("#"), delimiter, quote)
    following = _split(lines[count], delimiter, quote)
    if len(header) >= 2 and len(header) == len(following):
        return count - 1, True
    return count, False


def _column_names(header: list[str], hash_header: bool) -> tuple[tuple[str, ...], tuple[tuple[int, str, str], ...]]:
    """Return the column names to give DuckDB, or () when the header can be used as written.

    A `#` header loses its leading `#` and spaces. An empty name becomes `column<N>`, with
    N counted from 0. A name that repeats an earlier one, ignoring case, or that is `rowid`,
    gets the first suffix `_1`, `_2`, ... that no other column of the header has.
    """
    names = list(header)
    changed = hash_header
    if hash_header:
        names[0] = names[0].lstrip("#").strip()
    for index, name in enumerate(names):
        if not name.strip():
            names[index], changed = f"column{index}", True

    used_names = {name.lower() for name in names}
    # DuckDB's own row id hides behind a column named rowid, so such a column is renamed too.
    seen: set[str] = {ROW_ID}
    renamed = []
    for index, name in enumerate(names):
        if name.lower() in seen:
            number = 1
            while f"{name}_{number}".lower() in used_names:
                number += 1
            names[index] = f"{name}_{number}"
            used_names.add(names[index].lower())
            renamed.append((index + 1, name, names[index]))
        seen.add(names[index].lower())
    if not changed and not renamed:
        return (), ()
    return tuple(names), tuple(renamed)


def sniff_expression(source: SourceFile, full_sample: bool = False) -> tuple[str, list[Any]]:
    """Return (table expression, parameters) of DuckDB's `sniff_csv` for a delimited file.

    Its one row gives the dialect (quote, escape, line ending, comment) and the column
    types that `read_csv` with the same options would use.
    """
    expression, parameters = _csv_expression(source, [source.location], full_sample, None, None)
    return "sniff_csv" + expression.removeprefix("read_csv"), [source.location, *parameters[1:]]


def read_expression(
    sources: list[SourceFile],
    full_sample: bool = False,
    columns: dict[str, str] | None = None,
    path_column: str | None = None,
) -> tuple[str, list[Any]]:
    """Return (table expression, parameters) that reads `sources` in a FROM clause.

    Several sources must share one format, reader options and layout. `columns` gives
    the type of every column, so DuckDB does not sniff them. `path_column` adds each
    row's file path.
    """
    first = sources[0]
    locations = [source.location for source in sources]
    if first.format in ("csv", "tsv"):
        return _csv_expression(first, locations, full_sample, columns, path_column)
    if first.format == "parquet":
        if path_column is None:
            return "read_parquet(?)", [locations]
        return "read_parquet(?, filename = ?)", [locations, path_column]
    raise UnreadableFileError(
        f"format {first.format!r} is not read by this depictiod release; convert the file to csv, tsv or parquet"
    )


def _csv_expression(
    source: SourceFile,
    locations: list[str],
    full_sample: bool,
    columns: dict[str, str] | None,
    path_column: str | None,
    count_rejects: bool = False,
) -> tuple[str, list[Any]]:
    options = source.options
    layout = text_layout(source)
    # An explicit delimiter, header, skip and compression stop the sniffer from guessing
    # another dialect or silently skipping leading rows of a malformed file.
    arguments = ["delim = ?", "header = ?", "skip = ?", "compression = ?"]
    parameters: list[Any] = [locations, layout.delimiter, options.has_header, layout.skip, layout.compression]
    if layout.names:
        arguments.append("names = ?")
        parameters.append(list(layout.names))

    if options.quote_char is not None:
        arguments.append("quote = ?")
        parameters.append(options.quote_char)
    elif layout.plain_quoting and not full_sample:
        # Trying every quote and escape candidate took about 90% of DuckDB's sniffing time on
        # files of a few thousand rows. A read that fails this way is tried again with a full
        # sample, where DuckDB detects them.
        arguments += ["quote = ?", "escape = ?"]
        parameters += ['"', '"']
    # DuckDB would detect `#` as a comment marker and drop such rows silently. Like polars,
    # depictiod treats no character as a comment unless comment_prefix names one.
    arguments.append("comment = ?")
    parameters.append(options.comment_prefix or "")
    if options.null_values:
        # Empty cells stay null, as they are without null_values and in polars.
        arguments.append("nullstr = ?")
        parameters.append(sorted({*options.null_values, ""}))

    if count_rejects:
        # Every value as text, so only rows of the wrong width are rejected, and counted.
        arguments += [
            "all_varchar = true",
            "store_rejects = true",
            f"rejects_table = '{_REJECTS_TABLE}'",
            f"rejects_scan = '{_REJECTS_SCAN}'",
        ]
        return f"read_csv(?, {', '.join(arguments)})", parameters
    # A row shorter than the header gets NULL in its missing columns, and inspect_rows counts them.
    arguments.append("null_padding = true")

    if columns is not None:
        # `types` rather than `columns`: DuckDB 1.5.5 rejects comment lines when `columns`
        # is given, and `types` naming every column also leaves no type to sniff.
        arguments.append("types = ?")
        parameters.append(columns)
    elif options.column_types:
        arguments.append("types = ?")
        parameters.append(dict(options.column_types))

    if path_column is not None:
        arguments.append("filename = ?")
        parameters.append(path_column)
    if full_sample:
        arguments.append("sample_size = -1")
    return f"read_csv(?, {', '.join(arguments)})", parameters


def inspect_rows(connection: Any, source: SourceFile) -> dict[str, Any]:
    """Return the details of how a file is read (its layout and short rows), for the catalog.

    Raises UnreadableFileError when the file contains no data row, because a file whose
    rows were all taken for comments or header must not pass for an empty success.
    """
    if source.format == "parquet":
        row = connection.execute("SELECT count(*) FROM read_parquet(?)", [source.location]).fetchone()
        _require_rows(int(row[0]) if row else 0, "the file contains no rows")
        return {}
    if source.format == "feather":
        _require_rows(_feather_has_rows(source.location), "the file contains no rows")
        return {}
    if source.format not in ("csv", "tsv"):
        return {}

    layout = text_layout(source)
    if layout.binary_reason is not None:
        raise UnreadableFileError(layout.binary_reason)
    counted = _count_plain_rows(source, layout)
    rows, rejected, short_rows, first_short = counted or _count_text_rows(connection, source)
    _require_rows(
        rows + rejected,
        "the file has no data rows, only a header, comment or blank lines; if rows were expected, "
        "check polars_kwargs skip_rows, has_header and comment_prefix",
    )
    details: dict[str, Any] = {
        "delimiter": layout.delimiter,
        "compression": layout.compression,
        "header_line": layout.skip + 1 if source.options.has_header else None,
        "comment_lines": layout.comment_lines,
        "hash_header": layout.hash_header,
        "short_rows": short_rows,
    }
    if first_short is not None:
        details["first_short_row_line"] = first_short
    if layout.renamed:
        details["renamed_columns"] = [
            {"position": position, "header": header, "name": name} for position, header, name in layout.renamed
        ]
    return details


def _feather_has_rows(path: str) -> int:
    """Return 1 when a Feather file contains a row, else 0, reading no more batches than needed."""
    try:
        with pyarrow.memory_map(path) as stream:
            reader = pyarrow.ipc.open_file(stream)
            return int(any(reader.get_batch(index).num_rows for index in range(reader.num_record_batches)))
    except pyarrow.ArrowInvalid:
        # Feather version 1 is no Arrow IPC file, so pyarrow reads it whole.
        return int(pyarrow.feather.read_table(path).num_rows > 0)


def _require_rows(count: int, message: str) -> None:
    if count == 0:
        raise UnreadableFileError(message)


def _count_plain_rows(source: SourceFile, layout: TextLayout) -> tuple[int, int, int, int | None] | None:
    """Count the rows of a small plain file in Python, or return None when DuckDB must count them.

    Only a file of at most one sample that has no quote character and no blank line is
    counted here: then each line is one row, exactly as DuckDB reads it. Each DuckDB count
    costs a query with a rejects table, which for thousands of small files took longer than
    reading them.
    """
    if layout.compression != "none" or not source.options.has_header:
        return None
    try:
        with open_regular(source.location) as handle:
            data = handle.read(_SAMPLE_BYTES + 1)
    except OSError:
        return None
    quote = (source.options.quote_char or '"').encode()
    if len(data) > _SAMPLE_BYTES or quote in data:
        return None
    lines = _LINE_BREAK.split(data.decode("utf-8", errors="replace").removeprefix("\ufeff"))
    if lines and lines[-1] == "":
        lines.pop()
    body = lines[layout.skip :]
    if not body or any(not line.strip() for line in body):
        return None
    width = body[0].count(layout.delimiter)
    first_short: int | None = None
    short_rows = 0
    for number, line in enumerate(body[1:], start=layout.skip + 2):
        fields = line.count(layout.delimiter)
        if fields > width:
            return None  # DuckDB reports the error with its line.
        if fields < width:
            short_rows += 1
            first_short = first_short or number
    # As DuckDB counts them: rows read whole, and short rows as rejected lines.
    return len(body) - 1 - short_rows, short_rows, short_rows, first_short


def _count_text_rows(connection: Any, source: SourceFile) -> tuple[int, int, int, int | None]:
    """Return (rows read, lines rejected, rows shorter than the header, line of the first short row)."""
    expression, parameters = _csv_expression(source, [source.location], False, None, None, count_rejects=True)
    try:
        # fetchall, not fetchone, because DuckDB 1.5.5 fills the rejects table only when the query finishes.
        [row] = connection.execute(f"SELECT count(*) FROM {expression}", parameters).fetchall()
        rejects = connection.execute(
            f"SELECT count(DISTINCT line), count(DISTINCT line) FILTER (WHERE error_type = 'MISSING COLUMNS'), "
            f"min(line) FILTER (WHERE error_type = 'MISSING COLUMNS') FROM {_REJECTS_TABLE}"
        ).fetchone()
    finally:
        connection.execute(f"DROP TABLE IF EXISTS {_REJECTS_TABLE}")
        connection.execute(f"DROP TABLE IF EXISTS {_REJECTS_SCAN}")
    rejected, short_rows, first_short = rejects if rejects else (0, 0, None)
    return int(row[0]), int(rejected), int(short_rows), None if first_short is None else int(first_short)


def find_ragged_line(source: SourceFile) -> tuple[int, str] | None:
    """Return (line number, message) for the first row with more fields than the header.

    DuckDB reports a malformed CSV only as "could not detect the dialect"; this finds the
    row a user has to fix. Shorter rows are padded with NULL, so they are no error. Only
    the first 1,000,000 rows are checked.
    """
    try:
        layout = text_layout(source)
        binary = open_binary(source.location, layout.compression)
        with io.TextIOWrapper(binary, encoding="utf-8-sig", errors="replace", newline="") as handle:
            rows = csv.reader(handle, delimiter=layout.delimiter, quotechar=source.options.quote_char or '"')
            expected: int | None = None
            for number, row in enumerate(itertools.islice(rows, 1_000_000), start=1):
                if not row or number <= layout.skip:
                    continue
                if expected is None:
                    expected = len(row)
                    continue
                if len(row) > expected:
                    return number, f"line {number} has {len(row)} fields but the header has {expected}"
    except (OSError, EOFError, ValueError, csv.Error, zlib.error):
        return None
    return None
