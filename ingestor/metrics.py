"""Counters of what the ingestor did, for `GET /metrics` in the Prometheus text format.

Each Ingestor owns one IngestMetrics registered in no registry, so two services in one
process (as in tests) count apart. The API's registry collects them through `collect()`.
They are updated once per workflow scan and once per table build, never per file or row.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from catalog import FAILURE_REASONS
from ingestor.aggregate import CollectionAggregate

# Upper bounds, in seconds, of the scan duration buckets: from a quiet rescan of a few files
# to a start-up scan of a large tree.
SCAN_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0)
# Scan outcomes: finished, timed_out (stopped at ingest.reconcile_deadline_seconds),
# stopped (the service was stopping) or error (an exception, logged where it is caught).
SCAN_OUTCOMES = ("finished", "timed_out", "stopped", "error")
# The outcome of a table build, as CollectionAggregate words it, and the build mode it counts as.
_BUILD_MODES = {"built": "rebuild", "updated": "update"}


class IngestMetrics(Collector):
    """The ingestor's counters and its scan duration histogram."""

    def __init__(self) -> None:
        self.files_ingested = Counter(
            "depictiod_files_ingested",
            "Files read into a table; a table rebuilt from scratch reads, and counts, all its files again",
            registry=None,
        )
        self.rows_ingested = Counter(
            "depictiod_rows_ingested", "Rows read from files into tables, by the same reads", registry=None
        )
        self.file_failures = Counter(
            "depictiod_file_failures",
            "Files recorded as failed, by reason class: empty, link, missing, permission, io or format",
            ["reason"],
            registry=None,
        )
        self.tables_built = Counter(
            "depictiod_tables_built",
            "Tables written, by kind (collection or join) and mode (rebuild, or update of the changed files' rows)",
            ["kind", "mode"],
            registry=None,
        )
        self.table_build_errors = Counter(
            "depictiod_table_build_errors",
            "Table builds that raised, by kind (collection or join); the previous table is kept",
            ["kind"],
            registry=None,
        )
        self.scans = Counter(
            "depictiod_scans",
            "Workflow scans, each with the aggregation of its collections, by trigger and outcome",
            ["trigger", "outcome"],
            registry=None,
        )
        self.scan_duration = Histogram(
            "depictiod_scan_duration_seconds",
            "Duration of workflow scans, each with the aggregation of its collections, by trigger",
            ["trigger"],
            buckets=SCAN_BUCKETS,
            registry=None,
        )
        # Every reason class is shown from the start, at 0, so a rate over it has a first sample.
        for reason in FAILURE_REASONS:
            self.file_failures.labels(reason=reason)

    def record_scan(self, trigger: str, outcome: str, seconds: float) -> None:
        """Count one workflow scan and its duration."""
        self.scans.labels(trigger=trigger, outcome=outcome).inc()
        self.scan_duration.labels(trigger=trigger).observe(seconds)

    def record_failures(self, failures: dict[str, int]) -> None:
        """Count failed files by reason class."""
        for reason, count in failures.items():
            self.file_failures.labels(reason=reason).inc(count)

    def record_aggregate(self, aggregate: CollectionAggregate, kind: str) -> None:
        """Count the files, rows and failures of one table build of a collection or a join."""
        mode = _BUILD_MODES.get(aggregate.outcome)
        if mode is not None:
            self.tables_built.labels(kind=kind, mode=mode).inc()
        if aggregate.outcome == "error":
            self.table_build_errors.labels(kind=kind).inc()
        self.files_ingested.inc(aggregate.files_aggregated)
        self.rows_ingested.inc(aggregate.rows_read)
        self.record_failures(aggregate.failures)

    def collect(self) -> Iterable[Metric]:
        for metric in (
            self.files_ingested,
            self.rows_ingested,
            self.file_failures,
            self.tables_built,
            self.table_build_errors,
            self.scans,
            self.scan_duration,
        ):
            yield from metric.collect()
