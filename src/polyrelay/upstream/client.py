"""A lean keep-alive HTTP/1.1 client for upstream calls: an asyncio Protocol on the httptools parser.

aiohttp's client was ~40% of the gateway's CPU per request in the profile (docs/benchmarks.md).
This one does only what relaying needs: POST a body, learn the status, read the body whole or as it
comes, keep connections alive per origin, time out, and go through an HTTP proxy when a channel has
one (CONNECT tunnels for https, absolute-form requests for http). No cookies or redirects.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import time
import zlib
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote, urlsplit

import httptools

_HIGH_WATER = 1 << 20   # buffered body bytes at which reading from the socket pauses
_INFLATE_STEP = 1 << 18   # most bytes one decompress call may produce: a gzip bomb never materialises
# The largest non-stream answer (after decompression) read from an upstream; more is a failed call.
MAX_RESPONSE_BYTES = int(os.environ.get("POLYRELAY_MAX_RESPONSE_MB", "64")) * 1024 * 1024
ERROR_BODY_BYTES = 64 * 1024   # of an upstream's error answer, only this much is read (for its message)
# A request body in parts (a multipart upload with one part re-emitted) is written in slices of this
# size, each when the socket has taken the last: the transport never holds a copy of the whole body.
_WRITE_STEP = 1 << 18
Body = bytes | tuple[bytes | memoryview, ...]


class UpstreamTransportError(OSError):
    """The connection failed, closed before the response was complete, or carried bad HTTP."""


class UpstreamTooLarge(UpstreamTransportError):
    """The answer (decompressed) is larger than the limit the caller read it with."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"upstream answer is larger than {limit // (1024 * 1024) or limit} "
                         f"{'MB' if limit >= 1024 * 1024 else 'bytes'}")
        self.limit = limit


def _fresh(exc: BaseException) -> BaseException:
    """A new instance of a stored error to raise: raising the stored one would tie its traceback
    (frames, their locals: request and response bodies) to the connection in a reference cycle."""
    if isinstance(exc, UpstreamTooLarge):
        return UpstreamTooLarge(exc.limit)
    return type(exc)(*exc.args)


class UpstreamTimeout(asyncio.TimeoutError):
    """Connecting, waiting for the next bytes, or the whole response took too long."""


TRANSPORT_ERRORS = (OSError, asyncio.TimeoutError)


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float
    read: float            # longest wait for the next bytes: the headers or more of the body
    total: float | None    # the whole response; None for streams


Origin = tuple[str, str, int]   # scheme, host, port
PoolKey = tuple[Origin, str | None]   # an origin, reached directly or through a proxy


@dataclass(frozen=True, slots=True)
class Proxy:
    """An HTTP proxy: where it listens and the Proxy-Authorization header line it needs, if any."""
    host: str
    port: int
    auth_line: bytes

    @staticmethod
    @lru_cache(maxsize=64)
    def parse(url: str) -> Proxy:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise UpstreamTransportError(f"unsupported proxy URL scheme {parts.scheme!r} (http:// only)")
        auth = b""
        if parts.username is not None:
            token = base64.b64encode(f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode())
            auth = b"Proxy-Authorization: Basic " + token + b"\r\n"
        return Proxy(parts.hostname, parts.port or 80, auth)


@lru_cache(maxsize=1024)
def _target(url: str) -> tuple[Origin, bytes]:
    """The origin to connect to and the request line + Host header for `url`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UpstreamTransportError(f"unsupported upstream URL scheme {parts.scheme!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.netloc.rpartition("@")[2]
    return (parts.scheme, parts.hostname, port), f"POST {path} HTTP/1.1\r\nHost: {host}\r\n".encode()


class _NoParser:
    """Stands in for the parser of a lost connection (nothing more is parsed; see connection_lost)."""

    @staticmethod
    def feed_data(data: bytes) -> None:
        pass

    @staticmethod
    def should_keep_alive() -> bool:
        return False

    @staticmethod
    def get_status_code() -> int:   # (httptools calls back only from a live parser's feed_data)
        return 0


_CLOSED_PARSER = _NoParser()


class _Connection(asyncio.Protocol):
    """One upstream connection and the response being read on it."""

    def __init__(self, client: UpstreamClient, pool: PoolKey) -> None:
        self.client = client
        self.pool = pool
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser: httptools.HttpResponseParser | _NoParser = httptools.HttpResponseParser(self)
        self.closed = False
        self.in_use = True           # False while it waits in the pool: no bytes are expected then
        self.idle_since = 0.0
        self.write_paused = False    # the transport's flow control (pause_writing / resume_writing)
        self.begin(None)

    def begin(self, timeouts: Timeouts | None) -> None:
        """Reset for a new request on this connection."""
        self.in_use = True
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.framed = False          # Content-Length or chunked: the body's end is in the framing
        self.got_bytes = False
        self.paused = False
        self.body_cut = False        # the request body was not sent whole (an early answer): never reused
        self.unbounded = False       # read whole: do not pause reading at the high-water mark
        self.decoder: zlib._Decompress | None = None
        self.tail = b""              # compressed bytes not inflated yet (held while the reader catches up)
        self.limit: int | None = None   # most body bytes (decompressed) this response may have
        self.received = 0            # body bytes (decompressed) so far
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.read_timeout = timeouts.read if timeouts else 0.0
        self.total_timer = (self.loop.call_later(timeouts.total, self._timed_out, "the response")
                            if timeouts and timeouts.total else None)

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake()

    async def send_parts(self, head: bytes, parts: tuple[bytes | memoryview, ...]) -> None:
        """Write `parts` slice by slice as the socket drains; stop early if the answer (an early
        refusal) or an error comes first."""
        transport = self.transport
        assert transport is not None, "sending on a connection that is not made"
        transport.write(head)
        for part in parts:
            view = memoryview(part)
            for start in range(0, len(view), _WRITE_STEP):
                while self.write_paused and not self.headers_done:
                    await self.wait()
                if self.headers_done:
                    self.body_cut = True
                    return
                transport.write(view[start:start + _WRITE_STEP])

    def data_received(self, data: bytes) -> None:
        if not self.in_use:   # an idle connection has nothing to say: these bytes would corrupt the next answer
            self.abort()
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(UpstreamTransportError(f"bad HTTP from upstream: {exc!r}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.client.forget(self)
        # The parser holds this connection's bound callbacks: a reference cycle that would keep a
        # closed connection and its buffers until a full collection (rare in the gateway). Nothing
        # is parsed after the connection is lost.
        self.parser = _CLOSED_PARSER
        if self.headers_done and not self.complete and not self.framed and exc is None and self.error is None:
            self.complete = True   # a body delimited by the connection's close
            if self.decoder is not None:
                self._inflate()
            self._wake()
        elif not self.complete:
            self.error = self.error or UpstreamTransportError("upstream closed the connection early")
            self._wake()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        if self.complete:   # a second answer to one request: nothing after it can be trusted
            self._fail(UpstreamTransportError("upstream sent more than one answer to one request"))
            return
        status = self.parser.get_status_code()
        if status < 200:   # an informational response (100, 103): the real one follows
            self.headers = []
            return
        self.status = status
        for name, value in self.headers:
            if name == b"content-length" or (name == b"transfer-encoding" and b"chunked" in value.lower()):
                self.framed = True
            elif name == b"content-encoding" and value.lower() in (b"gzip", b"deflate", b"x-gzip"):
                self.decoder = zlib.decompressobj(47)   # 47: gzip or zlib header, detected
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.error is not None:
            return
        if self.decoder is not None:
            self.tail = self.tail + body if self.tail else body
            self._inflate()
        elif body:
            self._accept(body)

    def _accept(self, body: bytes) -> None:
        self.received += len(body)
        if self.limit is not None and self.received > self.limit:
            self._fail(UpstreamTooLarge(self.limit))
            return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.unbounded and not self.paused and self.transport:
            self.transport.pause_reading()
            self.paused = True
        self._wake()

    def _inflate(self) -> None:
        """Inflate held compressed bytes in bounded steps, only while the reader keeps up (or up to
        the limit when reading whole): 1 MB of gzip can say 1 GB, which must never be made at once."""
        decoder = self.decoder
        assert decoder is not None
        while self.tail and (self.unbounded or self.buffered < _HIGH_WATER) and self.error is None:
            try:
                out = decoder.decompress(self.tail, _INFLATE_STEP)
            except zlib.error:
                self._fail(UpstreamTransportError("upstream sent a corrupt compressed body"))
                return
            self.tail = decoder.unconsumed_tail
            if out:
                self._accept(out)
            elif decoder.eof:
                self.tail = b""   # bytes after the end of the compressed stream: ignored, as before
        if self.error is not None:
            return
        if self.tail:
            if not self.paused and not self.closed and self.transport is not None:
                self.transport.pause_reading()
                self.paused = True
        elif self.complete:
            self.decoder = None
            rest = decoder.flush()
            if rest:
                self._accept(rest)

    def on_message_complete(self) -> None:
        if not self.headers_done:   # the end of an informational response
            return
        self.keep_alive = self.parser.should_keep_alive()
        self.complete = True
        if self.decoder is not None:
            self._inflate()
        self._wake()

    @property
    def body_done(self) -> bool:
        """Every body byte is in `chunks` (nothing left to receive or to inflate)."""
        return self.complete and not self.tail

    # waiting
    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.chunks.clear()   # a failed response is not read further: let its buffers go now
        self.buffered, self.tail = 0, b""
        self.abort()
        self._wake()

    def _timed_out(self, what: str) -> None:
        if not self.complete:
            self._fail(UpstreamTimeout(f"upstream timed out waiting for {what}"))

    async def wait(self) -> None:
        """Until something new arrives (headers, body bytes, the end, an error) or the read timeout."""
        if self.error is not None:
            raise _fresh(self.error)
        self.waiter = waiter = self.loop.create_future()
        timer = self.loop.call_later(self.read_timeout, self._timed_out, "the next bytes")
        try:
            await waiter
        finally:
            timer.cancel()
            self.waiter = None
        if self.error is not None:
            raise _fresh(self.error)

    def take(self) -> bytes:
        """Every buffered body byte, joined."""
        chunks = self.chunks
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.buffered = 0
        self.resume()
        return data

    def resume(self) -> None:
        """Read from the socket again if the high-water mark had paused it (first inflating what
        compressed bytes are held, if any: the socket stays paused while some are)."""
        if self.tail:
            self._inflate()
            if self.tail or self.error is not None:
                return
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def finish(self) -> None:
        """The caller is done with the response: keep the connection for the next request or close it."""
        unsent = self.transport.get_write_buffer_size() if self.transport is not None else 0
        if (self.complete and self.keep_alive and self.error is None and not self.closed and not unsent
                and not self.body_cut):
            # (an early answer, e.g. a 401 before the whole body was sent, leaves the rest of the body
            # queued: the next request would be written behind it, so such a connection is closed)
            self._stop_total_timer()
            self.in_use = False
            self.resume()
            self.client.keep(self)
        else:
            self.abort()

    def _stop_total_timer(self) -> None:
        if self.total_timer is not None:
            self.total_timer.cancel()
            self.total_timer = None

    def abort(self) -> None:
        self._stop_total_timer()
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.abort()


class UpstreamResponse:
    """A 1xx-free response whose headers have arrived; its body is read with `read` or `readany`."""

    __slots__ = ("status", "_conn", "_released")

    def __init__(self, conn: _Connection) -> None:
        self.status = conn.status
        self._conn = conn
        self._released = False

    def header(self, name: bytes) -> bytes | None:
        for key, value in self._conn.headers:
            if key == name:
                return value
        return None

    async def readany(self) -> bytes:
        """The body bytes that have arrived (waiting for some), or b"" at its end."""
        conn = self._conn
        while True:
            if conn.chunks:
                return conn.take()
            if conn.complete and not conn.tail:
                return b""
            if conn.tail:
                conn.resume()
                if conn.chunks:
                    continue
            await conn.wait()

    async def read(self, limit: int = MAX_RESPONSE_BYTES) -> bytes:
        """The whole body, at most `limit` bytes (decompressed; more raises UpstreamTooLarge and
        closes the connection); the connection is released afterwards."""
        conn = self._conn
        try:
            conn.limit = limit
            if conn.received > limit:
                raise UpstreamTooLarge(limit)
            conn.unbounded = True
            conn.resume()
            while not conn.body_done:
                await conn.wait()
            return conn.take() if conn.chunks else b""
        finally:
            self.release()

    async def read_head(self, size: int = ERROR_BODY_BYTES) -> bytes:
        """The first `size` body bytes (all of a shorter body), without reading the rest: a body
        left unread closes the connection. For error answers, of which only the message matters."""
        conn = self._conn
        try:
            while conn.buffered < size and not conn.body_done:
                conn.resume()
                if conn.buffered < size and not conn.body_done:
                    await conn.wait()
            data = conn.take() if conn.chunks else b""
            return data[:size]
        finally:
            self.release()

    def fail(self, exc: BaseException) -> None:
        """End the response with `exc` (a pending or later read raises it); the connection closes."""
        self._conn._fail(exc)

    def release(self) -> None:
        """Done with this response: a completely read one keeps its connection, any other closes it.
        Only the first call counts (a connection must not go back to the pool twice)."""
        if not self._released:
            self._released = True
            self._conn.finish()

    close = release


class UpstreamClient:
    """Connections to upstreams, kept alive per origin and shared by every request of the process."""

    def __init__(self, idle_timeout: float = 30.0, max_idle_per_origin: int = 256,
                 tls: ssl.SSLContext | None = None) -> None:
        self._idle: dict[PoolKey, list[_Connection]] = {}
        self._idle_timeout = idle_timeout
        self._max_idle = max_idle_per_origin
        self._ssl = tls   # None: the system's trusted CAs, made on first use

    async def post(self, url: str, headers: dict[str, str], body: Body, timeouts: Timeouts,
                   proxy: str | None = None, method: bytes = b"POST") -> UpstreamResponse:
        """Send one POST (or `method`: GET and DELETE of job APIs) and wait for the response's
        status and headers. A body in parts is sent as the socket takes it
        (`_Connection.send_parts`), never joined."""
        try:
            origin, request_line = _target(url)
            if method != b"POST":
                request_line = method + request_line[4:]
            if proxy is not None and origin[0] == "http":   # a plain-http proxy takes the absolute URL
                request_line = method + b" " + url.encode() + request_line[request_line.index(b" HTTP/1.1"):] + \
                    Proxy.parse(proxy).auth_line
        except ValueError as exc:   # a bad port or host in a channel's URL or proxy
            raise UpstreamTransportError(f"bad upstream or proxy URL: {exc}") from None
        head = request_line + "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode() + \
            b"Content-Length: %d\r\n\r\n" % (len(body) if isinstance(body, bytes) else sum(map(len, body)))
        pool = (origin, proxy)
        retried = False
        while True:
            conn = None if retried else self._reuse(pool)
            reused = conn is not None
            if conn is None:
                conn = await self._connect(pool, timeouts.connect)
            conn.begin(timeouts)
            try:
                if not isinstance(body, bytes):
                    await conn.send_parts(head, body)
                elif len(body) < 65536:
                    conn.transport.write(head + body)  # type: ignore[union-attr]
                else:
                    conn.transport.writelines((head, body))  # type: ignore[union-attr]
                while not conn.headers_done:
                    await conn.wait()
            except UpstreamTransportError:
                conn.abort()
                if reused and not conn.got_bytes:
                    retried = True   # the upstream had closed this idle connection: once more, on a new one
                    continue
                raise
            except BaseException:
                conn.abort()
                raise
            return UpstreamResponse(conn)

    def _reuse(self, pool: PoolKey) -> _Connection | None:
        idle = self._idle.get(pool)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self._idle_timeout:
                return conn
            conn.abort()
        return None

    async def _connect(self, pool: PoolKey, timeout: float) -> _Connection:
        (scheme, host, port), proxy_url = pool
        loop = asyncio.get_running_loop()
        tls = self._tls() if scheme == "https" else None
        proxy = Proxy.parse(proxy_url) if proxy_url else None
        where = f"{host}:{port}" + (f" through proxy {proxy.host}:{proxy.port}" if proxy else "")
        try:
            async with asyncio.timeout(timeout):
                if proxy is None:
                    _, conn = await loop.create_connection(lambda: _Connection(self, pool), host, port,
                                                           ssl=tls, server_hostname=host if tls else None)
                else:
                    _, conn = await loop.create_connection(lambda: _Connection(self, pool), proxy.host, proxy.port)
                    if tls is not None:
                        await self._tunnel(conn, proxy, host, port, tls)
        except TimeoutError:
            raise UpstreamTimeout(f"connecting to {where} timed out") from None
        except (OSError, ValueError) as exc:   # ValueError: UnicodeError of a bad host name, bad ports
            reason = getattr(exc, "strerror", None) or exc
            raise UpstreamTransportError(f"cannot connect to {where}: {reason}") from None
        return conn

    @staticmethod
    async def _tunnel(conn: _Connection, proxy: Proxy, host: str, port: int, tls: ssl.SSLContext) -> None:
        """CONNECT through the proxy, then TLS with the origin inside the tunnel."""
        conn.begin(Timeouts(connect=0, read=60.0, total=None))   # the caller's timeout bounds it all
        authority = (f"[{host}]:{port}" if ":" in host else f"{host}:{port}").encode()
        conn.transport.write(b"CONNECT " + authority + b" HTTP/1.1\r\nHost: " + authority + b"\r\n" +  # type: ignore[union-attr]
                             proxy.auth_line + b"\r\n")
        try:
            while not conn.headers_done:
                await conn.wait()
        except BaseException:
            conn.abort()
            raise
        if not 200 <= conn.status < 300:
            conn.abort()
            raise UpstreamTransportError(f"proxy {proxy.host}:{proxy.port} refused the tunnel (HTTP {conn.status})")
        loop = asyncio.get_running_loop()
        conn.transport = await loop.start_tls(conn.transport, conn, tls, server_hostname=host)  # type: ignore[arg-type]
        conn.parser = httptools.HttpResponseParser(conn)   # the CONNECT answer left it reading a body

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def keep(self, conn: _Connection) -> None:
        idle = self._idle.setdefault(conn.pool, [])
        if len(idle) >= self._max_idle:
            conn.abort()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    def forget(self, conn: _Connection) -> None:
        idle = self._idle.get(conn.pool)
        if idle and conn in idle:
            idle.remove(conn)

    async def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.abort()
        self._idle.clear()
