"""Real write faults for tests, made with a file size limit that needs no privileges."""

from __future__ import annotations

import resource
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def file_size_limit(max_bytes: int) -> Iterator[None]:
    """Make writes of this process past `max_bytes` of any regular file fail with EFBIG until the block ends.

    The limit is RLIMIT_FSIZE, so it covers every thread, including pytest's capture files.
    Python ignores SIGXFSZ, so a write past the limit fails with "File too large" instead of
    ending the process. Pipes and sockets have no such limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
