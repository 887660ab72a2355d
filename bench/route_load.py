"""A load client over many routes that counts every kind of error: status, connection failure and timeout.

Like bench.load, each client is one keep-alive HTTP/1.1 connection on asyncio streams.
Unlike it, a client survives a failed request: it counts the failure, opens a new
connection and goes on, so that one broken connection does not end the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter

import msgspec

from bench.load import read_response
from bench.timing import percentile

# Seconds a request may take from its first byte sent to its last byte read; a slower one counts as a timeout.
REQUEST_TIMEOUT_SECONDS = 10.0
# Seconds a client waits before it opens a new connection after a failure.
_RECONNECT_SECONDS = 0.1


class RouteFigures(msgspec.Struct, kw_only=True, frozen=True):
    """Requests and latency of one route, with the count of each status code."""

    route: str
    requests: int
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]


class RouteLoad(msgspec.Struct, kw_only=True, frozen=True):
    """The figures of one load run over every route."""

    clients: int
    seconds: float
    requests: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    # Responses with a status other than 200.
    bad_statuses: int
    # Connections that could not be opened, or that broke during a request.
    connection_failures: int
    timeouts: int
    routes: list[RouteFigures]

    @property
    def errors(self) -> int:
        return self.bad_statuses + self.connection_failures + self.timeouts


class _Tally:
    """Latencies and status counts by route, as the clients measure them, and the failures."""

    def __init__(self, timeout_seconds: float) -> None:
        self.timeout_seconds = timeout_seconds
        self.latencies: dict[str, list[float]] = {}
        self.statuses: dict[str, Counter[int]] = {}
        self.connection_failures = 0
        self.timeouts = 0

    def record(self, route: str, status: int, seconds: float) -> None:
        self.latencies.setdefault(route, []).append(seconds)
        self.statuses.setdefault(route, Counter())[status] += 1


def run_route_load(
    port: int,
    routes: dict[str, list[str]],
    token: str,
    clients: int,
    seconds: float,
    timeout_seconds: float = REQUEST_TIMEOUT_SECONDS,
) -> RouteLoad:
    """Send GET requests to 127.0.0.1:`port` from `clients` connections for `seconds`.

    `routes` maps a route name to the paths that stand for it, and each client sends the
    paths of every route in turn, from its own offset in that list. A request that takes
    longer than `timeout_seconds` counts as a timeout.
    """
    requests = [(route, _request_bytes(port, path, token)) for route, paths in routes.items() for path in paths]
    return asyncio.run(_load(port, requests, clients, seconds, timeout_seconds))


def _request_bytes(port: int, path: str, token: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"
    ).encode("ascii")


async def _load(
    port: int, requests: list[tuple[str, bytes]], clients: int, seconds: float, timeout_seconds: float
) -> RouteLoad:
    tally = _Tally(timeout_seconds)
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(_client(port, requests, offset, deadline, tally) for offset in range(clients)))
    elapsed = time.perf_counter() - started
    everything = [latency for latencies in tally.latencies.values() for latency in latencies]
    routes = [
        RouteFigures(
            route=route,
            requests=len(latencies),
            p50_ms=percentile(latencies, 0.50) * 1000,
            p99_ms=percentile(latencies, 0.99) * 1000,
            statuses=dict(sorted(tally.statuses[route].items())),
        )
        for route, latencies in tally.latencies.items()
    ]
    return RouteLoad(
        clients=clients,
        seconds=elapsed,
        requests=len(everything),
        requests_per_second=len(everything) / elapsed,
        p50_ms=percentile(everything, 0.50) * 1000 if everything else 0.0,
        p99_ms=percentile(everything, 0.99) * 1000 if everything else 0.0,
        max_ms=max(everything, default=0.0) * 1000,
        bad_statuses=sum(
            count for statuses in tally.statuses.values() for status, count in statuses.items() if status != 200
        ),
        connection_failures=tally.connection_failures,
        timeouts=tally.timeouts,
        routes=routes,
    )


async def _client(port: int, requests: list[tuple[str, bytes]], offset: int, deadline: float, tally: _Tally) -> None:
    index = offset
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    try:
        while time.perf_counter() < deadline:
            if connection is None:
                try:
                    connection = await asyncio.wait_for(
                        asyncio.open_connection("127.0.0.1", port), tally.timeout_seconds
                    )
                except (OSError, TimeoutError):
                    tally.connection_failures += 1
                    await asyncio.sleep(_RECONNECT_SECONDS)
                    continue
            route, request = requests[index % len(requests)]
            index += 1
            reader, writer = connection
            sent = time.perf_counter()
            try:
                writer.write(request)
                status = await asyncio.wait_for(read_response(reader), tally.timeout_seconds)
            except TimeoutError:
                tally.timeouts += 1
                await _close(writer)
                connection = None
                continue
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                # A reset, a connection closed mid-response, or a response that is not valid HTTP.
                tally.connection_failures += 1
                await _close(writer)
                connection = None
                continue
            tally.record(route, status, time.perf_counter() - sent)
    finally:
        if connection is not None:
            await _close(connection[1])


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    # A reset connection raises here, and it is gone either way.
    with contextlib.suppress(OSError):
        await writer.wait_closed()
