"""A load client: concurrent keep-alive HTTP/1.1 connections that send GET requests for a fixed time.

It writes requests and reads responses on asyncio streams, without an HTTP library, so
that the client spends as little of the machine's CPU as it can and both servers that
it compares get the same client.
"""

from __future__ import annotations

import asyncio
import time

import msgspec

from bench.timing import percentile


class LoadFigures(msgspec.Struct, kw_only=True, frozen=True):
    requests: int
    # Responses with a status other than 200.
    errors: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float


def run_load(port: int, paths: list[str], token: str, clients: int, seconds: float) -> LoadFigures:
    """Send GET requests for `paths` in turn from `clients` connections to 127.0.0.1:`port` for `seconds`."""
    requests = [
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"
        ).encode("ascii")
        for path in paths
    ]
    return asyncio.run(_load(port, requests, clients, seconds))


async def _load(port: int, requests: list[bytes], clients: int, seconds: float) -> LoadFigures:
    latencies: list[float] = []
    statuses: list[int] = []
    started = time.perf_counter()
    deadline = started + seconds

    async def client(offset: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            index = offset
            while time.perf_counter() < deadline:
                request = requests[index % len(requests)]
                index += 1
                sent = time.perf_counter()
                writer.write(request)
                statuses.append(await read_response(reader))
                latencies.append(time.perf_counter() - sent)
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(client(offset) for offset in range(clients)))
    elapsed = time.perf_counter() - started
    return LoadFigures(
        requests=len(latencies),
        errors=sum(1 for status in statuses if status != 200),
        requests_per_second=len(latencies) / elapsed,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
    )


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one response, with a Content-Length or chunked body; return its status code."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
        return status
    if headers.get("transfer-encoding", "").lower() != "chunked":
        raise ValueError(f"a response with status {status} has neither Content-Length nor a chunked body")
    while True:
        size = int((await reader.readline()).split(b";")[0].strip(), 16)
        if size == 0:
            await reader.readline()
            return status
        await reader.readexactly(size + 2)
