"""Stable 24-hex ids, the ObjectId form that Depictio clients require."""

from __future__ import annotations

import hashlib
import re

OBJECT_ID = re.compile(r"^[0-9a-fA-F]{24}$")


def derive_id(kind: str, *parts: str) -> str:
    """Return a 24-hex id that depends only on `kind` and `parts`.

    The same project, workflow, collection, run or file therefore keeps its id across
    restarts and rescans without any stored counter.
    """
    text = "\x1f".join(("depictiod", kind, *parts))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def is_object_id(value: object) -> bool:
    """Return True when `value` is a 24-character hexadecimal string."""
    return isinstance(value, str) and OBJECT_ID.match(value) is not None
