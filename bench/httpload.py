"""An asyncio load generator for what wrk cannot do: streams, an open-loop fixed rate, many slow streams.

A minimal keep-alive HTTP/1.1 client (asyncio Protocol + the httptools C parser) so that the client
costs far less CPU per request than the gateway it measures. Every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools

AUTH = "Bearer sk-bench-0001"


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)   # seconds, successful requests only
    errors: int = 0
    first_error: str = ""
    elapsed: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)
    timeline: list[tuple[float, float]] = field(default_factory=list)   # (scheduled start, latency)

    def error(self, text: str) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = text[:300]

    def summary(self) -> dict[str, float | str]:
        ordered = sorted(self.latencies)
        n = len(ordered)

        def pct(p: float) -> float:
            return ordered[min(n - 1, int(n * p))] * 1000 if n else float("nan")
        out: dict[str, float | str] = {
            "requests": n, "errors": self.errors, "rps": n / self.elapsed if self.elapsed else 0.0,
            "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99), **self.extra}
        if self.first_error:
            out["first_error"] = self.first_error
        return out


class Request:
    """One prebuilt POST: the same bytes are written for every request."""

    def __init__(self, url: str, body: bytes, extra_headers: dict[str, str] | None = None) -> None:
        u = urlsplit(url)
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or 80
        headers = {"Host": f"{self.host}:{self.port}", "Authorization": AUTH,
                   "Content-Type": "application/json", "Content-Length": str(len(body)),
                   **(extra_headers or {})}
        head = f"POST {u.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        self.payload = head.encode() + body


class Response:
    __slots__ = ("status", "size", "events", "head")

    def __init__(self, status: int, size: int, events: int, head: bytes) -> None:
        self.status = status
        self.size = size        # body bytes
        self.events = events    # SSE "data:" lines seen (a line split across reads may be missed)
        self.head = head        # first bytes of the body, for error messages


class Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Response] | None = None
        self.size = 0
        self.events = 0
        self.head = b""
        self.open = False

    @classmethod
    async def connect(cls, host: str, port: int) -> Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(cls, host, port)
        return conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.open = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection closed mid-response ({exc})"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(ConnectionError(f"bad HTTP response: {exc}"))
            self.close()

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        self.events += body.count(b"data:")
        if len(self.head) < 300:
            self.head += body[:300]

    def on_message_complete(self) -> None:
        if not self.parser.should_keep_alive():
            self.close()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(Response(self.parser.get_status_code(), self.size, self.events, self.head))

    def request(self, req: Request) -> asyncio.Future[Response]:
        self.size = self.events = 0
        self.head = b""
        self.waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(req.payload)
        return self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.open = False


Check = Callable[[Response], str | None]   # returns an error text or None


def expect_ok(min_events: int = 0) -> Check:
    def check(resp: Response) -> str | None:
        if resp.status != 200:
            return f"HTTP {resp.status}: {resp.head[:300]!r}"
        if resp.events < min_events:
            return f"stream had {resp.events} data lines, expected >= {min_events}: {resp.head[:200]!r}"
        return None
    return check


async def _one(conn: Connection, req: Request, check: Check, timeout: float) -> str | None:
    try:
        resp = await asyncio.wait_for(conn.request(req), timeout)
    except (TimeoutError, ConnectionError, OSError) as exc:
        conn.close()
        return f"{type(exc).__name__}: {exc}"
    return check(resp)


async def closed_loop(req: Request, concurrency: int, seconds: float, max_requests: int, check: Check,
                      timeout: float = 30.0) -> Result:
    """`concurrency` workers, back to back, until `seconds` pass or `max_requests` are sent."""
    result = Result()
    sent = 0
    deadline = 0.0

    async def worker() -> None:
        nonlocal sent
        conn: Connection | None = None
        while sent < max_requests and time.perf_counter() < deadline:
            sent += 1
            if conn is None or not conn.open:
                try:
                    conn = await Connection.connect(req.host, req.port)
                except OSError as exc:
                    result.error(f"connect: {exc}")
                    await asyncio.sleep(0.1)
                    continue
            t0 = time.perf_counter()
            err = await _one(conn, req, check, timeout)
            if err:
                result.error(err)
                if result.errors > max(20, sent // 10):
                    return
            else:
                result.latencies.append(time.perf_counter() - t0)
        if conn is not None:
            conn.close()

    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), seconds + timeout + 5)
    result.elapsed = time.perf_counter() - start
    return result


async def open_loop(req: Request, rate: float, seconds: float, check: Check, timeout: float = 30.0,
                    max_connections: int = 1024) -> Result:
    """Requests start on a fixed schedule (rate per second) whatever the answers do; latency counts
    from the scheduled start, so a stalled gateway is charged for the queue it causes."""
    result = Result()
    idle: deque[Connection] = deque()
    for _ in range(min(64, max_connections)):
        idle.append(await Connection.connect(req.host, req.port))
    opened = len(idle)
    late = 0
    tasks: set[asyncio.Task[None]] = set()

    async def one(scheduled: float) -> None:
        nonlocal opened
        conn = None
        while idle:
            conn = idle.pop()
            if conn.open:
                break
            conn = None
        if conn is None:
            opened += 1
            try:
                conn = await Connection.connect(req.host, req.port)
            except OSError as exc:
                result.error(f"connect: {exc}")
                return
        err = await _one(conn, req, check, timeout)
        if err:
            result.error(err)
        else:
            latency = time.perf_counter() - scheduled
            result.latencies.append(latency)
            result.timeline.append((scheduled, latency))
        if conn.open:
            idle.append(conn)

    total = int(rate * seconds)
    start = time.perf_counter()
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.005:
            late += 1
        if len(tasks) >= max_connections:   # the gateway has fallen far behind: stop adding load
            result.error(f"more than {max_connections} requests in flight; stopped at {i}/{total}")
            break
        task = asyncio.create_task(one(scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=timeout + 5)
    result.elapsed = time.perf_counter() - start
    for conn in idle:
        conn.close()
    result.extra.update({"rate": rate, "late_sends": late, "connections": opened})
    return result


async def many_streams(req: Request, count: int, ramp_seconds: float, check: Check,
                       sample: Callable[[], int], timeout: float = 60.0) -> Result:
    """`count` streams started over `ramp_seconds`, each on its own connection; `sample()` (e.g. the
    gateway's RSS in kB) is polled every 50 ms while they run. Reports the most streams in flight."""
    result = Result()
    in_flight = 0
    most = 0
    peak_sample = 0
    done = asyncio.Event()
    finished = 0

    async def one(delay: float) -> None:
        nonlocal in_flight, most, finished
        await asyncio.sleep(delay)
        t0 = time.perf_counter()
        try:
            conn = await Connection.connect(req.host, req.port)
        except OSError as exc:
            result.error(f"connect: {exc}")
        else:
            in_flight += 1
            most = max(most, in_flight)
            err = await _one(conn, req, check, timeout)
            in_flight -= 1
            conn.close()
            if err:
                result.error(err)
            else:
                result.latencies.append(time.perf_counter() - t0)
        finished += 1
        if finished == count:
            done.set()

    start = time.perf_counter()
    tasks = [asyncio.create_task(one(ramp_seconds * i / count)) for i in range(count)]
    deadline = start + ramp_seconds + timeout + 5
    while not done.is_set() and time.perf_counter() < deadline:
        peak_sample = max(peak_sample, sample())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 0.05)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    result.elapsed = time.perf_counter() - start
    result.extra.update({"max_in_flight": most, "peak_sample_kb": peak_sample})
    return result
