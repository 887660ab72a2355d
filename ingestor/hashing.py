"""Content hashes of workflow files."""

from __future__ import annotations

import hashlib

import xxhash

from catalog.safe_open import open_regular

_CHUNK_BYTES = 1 << 20


def content_hash(path: str) -> str:
    """Return the xxh3-128 hex digest of the file's bytes (32 hex characters).

    xxh3 runs at several GB/s, so hashing every new or changed file costs little next to
    parsing it. It detects changes but is no defence against a malicious writer.
    """
    digest = xxhash.xxh3_128()
    with open_regular(path) as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def depictio_file_hash(content_digest: str, size: int) -> str:
    """Return the 64-hex `file_hash` that Depictio clients require, derived from the content hash."""
    return hashlib.sha256(f"xxh3_128:{content_digest}:{size}".encode()).hexdigest()
