"""DuckDB's memory limit, threads and spill folder, set explicitly from the [catalog] settings.

DuckDB's own default lets each database use 80% of the machine's memory. depictiod opens
two databases at once while it builds a table (the catalog, and an in-memory one that
parses workflow files), so it splits one budget between them instead.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import msgspec

from config import CatalogSettings, parse_memory_limit

logger = logging.getLogger(__name__)

# cgroup files that hold a container's memory limit (version 2, then version 1).
_CGROUP_MEMORY_FILES = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


class DuckDBLimits(msgspec.Struct, kw_only=True, frozen=True):
    """The settings given to each of the two DuckDB databases."""

    # Bytes for each database: half of the configured total.
    memory_bytes: int
    threads: int
    # The spill folder. The catalog spills into catalog/ inside it, and the file reader into reader/.
    temp_directory: str

    def catalog_config(self) -> dict[str, Any]:
        return self._config("catalog")

    def reader_config(self) -> dict[str, Any]:
        return self._config("reader")

    def _config(self, role: str) -> dict[str, Any]:
        return {
            "memory_limit": f"{max(self.memory_bytes // 1024, 1)}KiB",
            "threads": self.threads,
            "temp_directory": os.path.join(self.temp_directory, role),
        }


def resolve_limits(path: str, settings: CatalogSettings) -> DuckDBLimits:
    """Turn the [catalog] settings of the catalog at `path` into the values DuckDB takes.

    config.load_settings has checked them already.
    """
    parsed = parse_memory_limit(settings.memory_limit)
    assert parsed is not None, f"config.load_settings rejects memory_limit {settings.memory_limit!r}"
    amount, is_share = parsed
    total = amount * available_memory() if is_share else amount
    return DuckDBLimits(
        memory_bytes=int(total // 2),
        threads=settings.threads or usable_cpus(),
        temp_directory=settings.temp_directory or f"{os.path.abspath(path)}.tmp",
    )


def available_memory() -> int:
    """Return the bytes of memory this process may use: the machine's, or a container's lower limit."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in _CGROUP_MEMORY_FILES:
        try:
            with open(path, encoding="ascii") as handle:
                text = handle.read().strip()
        except OSError:
            continue
        # "max" (version 2) or a huge number (version 1) means no container limit.
        if text.isdigit():
            total = min(total, int(text))
    return total


def usable_cpus() -> int:
    """Return the CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # Not every platform has sched_getaffinity.
        return os.cpu_count() or 1
