"""Time what counting and timing a request in /metrics adds to it: `python -m bench.metrics_overhead`.

An ASGI app that responds 204 at once is called directly, without a server, by itself and
inside api.metrics.RequestMetrics. The difference per request is the wrapper's cost: two
clock reads, a counter increment and a histogram observation.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from litestar.datastructures import State

from api.metrics import RequestMetrics, ServiceMetrics

_SCOPE: dict[str, Any] = {"type": "http", "method": "GET", "path": "/bench", "path_template": "/bench"}


async def _respond(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _discard(message: Any) -> None:
    return None


async def _receive() -> Any:
    return {"type": "http.request", "body": b""}


async def _seconds_per_request(app: Any, requests: int) -> float:
    started = time.perf_counter()
    for _ in range(requests):
        await app(dict(_SCOPE), _receive, _discard)
    return (time.perf_counter() - started) / requests


async def _measure(requests: int, rounds: int) -> tuple[float, float]:
    """Return the fastest of `rounds` rounds, in seconds per request, bare and wrapped."""
    wrapped = RequestMetrics(_respond, ServiceMetrics(State({})))
    bare_times = []
    wrapped_times = []
    for _ in range(rounds):
        bare_times.append(await _seconds_per_request(_respond, requests))
        wrapped_times.append(await _seconds_per_request(wrapped, requests))
    return min(bare_times), min(wrapped_times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_overhead", description=__doc__)
    parser.add_argument("--requests", type=int, default=100_000, help="requests per round (default: 100000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the fastest counts (default: 5)")
    arguments = parser.parse_args(argv)
    bare, wrapped = asyncio.run(_measure(arguments.requests, arguments.rounds))
    print(f"bare app: {bare * 1e6:.2f} us per request")
    print(f"with RequestMetrics: {wrapped * 1e6:.2f} us per request")
    print(f"added by the metrics: {(wrapped - bare) * 1e6:.2f} us per request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
