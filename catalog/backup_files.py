"""Files of a backup: copies hashed with xxh3-128 as they are written, and flushes to disk."""

from __future__ import annotations

import os
import subprocess
import sys

import msgspec
import xxhash

from catalog.safe_open import open_regular

_CHUNK_BYTES = 1 << 20

# Copies (source, target) pairs of files given as arguments, in a child process. A POSIX
# record lock belongs to a process and a file, and closing any descriptor of that file in
# the process releases it. DuckDB locks the catalog file that way, so opening and closing
# the file here would drop the lock and let a second process open the catalog for writing.
_COPY_PROGRAM = """
import shutil, sys
paths = sys.argv[1:]
try:
    for source, target in zip(paths[::2], paths[1::2]):
        shutil.copyfile(source, target)
except OSError as error:
    sys.exit(f"{error.filename}: {error.strerror}")
"""


class BackupFile(msgspec.Struct, kw_only=True, frozen=True):
    """One file of a backup."""

    # Path inside the backup folder, with "/" between folders.
    path: str
    size: int
    xxh3_128: str
    # Modification time of the file the copy was made from, in nanoseconds since the epoch;
    # a restore gives it back to uploaded files.
    mtime_ns: int


def describe_file(path: str, name: str, mtime_ns: int | None = None) -> BackupFile:
    """Return the manifest entry of the file at `path`, stored in the backup as `name`."""
    digest = xxhash.xxh3_128()
    size = 0
    with open_regular(path) as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    if mtime_ns is None:
        mtime_ns = os.stat(path).st_mtime_ns
    return BackupFile(path=name, size=size, xxh3_128=digest.hexdigest(), mtime_ns=mtime_ns)


def copy_file(source: str, target: str, name: str, mtime_ns: int | None = None) -> BackupFile:
    """Copy `source` to the new file `target` (mode 0600) and return its entry, hashed during the copy.

    The copy gets `mtime_ns`, or else the modification time of `source`.
    """
    digest = xxhash.xxh3_128()
    size = 0
    with open_regular(source) as reader:
        info = os.fstat(reader.fileno())
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(descriptor, "wb") as writer:
            while chunk := reader.read(_CHUNK_BYTES):
                digest.update(chunk)
                writer.write(chunk)
                size += len(chunk)
    modified = info.st_mtime_ns if mtime_ns is None else mtime_ns
    os.utime(target, ns=(modified, modified))
    return BackupFile(path=name, size=size, xxh3_128=digest.hexdigest(), mtime_ns=modified)


def copy_in_child(copies: list[tuple[str, str]]) -> None:
    """Copy each (source, target) pair of files in a child process; raise OSError when it fails."""
    arguments = [path for pair in copies for path in pair]
    result = subprocess.run(
        [sys.executable, "-I", "-c", _COPY_PROGRAM, *arguments], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise OSError(f"copying the catalog file failed: {result.stderr.strip() or result.returncode}")
    for _, target in copies:
        os.chmod(target, 0o600)


def sync_tree(folder: str) -> None:
    """Flush every file and folder under `folder` to disk, so a crash after the backup keeps it whole."""
    for root, _, names in os.walk(folder):
        for path in [root, *(os.path.join(root, name) for name in names)]:
            sync_path(path)


def sync_path(path: str) -> None:
    """Flush a file, or a folder's list of entries, to disk."""
    descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
