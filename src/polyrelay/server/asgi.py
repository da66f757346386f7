"""Minimal ASGI plumbing: read a bounded body, send a whole reply, stream a reply."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from polyrelay.errors import GatewayError
from polyrelay.relay.replies import Reply, StreamAborted, StreamReply

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole body, at most `limit` bytes (else 413). How long it may take to arrive is the HTTP
    protocol's business (server/http_protocol.py: 408 in the caller's shape), at no cost per request."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise GatewayError(400, "invalid_request", "client disconnected while sending the body")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def too_large(limit: int) -> GatewayError:
    size = f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"
    return GatewayError(413, "request_too_large", f"request body is larger than {size}")


def header(scope: Scope, name: bytes) -> str | None:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


async def send_reply(send: Send, reply: Reply) -> None:
    headers = [(b"content-type", reply.content_type.encode()),
               (b"content-length", str(len(reply.body)).encode()), *reply.headers]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


async def send_stream(send: Send, receive: Receive, reply: StreamReply) -> None:
    """Stream `reply`; if the client disconnects, stop at once and close the producer."""
    headers = [(b"content-type", reply.content_type.encode()), (b"cache-control", b"no-cache"),
               (b"x-accel-buffering", b"no"), *reply.headers]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})

    async def write(chunk: bytes) -> None:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})

    pump_task = asyncio.ensure_future(reply.produce(write))
    watch_task = asyncio.ensure_future(_wait_disconnect(receive))
    done, _ = await asyncio.wait((pump_task, watch_task), return_when=asyncio.FIRST_COMPLETED)
    if pump_task in done:
        watch_task.cancel()
        try:
            pump_task.result()
        except StreamAborted:
            return   # no end of body: the connection is closed after what was sent
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    else:
        pump_task.cancel()  # the producer sees CancelledError: it closes upstream and settles
        with contextlib.suppress(asyncio.CancelledError):
            await pump_task


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
