"""Find the runs of a workflow and the files of its data collections.

Matching follows Depictio's scanner, so existing project files find the same files.
`runs_regex` is `re.match`ed against the names of the location's immediate subfolders.
A recursive collection's pattern is `re.match`ed against the file's name, then against
its path relative to the run folder when the pattern contains a `/`.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import msgspec

from config import DataCollection, Workflow, compile_file_pattern

logger = logging.getLogger(__name__)

# Names that writers use while a file is incomplete, and editor or OS leftovers.
TEMPORARY_SUFFIXES = (".tmp", ".part", "~")


class RunFound(msgspec.Struct, kw_only=True, frozen=True):
    tag: str
    location: str
    creation_time: datetime
    last_modification_time: datetime


class FileFound(msgspec.Struct, kw_only=True, frozen=True):
    collection_id: str
    run_tag: str
    path: str
    size: int
    mtime_ns: int
    creation_time: datetime
    wildcards: dict[str, str]
    # The resolved target when the file was found as a symlink.
    link_target: str | None = None
    # Why a symlink cannot be followed (its target is gone, or it loops), or None when it can.
    broken_link: str | None = None


def timestamp(seconds: float) -> datetime:
    """Return a file time as a UTC datetime without zone, as the catalog stores times."""
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


def is_temporary(name: str) -> bool:
    """Return True for names that are never ingested: hidden files and partial writes."""
    return name.startswith(".") or name.endswith(TEMPORARY_SUFFIXES)


class IgnoreRules:
    """Files never ingested: temporary names, and the `ingest.ignore` fnmatch patterns.

    A pattern is matched against the file name and against the path relative to the run
    folder (with `/` separators), so `*.bak` skips backups anywhere and `logs/*` a folder.
    """

    def __init__(self, patterns: Sequence[str] = ()) -> None:
        self.patterns = list(patterns)

    def ignores(self, relative_path: str) -> bool:
        """Return True when the file at `relative_path` (inside its run folder) is never ingested."""
        name = relative_path.rsplit("/", 1)[-1]
        if is_temporary(name):
            return True
        return any(fnmatch.fnmatch(name, rule) or fnmatch.fnmatch(relative_path, rule) for rule in self.patterns)


def discover_runs(workflow: Workflow, warnings: list[str], missing: list[str] | None = None) -> list[RunFound]:
    """Return the workflow's runs in location order, then name order.

    Locations that are missing or not folders are appended to `missing`.
    """
    location = workflow.data_location
    pattern = re.compile(location.runs_regex) if location.runs_regex else None
    runs: list[RunFound] = []
    tags: set[str] = set()

    for folder in location.locations:
        if not os.path.isdir(folder):
            if missing is not None:
                missing.append(folder)
            continue
        for run_path in _run_folders(folder, location.structure, pattern, warnings):
            tag = os.path.basename(os.path.normpath(run_path))
            if tag in tags:
                warnings.append(
                    f"run tag {tag!r} appears in two locations of workflow {workflow.name!r}; only the first is used ({run_path!r} is skipped)"
                )
                continue
            try:
                info = os.stat(run_path)
            except OSError as error:
                warnings.append(f"run folder {run_path!r} cannot be read: {error.strerror}; skipped")
                continue
            tags.add(tag)
            runs.append(
                RunFound(
                    tag=tag,
                    location=run_path,
                    creation_time=timestamp(info.st_ctime),
                    last_modification_time=timestamp(info.st_mtime),
                )
            )
    return runs


def _run_folders(folder: str, structure: str, pattern: re.Pattern[str] | None, warnings: list[str]) -> list[str]:
    if structure == "flat":
        return [folder]
    assert pattern is not None, "config.load_project requires runs_regex for sequencing-runs"
    try:
        names = sorted(os.listdir(folder))
    except OSError as error:
        warnings.append(f"location {folder!r} cannot be listed: {error.strerror}; skipped")
        return []
    names = _skip_non_utf8(folder, names, warnings)
    runs = [
        os.path.join(folder, name)
        for name in names
        if pattern.match(name) and not name.startswith(".") and os.path.isdir(os.path.join(folder, name))
    ]
    if not runs:
        # The usual cause is a location one level too high or too low, so list what it contains.
        warnings.append(
            f"no subfolder of location {folder!r} matches runs_regex {pattern.pattern!r}; "
            f"found there: {_listing(folder, names)}"
        )
    return runs


def _listing(folder: str, names: list[str], limit: int = 10) -> str:
    """Return the first `limit` names of a folder, with `/` after subfolders, for a warning."""
    visible = [name for name in names if not name.startswith(".")]
    if not visible:
        return "nothing"
    labels = [name + "/" if os.path.isdir(os.path.join(folder, name)) else name for name in visible[:limit]]
    more = f" and {len(visible) - limit} more" if len(visible) > limit else ""
    return ", ".join(labels) + more


class CollectionMatcher:
    """Decide whether a file of a run belongs to a recursive data collection."""

    def __init__(self, collection: DataCollection) -> None:
        assert collection.id is not None and collection.config.scan is not None
        parameters = collection.config.scan.scan_parameters
        regex_config = parameters["regex_config"]
        wildcards = {item["name"]: item["wildcard_regex"] for item in regex_config.get("wildcards") or []}
        self.collection_id = collection.id
        self.pattern = compile_file_pattern(regex_config["pattern"], wildcards)
        self.path_pattern = "/" in regex_config["pattern"]
        self.max_depth: int | None = parameters.get("max_depth")
        self.ignore: list[str] = parameters.get("ignore") or []

    def match(self, relative_path: str) -> dict[str, str] | None:
        """Return the wildcard captures when the file matches, else None."""
        depth = relative_path.count("/")
        if self.max_depth is not None and depth > self.max_depth:
            return None
        name = relative_path.rsplit("/", 1)[-1]
        if any(fnmatch.fnmatch(name, rule) or fnmatch.fnmatch(relative_path, rule) for rule in self.ignore):
            return None
        found = self.pattern.match(name)
        if found is None and self.path_pattern:
            found = self.pattern.match(relative_path)
        if found is None:
            return None
        return {key: value for key, value in found.groupdict().items() if value is not None}


def is_utf8_name(name: str) -> bool:
    """Return True when a file name decodes as UTF-8; Python keeps other bytes as surrogates that no JSON can carry."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _skip_non_utf8(folder: str, names: list[str], warnings: list[str]) -> list[str]:
    kept = []
    for name in names:
        if is_utf8_name(name):
            kept.append(name)
            continue
        # The path as bytes, escaped by repr(), so the warning itself stays valid text.
        path = os.fsencode(os.path.join(folder, name))
        warnings.append(f"{path!r} is skipped: its name is not valid UTF-8; rename it to read it")
    return kept


def walk_run(
    run_location: str,
    warnings: list[str],
    ignore: IgnoreRules | None = None,
    checkpoint: Callable[[], None] | None = None,
) -> list[tuple[str, str]]:
    """Return (path relative to the run, absolute path) for every file under the run folder.

    Symlinked folders are not followed, so a link cannot pull another tree into a run.
    Files that `ignore` rejects are left out. `checkpoint` runs once for each folder and
    may raise to end the walk early.
    """
    rules = ignore if ignore is not None else IgnoreRules()
    found: list[tuple[str, str]] = []

    def report(error: OSError) -> None:
        warnings.append(f"cannot list {error.filename!r}: {error.strerror}; its files are skipped")

    for folder, subfolders, names in os.walk(run_location, onerror=report, followlinks=False):
        if checkpoint is not None:
            checkpoint()
        visible = [name for name in subfolders if not name.startswith(".")]
        subfolders[:] = sorted(_skip_non_utf8(folder, visible, warnings))
        for name in sorted(_skip_non_utf8(folder, names, warnings)):
            path = os.path.join(folder, name)
            relative_path = os.path.relpath(path, run_location).replace(os.sep, "/")
            if rules.ignores(relative_path):
                continue
            found.append((relative_path, path))
    return found
