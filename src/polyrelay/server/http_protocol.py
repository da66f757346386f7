"""uvicorn's httptools protocol with a bounded request head and a deadline for it.

uvicorn's own protocol accepts a request line and headers of any size and waits for them forever:
httptools grows a header value by concatenation (a 100 MB header blocked the event loop for seconds)
and a client that never finishes its headers held its connection for good. Here the head (request
line and headers) is counted before the parser sees it: beyond MAX_HEAD_BYTES the request is refused
(414 while still in the request line, else 431) and the connection closed; a head not complete
within HEAD_TIMEOUT seconds of its first byte (of the connection, for the first request) is 408 and
closed. A body not complete within BODY_TIMEOUT seconds of the end of the headers is 408 in the
route's protocol (the app, waiting for it, is told the client left); the timer is armed only when a
read ends inside a body, so a request that arrives in one read costs nothing. A response sent before
the request's body was fully received also closes the connection, so a refused caller cannot keep it
open by trickling the rest of its body.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from polyrelay.errors import GatewayError
from polyrelay.protocols import openai_chat

MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT = float(os.environ.get("POLYRELAY_HEADER_TIMEOUT", "10"))
BODY_TIMEOUT = float(os.environ.get("POLYRELAY_BODY_TIMEOUT", "60"))


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True          # the bytes coming are a request line or headers
        self._head_bytes = 0
        self._line_done = False       # the request line has ended (a too-large head is then 431, not 414)
        self._body_pending = False    # headers done, the body not fully received yet
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        self._stop_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_received(data)
        else:
            super().data_received(data)
        if self._body_pending and self._body_timer is None and not self.transport.is_closing():
            self._body_timer = self.loop.call_later(BODY_TIMEOUT, self._body_timed_out)

    def _head_received(self, data: bytes) -> None:
        if self._head_timer is None:   # the first byte of the next request on a kept-alive connection
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT, self._head_timed_out)
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
        self._stop_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._body_pending = False
        self._stop_body_timer()
        self._in_head = True
        self._head_bytes = 0
        self._line_done = False
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._body_pending and not self.transport.is_closing():
            self.transport.close()   # answered before the body arrived: do not read the rest

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _stop_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timed_out(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if not self._body_pending or self.transport.is_closing() or cycle is None or cycle.response_started:
            return   # complete, gone, or already answered (that answer closes the connection)
        self._refuse(408, f"the request body did not arrive within {BODY_TIMEOUT:g} s")
        cycle.disconnected = True     # the app's receive() now returns http.disconnect; its sends are dropped
        cycle.message_event.set()

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._in_head:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # a pipelined request began while a response is still being written: its turn is later
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT, self._head_timed_out)
            return
        if self._head_bytes == 0:
            self.transport.close()   # connected and said nothing: nothing to answer
            return
        self._refuse(408, f"the request headers did not arrive within {HEAD_TIMEOUT:g} s")

    def _refuse(self, status: int, message: str) -> None:
        """Answer in the protocol of the route the request was for, as far as it is known, and close."""
        self._stop_head_timer()
        self._stop_body_timer()
        kind = "timeout" if status == 408 else "request_too_large"
        _, body = self._error_module().render_error(GatewayError(status, kind, message))
        self.transport.write(b"".join((
            STATUS_LINE[status], b"content-type: application/json\r\ncontent-length: ",
            str(len(body)).encode(), b"\r\nconnection: close\r\n\r\n", body)))
        self.transport.close()

    def _error_module(self):  # type: ignore[no-untyped-def]
        choose = getattr(self.app, "error_module_for", None)
        if choose is None or not self._line_done:
            return openai_chat
        if not self._in_head:   # headers complete: the scope is whole
            return choose(self.scope)
        try:
            url = httptools.parse_url(self.url)
            method = self.parser.get_method().decode("ascii")
        except (httptools.HttpParserInvalidURLError, AttributeError, UnicodeDecodeError):
            return openai_chat
        return choose({"method": method, "path": url.path.decode("latin-1"),
                       "query_string": url.query or b"", "headers": self.headers or []})
