"""Open workflow files without ever blocking on a named pipe (FIFO) that replaced a file.

A user who can write in a workflow folder can swap a registered file for a FIFO. A plain
open() of a FIFO waits for a writer that never comes, which would stop the catalog's only
writer thread and, with it, every sign-in and every ingest.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

logger = logging.getLogger(__name__)

# Seconds between two looks for FIFOs among the files of a running table build.
RELEASE_CHECK_SECONDS = 1.0


def open_regular(path: str) -> BinaryIO:
    """Open `path` for reading in binary mode; raise OSError when it is not a regular file.

    The open itself never blocks: a FIFO is opened without waiting, then refused.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a folder, a named pipe or a device)", path)
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def open_beneath(path: str, root: str) -> BinaryIO:
    """Open the regular file `path` below the folder `root` without following any symbolic link on the way.

    Each component is opened relative to its parent's descriptor with O_NOFOLLOW, so the
    file opened is the one reached from `root` through real folders. A link swapped in
    anywhere on the path fails the open (ELOOP or ENOTDIR) instead of leading elsewhere.
    `path` must be absolute, normalized and inside `root`.
    """
    relative = os.path.relpath(path, root)
    if relative == "." or relative.startswith(".." + os.sep) or relative == ".." or os.path.isabs(relative):
        raise OSError(errno.EINVAL, "not a file below its root folder", path)
    parts = relative.split(os.sep)
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
            os.close(folder)
            folder = child
        descriptor = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
    finally:
        os.close(folder)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a folder, a named pipe or a device)", path)
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


@contextmanager
def releasing_fifos(paths: list[str]) -> Iterator[None]:
    """Unblock any reader that opens one of `paths` after it became a FIFO, while the block runs.

    DuckDB opens the files of a table build by their paths. A path that turns into a FIFO
    between the checks and that open would make the build wait forever. A helper thread
    looks for FIFOs among the paths and opens each for writing, then closes it at once: the
    waiting reader sees an empty file, and the build records that file as failed.
    """
    stopping = threading.Event()

    def release() -> None:
        while not stopping.wait(RELEASE_CHECK_SECONDS):
            for path in paths:
                try:
                    if not stat.S_ISFIFO(os.stat(path).st_mode):
                        continue
                    descriptor = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                except OSError:
                    continue  # Gone, or no reader waits on it (ENXIO).
                os.close(descriptor)
                logger.warning("file %s is a named pipe, not a file; its reader was released", path)

    thread = threading.Thread(target=release, name="build-fifo-release", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopping.set()
        thread.join()
