"""uvicorn's httptools protocol with a bounded request head and deadlines for the head and the body.

uvicorn's own protocol accepts a request line and headers of any size and waits for them forever:
httptools grows a header value by concatenation (a 100 MB header blocked the event loop for seconds)
and a client that never finished its headers held its connection for good. Here:

- the head (request line and headers) is counted before the parser sees it: beyond MAX_HEAD_BYTES the
  request is refused (414 while still in the request line, else 431);
- a head not complete within HEAD_TIMEOUT seconds of its first byte (of the connection, for the
  first request) is 408; a connection that said nothing is closed;
- a body not complete within BODY_TIMEOUT seconds of the end of the headers is 408 in the route's
  protocol (the app, waiting for it, is told the client left);
- a response sent before the request's body was fully received closes the connection, so a refused
  caller cannot keep it open by trickling the rest of its body.

Refusals answer in the protocol of the route (as far as the request is known yet), then read and drop
what the client still sends for LINGER seconds before closing: closing with unread bytes resets the
connection, and the client would often lose the answer with it.

The deadlines cost nothing per request (a timer armed and cancelled is ~3 us with uvloop, a clock
read ~0.1 us): one sweep per event loop, every min(1 s, T/4), notes which connections are in a head
or a body and since which sweep; one still in the same head or body a deadline later is refused. A
deadline T is therefore met between T and T + min(1 s, T/4) after its start.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any, cast

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from polyrelay.errors import ErrorKind, GatewayError
from polyrelay.protocols import openai_chat
from polyrelay.protocols.registry import WireProtocol
from polyrelay.server.asgi import Scope

MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT = float(os.environ.get("POLYRELAY_HEADER_TIMEOUT", "10"))
BODY_TIMEOUT = float(os.environ.get("POLYRELAY_BODY_TIMEOUT", "60"))
LINGER = 2.0
_SWEEP_EVERY = max(0.05, min(1.0, HEAD_TIMEOUT / 4, BODY_TIMEOUT / 4))


class _Sweeper:
    """The deadlines of one event loop's connections, checked every _SWEEP_EVERY seconds while any
    connection is open."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.connections: set[BoundedHttpToolsProtocol] = set()
        self.timer: asyncio.TimerHandle | None = None

    def add(self, conn: BoundedHttpToolsProtocol) -> None:
        self.connections.add(conn)
        if self.timer is None:
            self.timer = self.loop.call_later(_SWEEP_EVERY, self.sweep)

    def sweep(self) -> None:
        now = self.loop.time()
        for conn in list(self.connections):
            conn.check_deadline(now)
        self.timer = self.loop.call_later(_SWEEP_EVERY, self.sweep) if self.connections else None


_sweepers: dict[asyncio.AbstractEventLoop, _Sweeper] = {}


def _sweeper(loop: asyncio.AbstractEventLoop) -> _Sweeper:
    sweeper = _sweepers.get(loop)
    if sweeper is None:
        sweeper = _sweepers[loop] = _Sweeper(loop)
    return sweeper


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True          # the bytes coming are a request line or headers
        self._head_bytes = 0
        self._line_done = False       # the request line has ended (a too-large head is then 431, not 414)
        self._body_pending = False    # headers done, the body not fully received yet
        self._requests = 0            # requests received whole on this connection
        self._watch: tuple[int, bool, float] | None = None   # (requests, in head, first seen) by the sweeper
        self._discarding = False      # refused: drop what still comes until the linger ends
        self._sweeper = _sweeper(self.loop)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._sweeper.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._sweeper.connections.discard(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        if not self._in_head:
            super().data_received(data)
            return
        room = MAX_HEAD_BYTES - self._head_bytes
        head = data if len(data) <= room else data[:room]
        self._head_bytes += len(head)
        if not self._line_done and b"\n" in head:
            self._line_done = True
        super().data_received(head)
        if len(head) == len(data) or self.transport.is_closing():
            return
        if self._in_head:   # still in the head with the allowance spent
            if self._line_done:
                self._refuse(431, "the request headers are larger than 64 KB")
            else:
                self._refuse(414, "the request URL is longer than 64 KB")
            return
        self.data_received(data[room:])   # the head ended inside this read: body and what follows

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._body_pending = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._body_pending = False
        self._in_head = True
        self._head_bytes = 0
        self._line_done = False
        self._requests += 1
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._body_pending and not self.transport.is_closing():
            self.transport.close()   # answered before the body arrived: do not read the rest

    # ---- deadlines (called by the sweeper) ----

    def check_deadline(self, now: float) -> None:
        in_head = self._in_head
        if self._discarding or not (self._body_pending or (in_head and (self._head_bytes or not self._requests))):
            self._watch = None   # between requests (uvicorn's keep-alive rule), or done
            return
        watch = self._watch
        if watch is None or watch[0] != self._requests or watch[1] != in_head:
            self._watch = (self._requests, in_head, now)
            return
        if now - watch[2] < (HEAD_TIMEOUT if in_head else BODY_TIMEOUT):
            return
        self._watch = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if in_head:
            if cycle is not None and not cycle.response_complete:
                return   # a pipelined request began while a response is still being written: later
            if self._head_bytes == 0:
                self.transport.close()   # connected and said nothing: nothing to answer
            else:
                self._refuse(408, f"the request headers did not arrive within {HEAD_TIMEOUT:g} s")
            return
        if cycle is None or cycle.response_started:
            return   # already answered: that answer closes the connection
        self._refuse(408, f"the request body did not arrive within {BODY_TIMEOUT:g} s")
        cycle.disconnected = True     # the app's receive() now returns http.disconnect; its sends are dropped
        cycle.message_event.set()

    # ---- refusals ----

    def _refuse(self, status: int, message: str) -> None:
        """Answer in the protocol of the route the request was for, as far as it is known; then read
        and drop what still comes for LINGER seconds, and close."""
        kind: ErrorKind = "timeout" if status == 408 else "request_too_large"
        _, body = self._error_module().render_error(GatewayError(status, kind, message))
        transport = self.transport
        transport.write(b"".join((
            STATUS_LINE[status], b"content-type: application/json\r\ncontent-length: ",
            str(len(body)).encode(), b"\r\nconnection: close\r\n\r\n", body)))
        self._discarding = True
        try:
            transport.write_eof()        # the answer, then our end of the stream; keep reading
        except (NotImplementedError, RuntimeError, OSError):
            transport.close()
            return
        self.flow.resume_reading()
        self.loop.call_later(LINGER, transport.close)   # closing twice is harmless

    def _error_module(self) -> WireProtocol:
        choose: Callable[[Scope], WireProtocol] | None = getattr(self.app, "error_module_for", None)
        if choose is None or not self._line_done:
            return openai_chat
        if not self._in_head:   # headers complete: the scope is whole
            return choose(cast(Scope, self.scope))   # (uvicorn's HTTPScope TypedDict: the same dict)
        try:
            url = httptools.parse_url(self.url)
            method = self.parser.get_method().decode("ascii")
        except (httptools.HttpParserInvalidURLError, AttributeError, UnicodeDecodeError):
            return openai_chat
        return choose({"method": method, "path": url.path.decode("latin-1"),
                       "query_string": url.query or b"", "headers": self.headers or []})
