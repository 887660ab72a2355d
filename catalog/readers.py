"""SQL that reads one workflow file with DuckDB, by format."""

from __future__ import annotations

import csv
import gzip
import itertools
import zlib
from typing import Any

import msgspec

from config import ReaderOptions

FORMATS = ("csv", "tsv", "parquet", "feather", "xls", "xlsx")


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


def separator_for(source: SourceFile) -> str:
    """Return the field separator: the configured one, else by file suffix, else by format."""
    if source.options.separator is not None:
        return source.options.separator
    name = source.location.lower().removesuffix(".gz")
    if name.endswith((".tsv", ".tab")):
        return "\t"
    if source.format == "tsv" and not name.endswith(".csv"):
        return "\t"
    return ","


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

    Several sources must share one format and reader options. `columns` gives the type of
    every column, so DuckDB does not sniff them. `path_column` adds each row's file path.
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
) -> tuple[str, list[Any]]:
    options = source.options
    # An explicit delimiter, header and skip stop the sniffer from guessing another
    # dialect or silently skipping leading rows of a malformed file.
    arguments = ["delim = ?", "header = ?", "skip = ?"]
    parameters: list[Any] = [locations, separator_for(source), options.has_header, options.skip_rows]

    if options.quote_char is not None:
        arguments.append("quote = ?")
        parameters.append(options.quote_char)
    # DuckDB would detect `#` as a comment marker and drop such rows silently. Like polars,
    # depictiod treats no character as a comment unless comment_prefix names one.
    arguments.append("comment = ?")
    parameters.append(options.comment_prefix or "")
    if options.null_values:
        # Empty cells stay null, as they are without null_values and in polars.
        arguments.append("nullstr = ?")
        parameters.append(sorted({*options.null_values, ""}))

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


def find_ragged_line(source: SourceFile) -> tuple[int, str] | None:
    """Return (line number, message) for the first row whose field count differs from the header.

    DuckDB reports a malformed CSV only as "could not detect the dialect"; this finds the
    row a user has to fix. Only the first 1,000,000 rows are checked.
    """
    opener: Any = gzip.open if source.location.endswith(".gz") else open
    try:
        with opener(source.location, "rt", encoding="utf-8", errors="replace", newline="") as handle:
            rows = csv.reader(handle, delimiter=separator_for(source))
            expected: int | None = None
            for number, row in enumerate(itertools.islice(rows, 1_000_000), start=1):
                if not row or number <= source.options.skip_rows:
                    continue
                if expected is None:
                    expected = len(row)
                    continue
                if len(row) != expected:
                    return number, f"line {number} has {len(row)} fields but the header has {expected}"
    except (OSError, EOFError, ValueError, csv.Error, zlib.error):
        return None
    return None
