"""Files of a backup: copies hashed with xxh3-128 as they are written, and flushes to disk."""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import subprocess
import sys
import threading

import msgspec
import xxhash

from catalog.safe_open import open_regular

logger = logging.getLogger(__name__)

_CHUNK_BYTES = 1 << 20
# Seconds to wait for a killed copy process to exit.
_REAP_SECONDS = 5.0

# Copies (source, target) pairs of files given as arguments, in a child process. A POSIX
# record lock belongs to a process and a file, and closing any descriptor of that file in
# the process releases it. DuckDB locks the catalog file that way, so opening and closing
# the file here would drop the lock and let a second process open the catalog for writing.
# Each target is created with O_EXCL | O_NOFOLLOW, so a symbolic link planted in the backup
# folder makes the copy fail instead of overwriting the file it points to. On failure the
# program prints one JSON object: the errno, its message and the file it concerns.
_COPY_PROGRAM = """
import json, os, sys
paths = sys.argv[1:]
CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
path = None
try:
    for source, target in zip(paths[::2], paths[1::2]):
        path = source
        reader = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
        path = target
        writer = os.open(target, CREATE, 0o600)
        os.fchmod(writer, 0o600)
        while True:
            path = source
            chunk = os.read(reader, 1 << 20)
            if not chunk:
                break
            path = target
            view = memoryview(chunk)
            while view:
                view = view[os.write(writer, view):]
        os.close(writer)
        os.close(reader)
except OSError as error:
    print(json.dumps({"errno": error.errno, "strerror": error.strerror, "path": path}))
    sys.exit(1)
"""

# Flags that create a new file of a backup: never an existing file, never through a symbolic link.
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


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

    The copy gets `mtime_ns`, or else the modification time of `source`. `target` must not
    exist, not even as a symbolic link. An OSError names the file that failed.
    """
    digest = xxhash.xxh3_128()
    size = 0
    with open_regular(source) as reader:
        info = os.fstat(reader.fileno())
        descriptor = os.open(target, CREATE_FLAGS, 0o600)
        with os.fdopen(descriptor, "wb") as writer:
            try:
                os.fchmod(descriptor, 0o600)
                while chunk := reader.read(_CHUNK_BYTES):
                    digest.update(chunk)
                    writer.write(chunk)
                    size += len(chunk)
                writer.flush()
            except OSError as error:
                # A failed write names no file; the target is the one that failed.
                if error.filename is None:
                    raise OSError(error.errno, error.strerror, target) from error
                raise
            modified = info.st_mtime_ns if mtime_ns is None else mtime_ns
            os.utime(descriptor, ns=(modified, modified))
    return BackupFile(path=name, size=size, xxh3_128=digest.hexdigest(), mtime_ns=modified)


class CopyTimeoutError(Exception):
    """Raised when the child process that copies files did not finish in time; it was killed."""


def copy_in_child(copies: list[tuple[str, str]], timeout_seconds: float) -> None:
    """Copy each (source, target) pair of files in a child process, as new files of mode 0600.

    Raise OSError, naming the file that failed, when a copy fails, and CopyTimeoutError when
    the copies take longer than `timeout_seconds`; the child is then killed.
    """
    arguments = [path for pair in copies for path in pair]
    child = subprocess.Popen(
        [sys.executable, "-I", "-c", _COPY_PROGRAM, *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        output, errors = child.communicate(timeout=timeout_seconds)
    except subprocess.TimeoutExpired:
        _kill(child)
        raise CopyTimeoutError("copying the catalog file did not finish in time") from None
    if child.returncode != 0:
        raise _copy_error(output, errors, child.returncode)


def _kill(child: subprocess.Popen[str]) -> None:
    """Kill `child` and reap it; a child stuck in the kernel (a hung NFS mount) is reaped by a thread."""
    child.kill()
    try:
        child.communicate(timeout=_REAP_SECONDS)
    except subprocess.TimeoutExpired:
        logger.warning("the backup copy process %d did not exit after SIGKILL; it is reaped when it exits", child.pid)
        threading.Thread(target=child.wait, name=f"reap-{child.pid}", daemon=True).start()


def _copy_error(output: str, errors: str, returncode: int) -> OSError:
    try:
        failure = json.loads(output)
        return OSError(int(failure["errno"]), str(failure["strerror"]), str(failure["path"]))
    except (ValueError, TypeError, KeyError):
        # The child died before it could report, for example killed by a signal.
        return OSError(f"copying the catalog file failed: {errors.strip() or f'exit status {returncode}'}")


def make_folders(root: str, relative: str) -> None:
    """Create the folders of `relative` under `root`, mode 0700; raise OSError when one is a symbolic link."""
    path = root
    for part in relative.split(os.sep):
        if part in ("", "."):
            continue
        path = os.path.join(path, part)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                raise OSError(errno.ENOTDIR, "exists and is not a folder (a symbolic link or a file)", path) from None
    # NOTE: a user who can write in the backup folder could still swap a folder checked here
    # for a symbolic link before a file is created in it. Files are created with O_EXCL, so
    # such a swap can add files elsewhere but never overwrite one.


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
