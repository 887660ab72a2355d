"""Keep one data collection's table equal to its files: update it by file, or rebuild it.

An update reads only the files whose content or run changed since the table was made,
then deletes the rows of changed and removed files and inserts the new rows in one
transaction. When the new files would change the table's columns or types, or when the
collection's reader settings changed, the whole table is built again and swapped in.

Each file is described once (DuckDB sniffs its dialect and types). Files with equal
columns and types are then read together with one `read_csv` or `read_parquet` over the
list, with those types given, so DuckDB does not sniff them again. A group that fails as
a whole is read again file by file, so one bad file is recorded and skipped while the
rest loads.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import msgspec
import pyarrow
import pyarrow.feather

from catalog import specs
from catalog.errors import CatalogUnwritableError
from catalog.failures import read_error_reason
from catalog.lake import StalePlanError, claim_table_writes, is_lake
from catalog.readers import (
    ROW_ID,
    SourceFile,
    UnreadableFileError,
    compression_of,
    find_ragged_line,
    inspect_rows,
    open_binary,
    read_expression,
    sniff_expression,
    text_layout,
)
from catalog.records import ColumnSpec, DriftNote, TableRecord
from catalog.runs_files import store_file_results, utc_now
from catalog.schema import AGGREGATED_TABLE_COLUMNS, DATA_SCHEMA
from catalog.store import Connection, rollback
from catalog.widen import INTEGER_TYPES, NULL, TEXT, common_type, unify
from catalog.write_faults import classify_write_error

logger = logging.getLogger(__name__)

# Columns that depictiod adds to every aggregated row; a file's own copies are replaced.
_RESERVED_TYPES = (("depictio_run_id", "VARCHAR"), ("depictio_file_id", "VARCHAR"), ("aggregation_time", "TIMESTAMP"))
RESERVED_COLUMNS = tuple(name for name, _ in _RESERVED_TYPES)
_RESERVED = set(RESERVED_COLUMNS)
# Column that carries each row's source path while a group of files is read.
_PATH_COLUMN = "depictiod_source_path__"
_LINE_NUMBER = re.compile(r"[Ll]ine:? (\d+)")
# Suffix of the table a build fills before it is renamed to the collection's table.
SCRATCH_SUFFIX = "__next"
# Files with more columns fail: in DuckDB 1.5.5, reading 3,000 columns took seconds and
# 20,000 columns several minutes and gigabytes (measured on 2 cores), blocking every other scan.
MAX_FILE_COLUMNS = 4096
# Rows per Arrow batch copied from the reader into the catalog.
_BATCH_ROWS = 100_000
_GZIP_CHUNK_BYTES = 1 << 20


def new_reader(config: dict[str, Any] | None = None) -> Connection:
    """Open the in-memory DuckDB database that parses workflow files, with the catalog's reader limits."""
    return duckdb.connect(config={"autoinstall_known_extensions": False, **(config or {})})


def _check_compression(source: SourceFile) -> None:
    """Raise UnreadableFileError for a gzip file that is truncated or corrupt.

    DuckDB reads the intact part of a truncated gzip file without an error, which would
    load part of the rows silently, so the whole stream is decompressed and checked first.
    """
    if compression_of(source.location) != "gzip":
        return
    size = 0
    try:
        with open_binary(source.location, "gzip") as handle:
            while chunk := handle.read(_GZIP_CHUNK_BYTES):
                size += len(chunk)
    except (EOFError, OSError, zlib.error) as error:
        raise UnreadableFileError(f"the gzip file is truncated or corrupt: {error}") from None
    if size == 0:
        raise UnreadableFileError("the file is empty: its gzip stream decompresses to 0 bytes")


Columns = list[tuple[str, str]]
# sniff_csv fields that decide how a delimited file is parsed; files read together must agree.
Dialect = tuple[Any, ...]
_DIALECT_FIELDS = (
    "Delimiter, Quote, Escape, NewLineDelimiter, Comment, SkipRows, HasHeader, DateFormat, TimestampFormat"
)


class BuildRequest(msgspec.Struct, kw_only=True, frozen=True):
    collection_id: str
    files: list[SourceFile]
    # Fingerprint of the files and reader settings; equal fingerprints mean equal tables.
    inputs_fingerprint: str
    # Fingerprint of the reader settings alone; when it changes, no row is reused.
    settings_fingerprint: str = ""
    keep_columns: list[str] | None = None
    descriptions: dict[str, str] = msgspec.field(default_factory=dict)
    input_bytes: int = 0


class FileResult(msgspec.Struct, kw_only=True, frozen=True):
    file_id: str
    status: str
    error: str | None = None
    error_line: int | None = None
    # The reason class of a failure (see catalog.failures), for metrics; the catalog stores `error`.
    reason: str | None = None
    row_count: int | None = None
    # How the file was read: separator, compression, header line, short rows, renamed columns.
    read_details: dict[str, Any] = msgspec.field(default_factory=dict)


class BuildResult(msgspec.Struct, kw_only=True, frozen=True):
    table: TableRecord | None
    files: list[FileResult]
    column_specs: list[ColumnSpec] = msgspec.field(default_factory=list)
    # True when only the changed files were read and their rows replaced in the live table.
    updated_in_place: bool = False


class _TextColumnFound(Exception):
    """Raised when a column must become text after rows were loaded with another type."""


class _Unit(msgspec.Struct, kw_only=True):
    """Files read in one statement because their columns and types are equal."""

    sources: list[SourceFile]
    columns: Columns
    # Lower-case names of columns that are empty in every file of the unit.
    empty: set[str] = msgspec.field(default_factory=set)


def _own(columns: Columns) -> Columns:
    """Return a file's columns without the ones depictiod adds itself."""
    return [(name, kind) for name, kind in columns if name.lower() not in _RESERVED]


def input_key(source: SourceFile) -> str:
    """Return what a table records of a file it read: rows change with the run tag or the content."""
    return f"{source.run_tag}:{source.content_hash}"


def expected_columns(schemas: list[Columns], keep_columns: list[str] | None) -> Columns:
    """Return the table columns that files with these schemas give, in order of first appearance.

    A name takes the spelling of its first file; names are compared ignoring case, as DuckDB
    compares them. A file schema types an empty column as NULL, so it sets no type.
    """
    distinct = list(dict.fromkeys(tuple(columns) for columns in schemas))
    spelling: dict[str, str] = {}
    for columns in distinct:
        for name, _ in columns:
            spelling.setdefault(name.lower(), name)
    unified = unify(
        [
            (str(index), [(spelling[name.lower()], kind) for name, kind in columns])
            for index, columns in enumerate(distinct)
        ]
    )
    keep = {name.lower() for name in keep_columns or []}
    return [(name, kind) for name, kind in unified.columns if not keep or name.lower() in keep]


def drift_notes(schemas: dict[str, Columns], table: Columns) -> list[DriftNote]:
    """Return a note for every file column whose type differs from the table's, by file id."""
    kinds = {name.lower(): (name, kind) for name, kind in table}
    notes = []
    for file_id in sorted(schemas):
        for name, kind in schemas[file_id]:
            entry = kinds.get(name.lower())
            if entry is None or kind in (NULL, entry[1]):
                continue
            notes.append(DriftNote(file_id=file_id, column=entry[0], file_type=kind, table_type=entry[1]))
    return notes


def _checked_integer(value: str, column: str, kind: str) -> str:
    """Return SQL that casts a text value to an integer type, raising an error for any non-integer."""
    label = column.replace("'", "''")
    return (
        f"CASE WHEN {value} IS NULL OR regexp_full_match({value}, '\\s*[+-]?[0-9]+\\s*') "
        f"THEN CAST({value} AS {kind}) "
        f"ELSE error('column {label} has the non-integer value ' || {value}) END"
    )


def table_name(collection_id: str) -> str:
    """Return the quoted, schema-qualified name of a collection's aggregated table."""
    return f'{DATA_SCHEMA}."dc_{collection_id}"'


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class TableBuilder:
    """A load of files into a scratch table on the writer connection: plan, unify, insert.

    With `base`, the columns of the live table, the scratch table starts from those columns
    and types, so its rows can be added to the live table unchanged.
    """

    def __init__(
        self,
        connection: Connection,
        request: BuildRequest,
        reader_config: dict[str, Any] | None = None,
        base: Columns | None = None,
    ) -> None:
        self.connection = connection
        # User files are parsed here, never on the catalog's connection: see _reset_reader_after.
        self.reader_config = reader_config or {}
        self.reader = new_reader(self.reader_config)
        self.request = request
        self.base = base
        self.failures: dict[str, FileResult] = {}
        self.loaded: set[str] = set()
        # Each loaded file's own columns and types; NULL marks a column empty in the file.
        self.observed: dict[str, Columns] = {}
        # (file id, lower-case name) of columns found to hold text beyond the sniffed rows.
        self.late_text: set[tuple[str, str]] = set()
        self.read_details: dict[str, dict[str, Any]] = {}
        # Each described file's own columns, by lower-case name.
        self.file_columns: dict[str, set[str]] = {}
        # The table's columns by lower-case name, as (spelling, type); DuckDB names ignore case.
        self.table: dict[str, tuple[str, str]] = {}
        # DuckLake changes a column's type only to a wider number or time type, never to text,
        # so on a lake the scratch table lives in this connection's temporary database and
        # the swap copies it into the lake.
        self.in_lake = is_lake(connection)
        if self.in_lake:
            self.scratch = f'temp.main."dc_{request.collection_id}{SCRATCH_SUFFIX}"'
            self.scratch_kind = "TEMP TABLE"
        else:
            self.scratch = table_name(f"{request.collection_id}{SCRATCH_SUFFIX}")
            self.scratch_kind = "TABLE"
        self.aggregation_time = utc_now()

    def run(self) -> Columns | None:
        """Fill the scratch table; return its columns, or None when no file loaded."""
        units = self._plan_units()
        planned_failures = dict(self.failures)
        # Each retry leaves out at least one more failed file, so the loop ends.
        for _ in range(len(self.request.files) + 1):
            if not units:
                return None
            self._load(units, planned_failures)
            if not self.loaded:
                self.connection.execute(f"DROP TABLE IF EXISTS {self.scratch}")
                return None
            failed = set(self.failures) - set(planned_failures)
            if self.base is not None or not failed or self._matches_loaded_files():
                break
            # A file that failed while loading still gave the table its columns and types.
            # The table must show only the files that loaded, so it is built again without it.
            logger.info(
                "collection %s: %d files failed while loading and shaped the columns; loading the others again",
                self.request.collection_id,
                len(failed),
            )
            units = [
                _Unit(sources=kept, columns=unit.columns)
                for unit in units
                if (kept := [source for source in unit.sources if source.file_id not in failed])
            ]
            planned_failures = dict(self.failures)
        return self._columns()

    def _load(self, units: list[_Unit], planned_failures: dict[str, FileResult]) -> None:
        self.table = {}
        for unit in units:
            unit.empty = set()
        self._unify(units)
        # Each restart turns at least one more column into text, so the loop ends.
        for _ in range(len(self.table) + 1):
            self.connection.execute(f"DROP TABLE IF EXISTS {self.scratch}")
            self.connection.execute(f"CREATE {self.scratch_kind} {self.scratch} ({self._definitions()})")
            self.failures, self.loaded, self.observed = dict(planned_failures), set(), {}
            try:
                for unit in units:
                    self._insert_unit(unit)
                return
            except _TextColumnFound:
                logger.info(
                    "collection %s: a column contains text beyond the sniffed rows; loading every file again",
                    self.request.collection_id,
                )

    def _matches_loaded_files(self) -> bool:
        """Tell whether the table's columns are the ones the loaded files alone give."""
        schemas = self.file_schemas()
        ordered = [schemas[source.file_id] for source in self.request.files if source.file_id in schemas]
        return expected_columns(ordered, self.request.keep_columns) == list(self.table.values())

    def file_schemas(self) -> dict[str, Columns]:
        """Return each loaded file's own columns, typing a text column without values as NULL.

        These schemas are stored with the table: `expected_columns` of them gives the table's
        columns, so a later update can tell whether new files fit without reading old ones.
        """
        textual = sorted(
            {name.lower() for columns in self.observed.values() for name, kind in columns if kind == TEXT}
            & set(self.table)
        )
        counts: dict[str, dict[str, int]] = {}
        if textual and self.loaded:
            selects = ", ".join(f"count({quote(self.table[key][0])})" for key in textual)
            rows = self.connection.execute(
                f"SELECT depictio_file_id, {selects} FROM {self.scratch} GROUP BY 1"
            ).fetchall()
            counts = {str(row[0]): dict(zip(textual, row[1:], strict=True)) for row in rows}

        schemas = {}
        for file_id in self.loaded:
            filled = counts.get(file_id, {})
            schemas[file_id] = [
                (name, NULL if kind == TEXT and name.lower() in self.table and not filled.get(name.lower()) else kind)
                for name, kind in self.observed.get(file_id, [])
            ]
        return schemas

    def results(self) -> list[FileResult]:
        """Return every file's outcome, with the row count of each loaded file."""
        counts: dict[str, int] = {}
        if self.loaded:
            rows = self.connection.execute(
                f"SELECT depictio_file_id, count(*) FROM {self.scratch} GROUP BY 1"
            ).fetchall()
            counts = {str(file_id): int(count) for file_id, count in rows}
        outcomes = list(self.failures.values())
        for file_id in sorted(self.loaded):
            outcomes.append(
                FileResult(
                    file_id=file_id,
                    status="aggregated",
                    row_count=counts.get(file_id, 0),
                    read_details=self._details(file_id),
                )
            )
        return outcomes

    def _details(self, file_id: str) -> dict[str, Any]:
        """Return how the file was read, with the table's columns that the file lacks."""
        details = dict(self.read_details.get(file_id, {}))
        own = self.file_columns.get(file_id, set())
        absent = [spelling for key, (spelling, _) in self.table.items() if key not in own]
        if absent:
            details["absent_columns"] = absent
        return details

    # Describe every file, then group files whose format, options and columns are equal.
    def _plan_units(self) -> list[_Unit]:
        units: dict[object, _Unit] = {}
        for source in self.request.files:
            described = self._describe(source)
            if described is None:
                continue
            columns, dialect = described
            # Feather files are registered one at a time, so each is its own unit.
            shared = source.format != "feather"
            # DuckDB reads a list of CSV files with the first file's dialect: a file with
            # another line ending would be read as one header line, without an error.
            key = (source.format, source.options, dialect, tuple(columns)) if shared else source.file_id
            if key in units:
                units[key].sources.append(source)
            else:
                units[key] = _Unit(sources=[source], columns=columns)
        return list(units.values())

    def _describe(self, source: SourceFile, full_sample: bool = False) -> tuple[Columns, Dialect] | None:
        """Return the file's columns and, for delimited files, its dialect; record a failure otherwise."""
        try:
            _check_compression(source)
            self.read_details[source.file_id] = inspect_rows(self.reader, source)
            if source.format in ("csv", "tsv"):
                columns, dialect = self._sniff(source, full_sample)
            else:
                with _reading(self.reader, [source], full_sample) as (expression, parameters):
                    rows = self.reader.execute(f"DESCRIBE SELECT * FROM {expression}", parameters).fetchall()
                columns, dialect = [(str(row[0]), str(row[1])) for row in rows], ()
        except (duckdb.Error, UnreadableFileError, OSError, ValueError, EOFError, pyarrow.ArrowException) as error:
            self._reset_reader_after(error)
            self._fail(source, error)
            return None

        hiding = [name for name, _ in columns if name.lower() == ROW_ID]
        if hiding:
            message = (
                f"the file has a column named {hiding[0]!r}, which would hide the row ids that page cursors use; "
                "rename the column (CSV and TSV headers are renamed to rowid_1 by themselves)"
            )
            self._fail(source, UnreadableFileError(message))
            return None
        # Reserved columns stay in the list because an explicit column list must name every
        # column of a CSV file. The table leaves them out and adds its own.
        if not _own(columns):
            self._fail(source, UnreadableFileError("the file has no columns besides depictiod's own"))
            return None
        if len(columns) > MAX_FILE_COLUMNS:
            message = (
                f"the file has {len(columns)} columns; depictiod aggregates files of at most {MAX_FILE_COLUMNS} "
                "columns, so store such a matrix in long form (one row per sample and feature)"
            )
            self._fail(source, UnreadableFileError(message))
            return None
        self.file_columns[source.file_id] = {name.lower() for name, _ in _own(columns)}
        return columns, dialect

    def _sniff(self, source: SourceFile, full_sample: bool) -> tuple[Columns, Dialect]:
        expression, parameters = sniff_expression(source, full_sample)
        row = self.reader.execute(f"SELECT {_DIALECT_FIELDS}, Columns FROM {expression}", parameters).fetchone()
        if row is None:
            raise UnreadableFileError("DuckDB could not detect the file's dialect")
        columns = [(str(column["name"]), str(column["type"])) for column in row[-1]]
        # Files read together share the first file's compression and column names too.
        layout = text_layout(source)
        return self._text_booleans(source, columns), (*row[:-1], layout.compression, layout.names)

    def _text_booleans(self, source: SourceFile, columns: Columns) -> Columns:
        """Type BOOLEAN columns as text unless every value is true or false.

        DuckDB's sniffer also reads T and F as booleans, which would turn a column of
        nucleotides such as T into `true`.
        """
        flags = [name for name, kind in columns if kind == "BOOLEAN"]
        if not flags:
            return columns
        as_text = {name: TEXT for name, _ in columns}
        expression, parameters = read_expression([source], columns=as_text)
        checks = ", ".join(f"bool_and(lower(trim({quote(name)})) IN ('true', 'false'))" for name in flags)
        row = self.reader.execute(f"SELECT {checks} FROM {expression}", parameters).fetchone() or ()
        textual = {name for name, strict in zip(flags, row, strict=True) if strict is False}
        return [(name, TEXT if name in textual else kind) for name, kind in columns]

    # Unify the units' schemas by column name (ignoring case) with the widening rule.
    def _unify(self, units: list[_Unit]) -> None:
        base = self.base or []
        spelling: dict[str, str] = {}
        for name, _ in base:
            spelling.setdefault(name.lower(), name)
        for unit in units:
            for name, _ in _own(unit.columns):
                spelling.setdefault(name.lower(), name)

        schemas = [
            (str(index), [(spelling[name.lower()], kind) for name, kind in _own(unit.columns)])
            for index, unit in enumerate(units)
        ]
        prefix = [("base", base)] if base else []
        unified = unify(prefix + schemas)
        empty = self._empty_text_columns(units, prefix + schemas, unified.columns)
        if empty:
            for index, name in empty:
                units[index].empty.add(name.lower())
            schemas = [
                (index, [(name, NULL if (int(index), name) in empty else kind) for name, kind in columns])
                for index, columns in schemas
            ]
            unified = unify(prefix + schemas)

        keep = {name.lower() for name in self.request.keep_columns or []}
        for name, kind in unified.columns:
            if keep and name.lower() not in keep:
                continue
            self.table[name.lower()] = (name, kind)
        if keep:
            missing = sorted(keep - set(self.table))
            if missing:
                logger.warning(
                    "collection %s: keep_columns lists %s, which no file contains", self.request.collection_id, missing
                )

    def _empty_text_columns(
        self, units: list[_Unit], schemas: list[tuple[str, Columns]], columns: Columns
    ) -> set[tuple[int, str]]:
        # DuckDB types an all-empty CSV column as VARCHAR. Treating that as text would turn
        # the numeric column of the other files into text, so it counts as "no type".
        typed = {name for _, unit_columns in schemas for name, kind in unit_columns if kind != TEXT}
        final = dict(columns)
        suspects = [
            (int(index), name)
            for index, unit_columns in schemas
            if index != "base"
            for name, kind in unit_columns
            if kind == TEXT and name in typed and final.get(name) == TEXT
        ]
        empty: set[tuple[int, str]] = set()
        for index, name in suspects:
            unit = units[index]
            own_name = next(column for column, _ in unit.columns if column.lower() == name.lower())
            try:
                with _reading(self.reader, unit.sources) as (expression, parameters):
                    row = self.reader.execute(
                        f"SELECT count({quote(own_name)}) FROM {expression}", parameters
                    ).fetchone()
            except (duckdb.Error, UnreadableFileError, OSError, ValueError, pyarrow.ArrowException) as error:
                self._reset_reader_after(error)
                continue  # The file-by-file insert reports the problem.
            if row is not None and row[0] == 0:
                empty.add((index, name))
        return empty

    def _columns(self) -> Columns:
        return [*self.table.values(), *_RESERVED_TYPES]

    def _definitions(self) -> str:
        return ", ".join(f"{quote(name)} {kind}" for name, kind in self._columns())

    def _insert_unit(self, unit: _Unit) -> None:
        if len(unit.sources) > 1:
            try:
                self._insert_group(unit)
                return
            except (duckdb.Error, UnreadableFileError, OSError, ValueError) as error:
                logger.info(
                    "collection %s: %d files with one header could not be read together (%s); reading them one by one",
                    self.request.collection_id,
                    len(unit.sources),
                    str(error).splitlines()[0] if str(error) else type(error).__name__,
                )
        for source in unit.sources:
            self._insert_alone(source, unit.columns, unit.empty)

    def _insert_group(self, unit: _Unit) -> None:
        types = self._read_types(unit.columns)
        mapping = pyarrow.table(
            {
                "path": [source.location for source in unit.sources],
                "run_tag": [source.run_tag for source in unit.sources],
                "file_id": [source.file_id for source in unit.sources],
            }
        )
        view = "source_paths"
        self.reader.register(view, mapping)
        try:
            expression, parameters = read_expression(unit.sources, columns=types, path_column=_PATH_COLUMN)
            selects = self._select_list(unit.columns, prefix="r.", read_types=types)
            sql = (
                f"SELECT {selects}, m.run_tag AS depictio_run_id, m.file_id AS depictio_file_id, "
                f"? AS aggregation_time FROM {expression} AS r JOIN {quote(view)} AS m "
                f"ON r.{quote(_PATH_COLUMN)} = m.path"
            )
            self._copy_rows(sql, [self.aggregation_time, *parameters], [source.file_id for source in unit.sources])
        finally:
            self._unregister(view)

        for source in unit.sources:
            self._loaded(source, unit.columns, unit.empty)

    def _insert_alone(self, source: SourceFile, known: Columns, empty: set[str]) -> None:
        for full_sample in (False, True):
            described = (known, ()) if not full_sample else self._describe(source, full_sample)
            if described is None:
                return
            columns = described[0]
            self._widen_table(source, columns, empty)
            try:
                self._insert_file(source, columns)
            except (duckdb.Error, UnreadableFileError, OSError, ValueError, pyarrow.ArrowException) as error:
                if not full_sample and not isinstance(error, UnreadableFileError):
                    # The sniffer typed columns from a sample of rows and a later row may not
                    # fit, so type the whole file and try once more before giving up.
                    continue
                self._fail(source, error)
                return
            self._loaded(source, columns, empty)
            return

    def _loaded(self, source: SourceFile, columns: Columns, empty: set[str]) -> None:
        self.loaded.add(source.file_id)
        observed = []
        for name, kind in _own(columns):
            if name.lower() in empty:
                kind = NULL
            elif (source.file_id, name.lower()) in self.late_text:
                kind = TEXT
            observed.append((name, kind))
        self.observed[source.file_id] = observed

    def _insert_file(self, source: SourceFile, columns: Columns) -> None:
        types = self._read_types(columns) if source.format in ("csv", "tsv") else None
        with _reading(self.reader, [source], columns=types) as (expression, parameters):
            selects = self._select_list(columns, prefix="", read_types=types)
            sql = (
                f"SELECT {selects}, ? AS depictio_run_id, ? AS depictio_file_id, ? AS aggregation_time "
                f"FROM {expression}"
            )
            self._copy_rows(sql, [source.run_tag, source.file_id, self.aggregation_time, *parameters], [source.file_id])

    def _copy_rows(self, sql: str, parameters: list[Any], file_ids: list[str]) -> None:
        """Run `sql` on the reader and insert its rows into the scratch table, batch by batch.

        Rows of `file_ids` already inserted are deleted again when reading fails part-way.
        """
        try:
            batches = self.reader.execute(sql, parameters).to_arrow_reader(_BATCH_ROWS)
            for batch in batches:
                self.connection.register("source_batch", pyarrow.Table.from_batches([batch]))
                try:
                    self._write_scratch(f"INSERT INTO {self.scratch} BY NAME SELECT * FROM source_batch")
                finally:
                    self.connection.unregister("source_batch")
        except CatalogUnwritableError:
            raise  # Not the file's fault. The scratch table goes with the failed build.
        except BaseException as error:
            self._write_scratch(
                f"DELETE FROM {self.scratch} WHERE depictio_file_id IN (SELECT unnest(?::VARCHAR[]))", [file_ids]
            )
            self._reset_reader_after(error)
            raise

    def _write_scratch(self, sql: str, parameters: list[Any] | None = None) -> None:
        """Run `sql` on the catalog, and raise CatalogUnwritableError when the file system rejects the write.

        The callers count a duckdb.Error as a failure of the file being read. A rejected write
        is not the file's failure, and counted as one, it would keep the file failed once
        writes work again.
        """
        try:
            self.connection.execute(sql, parameters or [])
        except duckdb.Error as error:
            failure = classify_write_error(error)
            if failure is None:
                raise
            raise failure from error

    def _reset_reader_after(self, error: BaseException) -> None:
        # An internal DuckDB error invalidates the database it happened in. User files are
        # parsed only by this private in-memory database, so the catalog survives; a fresh
        # reader replaces the broken one.
        if isinstance(error, duckdb.InternalException | duckdb.FatalException):
            logger.warning(
                "collection %s: DuckDB reader failed internally; starting a new reader", self.request.collection_id
            )
            with contextlib.suppress(duckdb.Error):
                self.reader.close()
            self.reader = new_reader(self.reader_config)

    def _unregister(self, view: str) -> None:
        with contextlib.suppress(duckdb.Error):
            self.reader.unregister(view)

    def _widen_table(self, source: SourceFile, columns: Columns, empty: set[str]) -> None:
        """Alter table columns whose type cannot store this file's values."""
        for name, kind in _own(columns):
            entry = self.table.get(name.lower())
            if entry is None or name.lower() in empty:
                continue
            spelling, table_kind = entry
            widened = common_type(table_kind, kind)
            if widened == table_kind:
                continue
            if widened == TEXT and self.loaded:
                # Casting loaded values to text would respell them (1.50 as 1.5), so the
                # build starts again with the column read as text from every file.
                self.table[name.lower()] = (spelling, TEXT)
                self.late_text.add((source.file_id, name.lower()))
                raise _TextColumnFound()
            self.connection.execute(f"ALTER TABLE {self.scratch} ALTER {quote(spelling)} TYPE {widened}")
            self.table[name.lower()] = (spelling, widened)

    def _read_types(self, columns: Columns) -> dict[str, str]:
        """Return the types to read a delimited file with.

        A column that is text in the table is read as text, so its values keep the
        file's spelling (`1.50` stays `1.50`). Integer columns are read as text and
        checked by `_checked_integer`, because DuckDB casts the text "1.5" to the integer
        2 and would round a decimal beyond the rows the sniffer sampled.
        """
        types = {}
        for name, kind in columns:
            entry = self.table.get(name.lower())
            textual = entry is None or entry[1] == TEXT or kind in INTEGER_TYPES
            types[name] = TEXT if textual else kind
        return types

    def _select_list(self, columns: Columns, prefix: str, read_types: dict[str, str] | None) -> str:
        own = {name.lower(): (name, kind) for name, kind in columns}
        selects = []
        for key, (name, kind) in self.table.items():
            if key not in own:
                selects.append(f"CAST(NULL AS {kind}) AS {quote(name)}")
                continue
            file_name, file_kind = own[key]
            value = f"{prefix}{quote(file_name)}"
            read_as = read_types.get(file_name, file_kind) if read_types is not None else file_kind
            if read_as == TEXT and file_kind in INTEGER_TYPES and kind != TEXT:
                value = _checked_integer(value, file_name, file_kind)
            selects.append(f"CAST({value} AS {kind}) AS {quote(name)}")
        return ", ".join(selects)

    def _fail(self, source: SourceFile, error: BaseException) -> None:
        # NOTE: a reader that spills to a full catalog.temp_directory also fails here, and the
        # file then stays failed until its content changes.
        message, line = describe_error(source, error)
        logger.warning("file %s (%s) skipped: %s", source.file_id, source.location, message)
        self.loaded.discard(source.file_id)
        self.failures[source.file_id] = FileResult(
            file_id=source.file_id, status="failed", error=message, error_line=line, reason=read_error_reason(error)
        )


def build_table(
    connection: Connection, request: BuildRequest, reader_config: dict[str, Any] | None = None
) -> BuildResult:
    """Bring the collection's table up to date: file by file when it can, else as a whole.

    Either way the change commits in one transaction with the table record, the column
    specs and the file outcomes, so readers see the table before or after it, never between.
    """
    delta = _plan_delta(connection, request)
    if delta is not None:
        result = _update(connection, request, delta, reader_config)
        if result is not None:
            return result
    return _rebuild(connection, request, reader_config)


class _Delta(msgspec.Struct, kw_only=True):
    """The changes in a collection since its table was last written."""

    version: int
    drift: list[DriftNote]
    # The live table's own columns, without depictiod's.
    base: Columns
    # file id -> (input key, status, JSON columns) of each file the table recorded.
    manifest: dict[str, tuple[str, str, str | None]]
    changed: list[SourceFile]
    removed: list[str]


def _plan_delta(connection: Connection, request: BuildRequest) -> _Delta | None:
    """Return the files to read again, or None when the whole table must be built."""
    collection_id = request.collection_id
    record = connection.execute(
        "SELECT aggregation_version, settings_fingerprint, drift FROM aggregated_tables WHERE data_collection_id = ?",
        [collection_id],
    ).fetchone()
    if record is None or not request.settings_fingerprint or record[1] != request.settings_fingerprint:
        return None
    manifest = {
        str(file_id): (str(key), str(status), columns)
        for file_id, key, status, columns in connection.execute(
            "SELECT file_id, input_key, status, columns FROM table_files WHERE data_collection_id = ?",
            [collection_id],
        ).fetchall()
    }
    base = [
        (str(name), str(kind))
        for name, kind in connection.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [DATA_SCHEMA, f"dc_{collection_id}"],
        ).fetchall()
    ]
    if not manifest or not base:
        return None
    current = {source.file_id for source in request.files}
    return _Delta(
        version=int(record[0]),
        drift=msgspec.json.decode(str(record[2] or "[]"), type=list[DriftNote]),
        base=_own(base),
        manifest=manifest,
        changed=[source for source in request.files if manifest.get(source.file_id, ("",))[0] != input_key(source)],
        removed=sorted(set(manifest) - current),
    )


def _update(
    connection: Connection, request: BuildRequest, delta: _Delta, reader_config: dict[str, Any] | None
) -> BuildResult | None:
    """Replace the rows of changed and removed files; None when the table's columns would change."""
    changed_only = msgspec.structs.replace(request, files=delta.changed)
    builder = TableBuilder(connection, changed_only, reader_config, base=delta.base)
    try:
        builder.run()
        schemas = builder.file_schemas()
        decoded: dict[str, Columns] = {}
        ordered = []
        changed = {source.file_id for source in delta.changed}
        for source in request.files:
            if source.file_id in schemas:
                ordered.append(schemas[source.file_id])
                continue
            _key, status, columns = delta.manifest.get(source.file_id, ("", "", None))
            if source.file_id in changed or status != "aggregated" or columns is None:
                continue
            if columns not in decoded:
                decoded[columns] = [(str(name), str(kind)) for name, kind in msgspec.json.decode(columns)]
            ordered.append(decoded[columns])
        if not ordered:
            return None  # No file has rows any more: the rebuild records that.
        if expected_columns(ordered, request.keep_columns) != delta.base:
            logger.info(
                "collection %s: the changed files alter the table's columns or types; rebuilding the whole table",
                request.collection_id,
            )
            return None
        return _apply_delta(connection, request, delta, builder, schemas)
    finally:
        connection.execute(f"DROP TABLE IF EXISTS {builder.scratch}")
        builder.reader.close()


def _apply_delta(
    connection: Connection,
    request: BuildRequest,
    delta: _Delta,
    builder: TableBuilder,
    schemas: dict[str, Columns],
) -> BuildResult:
    collection_id = request.collection_id
    live = table_name(collection_id)
    columns = [*delta.base, *_RESERVED_TYPES]
    names = ", ".join(quote(name) for name, _ in columns)
    # A file that failed may have widened a scratch column; the rows that loaded fit the live type.
    fitted = ", ".join(f"CAST({quote(name)} AS {kind}) AS {quote(name)}" for name, kind in columns)
    touched = sorted({source.file_id for source in delta.changed} | set(delta.removed))
    outcomes = builder.results()

    # The specs describe the table as it is after the change: its untouched rows plus the new ones.
    view = "depictiod_touched_files"
    connection.register(view, pyarrow.table({"file_id": pyarrow.array(touched, pyarrow.string())}))
    try:
        after = f"(SELECT {names} FROM {live} WHERE depictio_file_id NOT IN (SELECT file_id FROM {view})"
        if builder.loaded:
            after += f" UNION ALL SELECT {fitted} FROM {builder.scratch}"
        after += ") AS after_change"
        column_specs = specs.compute(connection, after, columns, request.descriptions)
        counted = connection.execute(f"SELECT count(*) FROM {after}").fetchone()
    finally:
        connection.unregister(view)

    touched_ids = set(touched)
    untouched_notes = [note for note in delta.drift if note.file_id not in touched_ids]
    drift = sorted([*untouched_notes, *drift_notes(schemas, delta.base)], key=lambda note: note.file_id)
    version = delta.version + 1
    row_count = int(counted[0]) if counted else 0
    table = _new_record(request, builder, version, row_count, len(columns), drift)
    connection.execute("BEGIN TRANSACTION")
    try:
        claim_table_writes(connection)
        current = connection.execute(
            "SELECT aggregation_version FROM aggregated_tables WHERE data_collection_id = ?", [collection_id]
        ).fetchone()
        if current is None or current[0] != delta.version:
            raise StalePlanError(f"table of collection {collection_id} changed while its update was planned")
        if touched:
            connection.execute(f"DELETE FROM {live} WHERE depictio_file_id IN (SELECT unnest(?::VARCHAR[]))", [touched])
        if builder.loaded:
            connection.execute(f"INSERT INTO {live} ({names}) SELECT {fitted} FROM {builder.scratch}")
        store_table_record(connection, table, column_specs)
        store_file_results(connection, _result_rows(outcomes))
        _store_manifest(connection, collection_id, delta.changed, outcomes, schemas, replace=touched)
        connection.execute("COMMIT")
    except BaseException:
        rollback(connection)
        raise
    logger.info(
        "collection %s: table version %d updated in place: %d files read, %d files removed",
        collection_id,
        version,
        len(delta.changed),
        len(delta.removed),
    )
    return BuildResult(table=table, files=outcomes, column_specs=column_specs, updated_in_place=True)


def _rebuild(connection: Connection, request: BuildRequest, reader_config: dict[str, Any] | None) -> BuildResult:
    """Build the whole table and swap it in; the old table stays when no file loads."""
    builder = TableBuilder(connection, request, reader_config)
    try:
        columns = builder.run()
        outcomes = builder.results()
        if columns is None:
            store_file_results(connection, _result_rows(outcomes))
            return BuildResult(table=None, files=outcomes)
        schemas = builder.file_schemas()
        drift = drift_notes(schemas, list(builder.table.values()))
        column_specs = specs.compute(connection, builder.scratch, columns, request.descriptions)
        table = _swap(connection, request, builder, columns, drift, outcomes, column_specs, schemas)
        return BuildResult(table=table, files=outcomes, column_specs=column_specs)
    finally:
        connection.execute(f"DROP TABLE IF EXISTS {builder.scratch}")
        builder.reader.close()


def _swap(
    connection: Connection,
    request: BuildRequest,
    builder: TableBuilder,
    columns: Columns,
    drift: list[DriftNote],
    outcomes: list[FileResult],
    column_specs: list[ColumnSpec],
    schemas: dict[str, Columns],
) -> TableRecord:
    collection_id = request.collection_id
    live = table_name(collection_id)
    connection.execute("BEGIN TRANSACTION")
    try:
        claim_table_writes(connection)
        previous = connection.execute(
            "SELECT aggregation_version FROM aggregated_tables WHERE data_collection_id = ?", [collection_id]
        ).fetchone()
        version = (previous[0] if previous else 0) + 1
        row_count = sum(outcome.row_count or 0 for outcome in outcomes)
        table = _new_record(request, builder, version, row_count, len(columns), drift)
        connection.execute(f"DROP TABLE IF EXISTS {live}")
        if builder.in_lake:
            connection.execute(f"CREATE TABLE {live} AS SELECT * FROM {builder.scratch}")
        else:
            connection.execute(f'ALTER TABLE {builder.scratch} RENAME TO "dc_{collection_id}"')
        store_table_record(connection, table, column_specs)
        # File outcomes commit with the table, so a table never exists without them.
        store_file_results(connection, _result_rows(outcomes))
        _store_manifest(connection, collection_id, request.files, outcomes, schemas, replace=None)
        connection.execute("COMMIT")
    except BaseException:
        rollback(connection)
        raise
    return table


def _new_record(
    request: BuildRequest,
    builder: TableBuilder,
    version: int,
    row_count: int,
    column_count: int,
    drift: list[DriftNote],
) -> TableRecord:
    """Return the record of version `version` of the request's table."""
    return TableRecord(
        data_collection_id=request.collection_id,
        table_name=table_name(request.collection_id),
        row_count=row_count,
        column_count=column_count,
        size_bytes=request.input_bytes,
        aggregation_version=version,
        aggregation_time=builder.aggregation_time,
        aggregation_hash=hashlib.sha256(f"{request.inputs_fingerprint}:{version}".encode()).hexdigest(),
        inputs_fingerprint=request.inputs_fingerprint,
        settings_fingerprint=request.settings_fingerprint,
        drift=drift,
    )


def _store_manifest(
    connection: Connection,
    collection_id: str,
    sources: list[SourceFile],
    outcomes: list[FileResult],
    schemas: dict[str, Columns],
    replace: list[str] | None,
) -> None:
    """Record what the table contains of each file read; `replace` None replaces every record."""
    if replace is None:
        connection.execute("DELETE FROM table_files WHERE data_collection_id = ?", [collection_id])
    elif replace:
        connection.execute(
            "DELETE FROM table_files WHERE data_collection_id = ? AND file_id IN (SELECT unnest(?::VARCHAR[]))",
            [collection_id, replace],
        )
    status = {outcome.file_id: outcome.status for outcome in outcomes}
    rows = [
        {
            "data_collection_id": collection_id,
            "file_id": source.file_id,
            "input_key": input_key(source),
            "status": status[source.file_id],
            "columns": msgspec.json.encode(schemas[source.file_id]).decode() if source.file_id in schemas else None,
        }
        for source in sources
        if source.file_id in status
    ]
    if not rows:
        return
    connection.register("new_table_files", pyarrow.Table.from_pylist(rows))
    try:
        connection.execute(
            "INSERT INTO table_files (data_collection_id, file_id, input_key, status, columns) "
            "SELECT data_collection_id, file_id, input_key, status, columns FROM new_table_files"
        )
    finally:
        connection.unregister("new_table_files")


def store_table_record(connection: Connection, table: TableRecord, column_specs: list[ColumnSpec]) -> None:
    connection.execute("DELETE FROM aggregated_tables WHERE data_collection_id = ?", [table.data_collection_id])
    values = [getattr(table, name) for name in TableRecord.__struct_fields__]
    values[-1] = msgspec.json.encode(table.drift).decode()
    connection.execute(
        f"INSERT INTO aggregated_tables ({AGGREGATED_TABLE_COLUMNS}) VALUES ({', '.join('?' * len(values))})", values
    )

    connection.execute("DELETE FROM column_specs WHERE data_collection_id = ?", [table.data_collection_id])
    for position, spec in enumerate(column_specs):
        connection.execute(
            "INSERT INTO column_specs VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                table.data_collection_id,
                position,
                spec.name,
                spec.duckdb_type,
                spec.type,
                spec.description,
                msgspec.json.encode(spec.specs).decode(),
            ],
        )


@contextmanager
def _reading(
    connection: Connection, sources: list[SourceFile], full_sample: bool = False, columns: dict[str, str] | None = None
) -> Iterator[tuple[str, list[Any]]]:
    """Yield a FROM expression for `sources`; a Feather file is read with pyarrow and registered."""
    first = sources[0]
    if first.format != "feather":
        yield read_expression(sources, full_sample, columns)
        return

    view = f"feather_{first.file_id}"
    connection.register(view, pyarrow.feather.read_table(first.location))
    try:
        yield quote(view), []
    finally:
        connection.unregister(view)


def _error_summary(error: BaseException) -> str:
    """Return DuckDB's error in at most three lines: the headline and the reason, without stack traces."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    summary = [lines[0]]
    for line in lines[1:]:
        if line.startswith(("Stack Trace", "Possible fixes", "Possible Solution", "*", "/", "LINE ")):
            break
        if line.startswith("Original Line"):
            continue
        summary.append(line)
        if len(summary) == 3:
            break
    return " ".join(summary)[:500]


def _result_rows(outcomes: list[FileResult]) -> list[tuple[str, str, str | None, int | None, int | None, str]]:
    return [
        (o.file_id, o.status, o.error, o.error_line, o.row_count, msgspec.json.encode(o.read_details).decode())
        for o in outcomes
    ]


def describe_error(source: SourceFile, error: BaseException) -> tuple[str, int | None]:
    """Return (message, line number or None) explaining to a user why a file was skipped."""
    if isinstance(error, UnreadableFileError):
        return str(error), error.line
    if isinstance(error, FileNotFoundError):
        return "the file no longer exists", None

    text = _error_summary(error)
    match = _LINE_NUMBER.search(str(error))
    line = int(match.group(1)) if match else None
    if source.format in ("csv", "tsv") and "sniffing" in text:
        ragged = find_ragged_line(source)
        if ragged:
            return f"malformed {source.format.upper()}: {ragged[1]}", ragged[0]
    return text, line
