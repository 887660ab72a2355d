"""The metrics of one app, for `GET /metrics` in the Prometheus text format.

Each app has its own registry, so apps built in one process (as in tests) never share a
counter. Three sources feed it:

- RequestMetrics, an ASGI wrapper around the whole app, counts and times every HTTP request
  by method, route template and status code. A path that no route matches counts under
  the route `unmatched`, so no raw path or id ever becomes a label.
- The ingestor's counters (ingestor.metrics): files, rows, failures, tables and scans.
- StateCollector, which reads at scrape time the readiness, the ingestor's queue depth and
  the catalog's counts and size.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import duckdb
from litestar import Litestar
from litestar.datastructures import State
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.openmetrics import exposition as openmetrics_exposition
from prometheus_client.registry import Collector

from api.readiness import not_ready_reason
from catalog import Catalog, CatalogError
from ingestor import Ingestor

logger = logging.getLogger(__name__)

# The route label of requests that no route matched (404 or 405 from the router).
UNMATCHED_ROUTE = "unmatched"
# Methods counted under their own name; any other counts as "other", so a client cannot
# add label values by sending made-up methods.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ServiceMetrics:
    """The registry of one app, with its HTTP request counter and latency histogram."""

    def __init__(self, state: State) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "depictiod_http_requests",
            "HTTP requests by method, route template and status code",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "depictiod_http_request_duration_seconds",
            "Time from the arrival of an HTTP request to the end of its response, by method and route template; "
            "an event stream counts until it closes",
            ["method", "route"],
            registry=self.registry,
        )
        self.registry.register(StateCollector(state))
        # The collectors of the default registry: open file descriptors, memory, CPU time,
        # garbage collections and the Python version.
        ProcessCollector(registry=self.registry)
        self.registry.register(GC_COLLECTOR)
        self.registry.register(PLATFORM_COLLECTOR)

    def observe_request(self, scope: Scope, status: int, seconds: float) -> None:
        method = str(scope.get("method", "GET"))
        method = method if method in _METHODS else "other"
        # Litestar sets path_template on the scope when a route matches, such as
        # /depictio/api/v1/runs/get/{run_id}.
        route = scope.get("path_template") or UNMATCHED_ROUTE
        self.requests.labels(method=method, route=route, status=str(status)).inc()
        self.request_duration.labels(method=method, route=route).observe(seconds)


class RequestMetrics:
    """ASGI wrapper of the whole app that counts and times every HTTP request.

    It wraps the app's `asgi_handler` rather than being a Litestar middleware, because
    Litestar runs middleware only for requests that match a route: a 404 for an unknown
    path or a 405 would go uncounted.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_and_record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_record_status)
        except Exception:
            # Litestar turns exceptions into responses, so this is a failure of Litestar itself.
            status = status or 500
            raise
        finally:
            # A request cancelled before its response started (the client left) has no status and is not counted.
            if status:
                self.metrics.observe_request(scope, status, time.perf_counter() - started)


class StateCollector(Collector):
    """Metrics read at scrape time from the app's catalog and ingestor.

    Before the app starts and after it stops, the catalog and the ingestor are missing
    from its state, and only the metrics that need neither are collected.
    """

    def __init__(self, state: State) -> None:
        self.state = state
        # Set while reading the catalog fails, so the failure is logged once, not at every scrape.
        self._catalog_failing = False

    def collect(self) -> Iterable[Metric]:
        catalog: Catalog | None = getattr(self.state, "catalog", None)
        ingestor: Ingestor | None = getattr(self.state, "ingestor", None)
        if catalog is None or ingestor is None:
            yield GaugeMetricFamily("depictiod_ready", _READY_HELP, value=0)
            return

        yield GaugeMetricFamily("depictiod_ready", _READY_HELP, value=int(not_ready_reason(catalog, ingestor) is None))
        depth = GaugeMetricFamily(
            "depictiod_ingest_queue_depth",
            "Work waiting for the ingestor: changed_workflows (marked changed by file events, waiting for their "
            "settle window or for the running scan) and rescan_requests (rescans clients requested)",
            labels=["queue"],
        )
        for queue, count in ingestor.pending_work.items():
            depth.add_metric([queue], count)
        yield depth
        yield from ingestor.metrics.collect()
        yield from self._catalog_metrics(catalog)

    def _catalog_metrics(self, catalog: Catalog) -> Iterable[Metric]:
        try:
            stats = catalog.stats()
        except (duckdb.Error, CatalogError) as error:
            if not self._catalog_failing:
                logger.warning(
                    "metrics of catalog %s left out of /metrics until it can be read again: %s",
                    catalog.path,
                    str(error).splitlines()[0] if str(error) else type(error).__name__,
                )
            self._catalog_failing = True
            return
        if self._catalog_failing:
            logger.info("metrics of catalog %s are back in /metrics", catalog.path)
        self._catalog_failing = False

        size = GaugeMetricFamily(
            "depictiod_catalog_size_bytes",
            "Size of the catalog's DuckDB file and of its write-ahead log",
            labels=["file"],
        )
        size.add_metric(["database"], stats.database_bytes)
        size.add_metric(["wal"], stats.wal_bytes)
        yield size
        yield GaugeMetricFamily("depictiod_catalog_runs", "Runs in the catalog", value=stats.runs)
        files = GaugeMetricFamily(
            "depictiod_catalog_files",
            "Files in the catalog by status: registered, aggregated or failed",
            labels=["status"],
        )
        for status in sorted({"registered", "aggregated", "failed", *stats.files}):
            files.add_metric([status], stats.files.get(status, 0))
        yield files
        yield GaugeMetricFamily(
            "depictiod_catalog_tables", "Tables in the catalog, of data collections and of joins", value=stats.tables
        )
        yield GaugeMetricFamily(
            "depictiod_catalog_table_rows", "Rows of all tables in the catalog", value=stats.table_rows
        )


# The only OpenMetrics version that prometheus_client 0.26.0 writes.
_OPENMETRICS_VERSION = "1.0.0"

_READY_HELP = "1 when the service is ready for traffic (as GET /health/ready responds 200), else 0"


def scrape(metrics: ServiceMetrics, accept: str) -> tuple[bytes, str]:
    """Return the registry's metrics in the format the Accept header asks for, and its content type.

    OpenMetrics 1.0.0 when a media range of the header is `application/openmetrics-text`
    with no version or version 1.0.0, else Prometheus text format 0.0.4. The header is
    parsed here because prometheus_client 0.26.0's `choose_encoder` raises TypeError on a
    version such as `abc`. No header value is rejected.
    """
    if _asks_for_openmetrics(accept):
        return openmetrics_exposition.generate_latest(metrics.registry), openmetrics_exposition.CONTENT_TYPE_LATEST
    return generate_latest(metrics.registry), CONTENT_TYPE_PLAIN_0_0_4


def _asks_for_openmetrics(accept: str) -> bool:
    """Tell whether an Accept header lists OpenMetrics in a version that this service writes (1.0.0)."""
    for media_range in accept.split(","):
        media_type, *parameters = (part.strip() for part in media_range.split(";"))
        if media_type.lower() != "application/openmetrics-text":
            continue
        versions = []
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "version":
                versions.append(value.strip().strip('"'))
        if all(version == _OPENMETRICS_VERSION for version in versions):
            return True
    return False


def wrap_app(app: Litestar, metrics: ServiceMetrics) -> None:
    """Count and time every request of a Litestar app in `metrics`."""
    app.asgi_handler = RequestMetrics(app.asgi_handler, metrics)
