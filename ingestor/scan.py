"""One scan of a workflow: find its runs and files and make the catalog match them."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable

import msgspec

from catalog import Catalog, FileRecord, RunRecord, ScanReport, SyncCounts, utc_now
from config import DataCollection, Project, Workflow, derive_id
from ingestor.discover import (
    CollectionMatcher,
    FileFound,
    IgnoreRules,
    RunFound,
    discover_runs,
    timestamp,
    walk_run,
)
from ingestor.hashing import content_hash
from ingestor.parameters import find_run_parameters

logger = logging.getLogger(__name__)

# How many run or folder names a warning lists before it writes "...".
_NAMES_SHOWN = 5


class CollectionScan(msgspec.Struct, kw_only=True):
    """The files that one scan found for one data collection."""

    collection_id: str
    tag: str
    files: int = 0
    empty_files: int = 0
    # What this scan changed in the catalog, counted as the workflow sync counts it.
    files_new: int = 0
    files_changed: int = 0
    files_removed: int = 0
    # Matching files modified within the settle window, left for a later scan.
    unsettled: int = 0
    # Set when the collection matched no file: the locations searched, the pattern and what was there.
    warning: str | None = None
    # ok (files found), waiting (only files still being written) or no_files (nothing matched).
    status: str = "ok"


class WorkflowScan(msgspec.Struct, kw_only=True):
    project_id: str
    workflow_id: str
    workflow_name: str
    runs: int
    collections: list[CollectionScan]
    counts: SyncCounts
    warnings: list[str]
    seconds: float
    # Files modified within the settle window, left for a later scan.
    unsettled: int = 0
    # Id of the scan report stored for this scan.
    report_id: str = ""
    # Files that this scan recorded as failed and that were not failed so before, by reason
    # class (see catalog.failures). Files that fail when read are counted by the aggregation.
    failures: dict[str, int] = msgspec.field(default_factory=dict)


def scan_workflow(
    catalog: Catalog,
    project: Project,
    workflow: Workflow,
    settle_seconds: float = 0.0,
    held_locations: Callable[[list[str]], list[str]] | None = None,
    trigger: str = "schedule",
    link_roots: list[str] | None = None,
    *,
    ignore: IgnoreRules | None = None,
    checkpoint: Callable[[], None] | None = None,
    known_hashes: dict[str, tuple[int, int, str]] | None = None,
) -> WorkflowScan:
    """Register the workflow's current runs and files; remove those that are gone.

    A file modified less than `settle_seconds` ago may still be written: it is left as
    the catalog had it (or not registered yet) and counted in `unsettled`, so the caller
    scans again once it is quiet. `held_locations` receives the locations that are missing
    and returns those whose runs are kept as stored, because an unmounted share may come
    back. Without it, the runs of a missing location are removed.

    `checkpoint` runs between folders and between files and may raise to stop the scan.
    The catalog is written in one transaction at the end, so a stopped scan changes
    nothing. `known_hashes` maps a path to (size, mtime_ns, content hash) and keeps the
    hashes computed by a stopped scan, so the next scan does not read those files again.
    """
    started = time.monotonic()
    started_at = utc_now()
    warnings: list[str] = []
    assert workflow.id is not None and project.id is not None
    step = checkpoint if checkpoint is not None else _no_checkpoint
    hashes = known_hashes if known_hashes is not None else {}

    missing: list[str] = []
    discovered = discover_runs(workflow, warnings, missing)
    found, files_walked = _find_recursive_files(workflow, discovered, warnings, link_roots or [], ignore, step)
    found += _find_single_files(workflow, discovered, warnings)
    runs = _add_single_file_runs(workflow, discovered, found)
    kept_locations = held_locations(missing) if held_locations is not None and missing else []
    for folder in missing:
        outcome = (
            "its runs are kept until it returns or its grace period ends"
            if folder in kept_locations
            else "its runs are removed"
        )
        warnings.append(f"location {folder!r} of workflow {workflow.name!r} is missing or not a folder; {outcome}")

    # Files that a scan found before; uploaded files are not the scan's to count or remove.
    previous = {record.id: record for record in catalog.files.list_for_workflow(workflow.id) if record.origin == "scan"}
    found, unsettled = _split_unsettled(found, settle_seconds)
    records = []
    failures: Counter[str] = Counter()
    for item in found:
        step()
        record = _file_record(workflow, item, previous, hashes, warnings)
        records.append(record)
        reason = _new_failure_reason(item, record, previous)
        if reason is not None:
            failures[reason] += 1
    # An unsettled file keeps the record it had, so its rows stay until it is quiet.
    records += [previous.get(derive_id("file", item.collection_id, item.path)) for item in unsettled]
    files = [record for record in records if record is not None]
    run_records = [_run_record(workflow, run, files, warnings) for run in runs]
    if kept_locations:
        kept_runs = [
            run for run in catalog.runs.list_for_workflow(workflow.id) if under_any(run.run_location, kept_locations)
        ]
        run_records += kept_runs
        kept_tags = {run.run_tag for run in kept_runs}
        files += [record for record in previous.values() if record.run_tag in kept_tags]
    step()
    counts = catalog.files.sync_workflow(workflow.id, run_records, files)

    collections = _collection_summaries(workflow, files, previous, unsettled)
    _warn_about_unmatched(workflow, collections, discovered, files_walked, warnings)
    seconds = time.monotonic() - started
    report = ScanReport(
        id=derive_id("scan", workflow.id, started_at.isoformat()),
        project_id=project.id,
        workflow_id=workflow.id,
        started_at=started_at,
        finished_at=utc_now(),
        runs=len(run_records),
        files_total=len(files),
        files_new=counts.files_added,
        files_changed=counts.files_changed,
        files_removed=counts.files_removed,
        files_failed=sum(1 for record in files if record.status == "failed"),
        details={
            "trigger": trigger,
            "warnings": warnings,
            "unsettled": len(unsettled),
            "collections": [msgspec.to_builtins(collection) for collection in collections],
        },
    )
    catalog.scans.add(report)
    return WorkflowScan(
        report_id=report.id,
        project_id=project.id,
        workflow_id=workflow.id,
        workflow_name=workflow.name,
        runs=len(run_records),
        collections=collections,
        counts=counts,
        warnings=warnings,
        seconds=seconds,
        unsettled=len(unsettled),
        failures=dict(failures),
    )


def _new_failure_reason(item: FileFound, record: FileRecord | None, previous: dict[str, FileRecord]) -> str | None:
    """Return the reason class of a file this scan marks failed, or None when it was failed so before.

    A scan fails a file only for a broken symbolic link or for having no bytes.
    """
    if record is None or record.status != "failed":
        return None
    old = previous.get(record.id)
    if old is not None and old.status == "failed" and old.error == record.error:
        return None
    return "link" if item.broken_link is not None else "empty"


def _no_checkpoint() -> None:
    pass


def _split_unsettled(found: list[FileFound], settle_seconds: float) -> tuple[list[FileFound], list[FileFound]]:
    """Split files into (settled, unsettled): unsettled ones were modified within the window.

    A modification time up to the window in the future also counts as recent, because the
    clock of a file server may run ahead of this machine's.
    """
    if settle_seconds <= 0:
        return found, []
    now_ns = time.time_ns()
    window_ns = int(settle_seconds * 1e9)
    settled: list[FileFound] = []
    unsettled: list[FileFound] = []
    for item in found:
        (unsettled if abs(now_ns - item.mtime_ns) < window_ns else settled).append(item)
    return settled, unsettled


def link_target_roots(workflow: Workflow, extra_roots: list[str]) -> list[str]:
    """Return the folders that a symlinked file of the workflow may point into.

    These are the locations, their parent folders (Nextflow publishes results as links
    into the `work/` folder beside `results/`) and the configured `ingest.link_roots`.
    """
    roots = []
    for location in workflow.data_location.locations:
        real = os.path.realpath(location)
        roots += [real, os.path.dirname(real)]
    return roots + [os.path.realpath(root) for root in extra_roots]


def download_roots(workflow: Workflow, extra_roots: list[str]) -> list[str]:
    """Return the folders whose files may be downloaded: the locations, the `work/` folder beside each, and `extra_roots`.

    Narrower than `link_target_roots`: a scan reads a link into a location's parent folder
    only as table rows, but a download would send any file there as it is, so only the
    folder where Nextflow keeps the targets of its result links is added.
    """
    roots = []
    for location in workflow.data_location.locations:
        real = os.path.realpath(location)
        roots += [real, os.path.realpath(os.path.join(os.path.dirname(real), "work"))]
    return roots + [os.path.realpath(root) for root in extra_roots]


def _find_recursive_files(
    workflow: Workflow,
    runs: list[RunFound],
    warnings: list[str],
    extra_roots: list[str],
    ignore: IgnoreRules | None,
    checkpoint: Callable[[], None],
) -> tuple[list[FileFound], int]:
    """Return the files that recursive collections match, and the number of files walked."""
    matchers = [
        CollectionMatcher(collection)
        for collection in workflow.data_collections
        if collection.config.scan is not None and collection.config.scan.mode == "recursive"
    ]
    if not matchers:
        return [], 0

    roots = link_target_roots(workflow, extra_roots)
    found: list[FileFound] = []
    walked = 0
    for run in runs:
        # One walk per run serves every collection of the workflow.
        run_files = walk_run(run.location, warnings, ignore, checkpoint)
        walked += len(run_files)
        for relative_path, path in run_files:
            for matcher in matchers:
                captures = matcher.match(relative_path)
                if captures is None:
                    continue
                item = _stat_file(matcher.collection_id, run.tag, path, captures, warnings, roots)
                if item is not None:
                    found.append(item)
    return found, walked


def _find_single_files(workflow: Workflow, runs: list[RunFound], warnings: list[str]) -> list[FileFound]:
    found: list[FileFound] = []
    for collection in workflow.data_collections:
        scan = collection.config.scan
        if scan is None or scan.mode != "single":
            continue
        assert collection.id is not None
        path = scan.scan_parameters["filename"]
        item = _stat_file(collection.id, _run_tag_for(path, runs, collection), path, {}, warnings)
        if item is not None:
            found.append(item)
    return found


def _run_tag_for(path: str, runs: list[RunFound], collection: DataCollection) -> str:
    """Return the tag of the run folder containing `path`, or Depictio's single-file run tag."""
    for run in runs:
        if os.path.commonpath([run.location, path]) == run.location:
            return run.tag
    return f"{collection.data_collection_tag}-single-file-scan"


def _add_single_file_runs(workflow: Workflow, runs: list[RunFound], found: list[FileFound]) -> list[RunFound]:
    # Depictio gives a file outside every run a synthetic run that it never stores.
    # depictiod stores that run, so every file's run_id names a real run.
    known = {run.tag for run in runs}
    extra: dict[str, RunFound] = {}
    for item in found:
        if item.run_tag in known or item.run_tag in extra:
            continue
        folder = os.path.dirname(item.path)
        try:
            info = os.stat(folder)
        except OSError:
            continue  # The folder vanished after the file was found; the next scan registers the change.
        extra[item.run_tag] = RunFound(
            tag=item.run_tag,
            location=folder,
            creation_time=timestamp(info.st_ctime),
            last_modification_time=timestamp(info.st_mtime),
        )
    return runs + list(extra.values())


def _stat_file(
    collection_id: str,
    run_tag: str,
    path: str,
    captures: dict[str, str],
    warnings: list[str],
    roots: list[str] | None = None,
) -> FileFound | None:
    """Return the file's size and times, or None (with a warning) when it is skipped.

    With `roots`, a symlink whose target lies outside every root folder is skipped, so a
    link in a run folder cannot publish arbitrary files of the machine. Files are
    identified by the path where they were found, so two links to one file in two runs
    stay two files. A symlink that cannot be followed is returned with `broken_link` set,
    so the catalog marks it failed instead of keeping its old rows.
    """
    found_path = os.path.abspath(path)
    real_path = os.path.realpath(path)
    link_target = real_path if os.path.islink(found_path) else None
    if roots is not None and not under_any(real_path, roots):
        warnings.append(
            f"file {found_path!r} links to {real_path!r}, outside the workflow's locations and their parent "
            "folders; skipped. Add the target's folder to ingest.link_roots to read it"
        )
        return None
    try:
        info = os.stat(real_path)
    except OSError as error:
        if link_target is not None:
            return _broken_link(collection_id, run_tag, found_path, link_target, captures, error, warnings)
        # A file removed since the walk is skipped; a later scan registers it if it returns.
        warnings.append(f"file {found_path!r} cannot be read: {error.strerror}; skipped")
        return None
    if not os.path.isfile(real_path):
        return None
    return FileFound(
        collection_id=collection_id,
        run_tag=run_tag,
        path=found_path,
        size=info.st_size,
        mtime_ns=info.st_mtime_ns,
        creation_time=timestamp(info.st_ctime),
        wildcards=captures,
        link_target=link_target,
    )


def _broken_link(
    collection_id: str,
    run_tag: str,
    found_path: str,
    target: str,
    captures: dict[str, str],
    error: OSError,
    warnings: list[str],
) -> FileFound | None:
    """Return a symlink whose target is gone or that loops, described by the link's own times."""
    if error.errno == errno.ENOENT:
        reason = (
            f"the symbolic link points to {target!r}, which does not exist; the target was removed, "
            "for example by `nextflow clean` or a cleanup of the work folder"
        )
    else:
        reason = f"the symbolic link to {target!r} cannot be followed: {error.strerror}"
    try:
        info = os.lstat(found_path)
    except OSError:
        return None  # The link itself was removed after the walk; the next scan registers that.
    warnings.append(f"file {found_path!r}: {reason}; recorded as failed")
    return FileFound(
        collection_id=collection_id,
        run_tag=run_tag,
        path=found_path,
        size=0,
        mtime_ns=info.st_mtime_ns,
        creation_time=timestamp(info.st_ctime),
        wildcards=captures,
        link_target=target,
        broken_link=reason,
    )


def under_any(path: str, folders: list[str]) -> bool:
    """Return True when `path` is one of `folders` or lies inside one of them."""
    return any(path == folder or path.startswith(folder.rstrip(os.sep) + os.sep) for folder in folders)


def _file_record(
    workflow: Workflow,
    item: FileFound,
    previous: dict[str, FileRecord],
    known_hashes: dict[str, tuple[int, int, str]],
    warnings: list[str],
) -> FileRecord | None:
    assert workflow.id is not None
    file_id = derive_id("file", item.collection_id, item.path)
    old = previous.get(file_id)
    known = known_hashes.get(item.path)

    if item.broken_link is not None:
        digest = ""  # There is no content to hash.
    elif old is not None and (old.filesize, old.mtime_ns) == (item.size, item.mtime_ns):
        digest = old.content_hash  # Same size and nanosecond mtime: trust the stored hash.
    elif known is not None and known[:2] == (item.size, item.mtime_ns):
        digest = known[2]  # Computed by a scan that stopped at its deadline.
    else:
        try:
            digest = content_hash(item.path)
        except OSError as exc:
            warnings.append(f"file {item.path!r} cannot be read: {exc.strerror}; skipped")
            return None
        known_hashes[item.path] = (item.size, item.mtime_ns, digest)

    # An unchanged file keeps the outcome of its last aggregation.
    status, error, error_line, row_count = "registered", None, None, None
    read_details: dict[str, object] = {}
    if item.broken_link is not None:
        status, error = "failed", item.broken_link
    elif item.size == 0:
        status, error = "failed", "the file is empty (0 bytes)"
    elif old is not None and (old.content_hash, old.filesize) == (digest, item.size):
        status, error, error_line, row_count = old.status, old.error, old.error_line, old.row_count
        read_details = old.read_details

    return FileRecord(
        id=file_id,
        data_collection_id=item.collection_id,
        workflow_id=workflow.id,
        run_id=derive_id("run", workflow.id, item.run_tag),
        run_tag=item.run_tag,
        file_location=item.path,
        filename=os.path.basename(item.path),
        filesize=item.size,
        mtime_ns=item.mtime_ns,
        creation_time=item.creation_time,
        modification_time=timestamp(item.mtime_ns / 1e9),
        content_hash=digest,
        wildcards=item.wildcards,
        status=status,
        error=error,
        error_line=error_line,
        row_count=row_count,
        registration_time=old.registration_time if old is not None else utc_now(),
        link_target=item.link_target,
        read_details=read_details,
    )


def _run_record(workflow: Workflow, run: RunFound, files: list[FileRecord], warnings: list[str]) -> RunRecord:
    assert workflow.id is not None
    assert workflow.config is not None
    assert workflow.config.id is not None
    hashes = sorted(record.content_hash for record in files if record.run_tag == run.tag)
    run_hash = hashlib.sha256("\n".join([run.location, *hashes]).encode()).hexdigest()
    return RunRecord(
        id=derive_id("run", workflow.id, run.tag),
        workflow_id=workflow.id,
        run_tag=run.tag,
        run_location=run.location,
        workflow_config_id=workflow.config.id,
        creation_time=run.creation_time,
        last_modification_time=run.last_modification_time,
        registration_time=utc_now(),
        run_hash=run_hash,
        parameters=find_run_parameters(run.location, warnings),
    )


def _collection_summaries(
    workflow: Workflow, files: list[FileRecord], previous: dict[str, FileRecord], unsettled: list[FileFound]
) -> list[CollectionScan]:
    """Count each collection's files and what the scan changed in them."""
    current: dict[str, list[FileRecord]] = {}
    for record in files:
        current.setdefault(record.data_collection_id, []).append(record)
    before: dict[str, list[FileRecord]] = {}
    for record in previous.values():
        before.setdefault(record.data_collection_id, []).append(record)
    waiting = Counter(item.collection_id for item in unsettled)

    summaries = []
    for collection in workflow.data_collections:
        assert collection.id is not None
        summary = _count_changes(collection, current.get(collection.id, []), before.get(collection.id, []))
        summary.unsettled = waiting[collection.id]
        summary.status = collection_status(summary.files, summary.unsettled)
        summaries.append(summary)
    return summaries


def collection_status(files: int, unsettled: int) -> str:
    """Return ok (files found), waiting (only files still being written) or no_files (nothing matched)."""
    if files > 0:
        return "ok"
    return "waiting" if unsettled > 0 else "no_files"


def _count_changes(collection: DataCollection, files: list[FileRecord], before: list[FileRecord]) -> CollectionScan:
    """Count the collection's files, and those that are new, changed or removed since the last scan.

    A file counts as changed when its size, mtime or content hash differs, as
    `FileRepository.sync_workflow` decides which rows to write.
    """
    assert collection.id is not None
    summary = CollectionScan(collection_id=collection.id, tag=collection.data_collection_tag)
    stored = {record.id: (record.filesize, record.mtime_ns, record.content_hash) for record in before}
    for record in files:
        summary.files += 1
        summary.empty_files += int(record.filesize == 0)
        state = stored.get(record.id)
        if state is None:
            summary.files_new += 1
        elif state != (record.filesize, record.mtime_ns, record.content_hash):
            summary.files_changed += 1
    summary.files_removed = len(stored.keys() - {record.id for record in files})
    return summary


def _warn_about_unmatched(
    workflow: Workflow, summaries: list[CollectionScan], runs: list[RunFound], files_walked: int, warnings: list[str]
) -> None:
    """Set the warning of each collection that matched no file, and add it to `warnings`.

    A collection whose matching files are all still being written is not warned about.
    """
    scans = {collection.id: collection.config.scan for collection in workflow.data_collections}
    where = ", ".join(workflow.data_location.locations)
    for summary in summaries:
        scan = scans[summary.collection_id]
        if summary.files > 0 or summary.unsettled > 0 or scan is None:
            continue
        pattern = scan.scan_parameters.get("filename") or scan.scan_parameters["regex_config"]["pattern"]
        summary.warning = (
            f"collection {summary.tag!r} matched no file under {where} with {scan.mode} pattern {pattern!r}"
        )
        # A single-file collection names its path; the scan has already warned that it cannot be read.
        if scan.mode == "recursive":
            summary.warning += _what_was_searched(workflow, runs, files_walked)
        warnings.append(summary.warning)


def _what_was_searched(workflow: Workflow, runs: list[RunFound], files_walked: int) -> str:
    """Describe what the scan found in the locations, so a wrong location or pattern shows."""
    location = workflow.data_location
    if runs:
        names = ", ".join(run.tag for run in runs[:_NAMES_SHOWN]) + (", ..." if len(runs) > _NAMES_SHOWN else "")
        folders = "run folder" if len(runs) == 1 else "run folders"
        return f"; {len(runs)} {folders} searched ({names}), containing {files_walked} files, none of them matching"
    if location.structure == "sequencing-runs":
        listings = "; ".join(f"{folder!r} contains {_folder_listing(folder)}" for folder in location.locations)
        return f"; no subfolder matches runs_regex {location.runs_regex!r}, so no run was searched ({listings})"
    return "; no run folder was found"


def _folder_listing(folder: str) -> str:
    """Return the first names in a folder, folders marked with a trailing `/`, for a warning."""
    try:
        with os.scandir(folder) as listing:
            names = sorted(
                entry.name + ("/" if entry.is_dir() else "") for entry in listing if not entry.name.startswith(".")
            )
    except OSError as error:
        return f"nothing readable ({error.strerror})"
    if not names:
        return "nothing"
    return ", ".join(names[:_NAMES_SHOWN]) + (", ..." if len(names) > _NAMES_SHOWN else "")
