"""What the relay hands back to the server layer: a whole body, or a stream of bytes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

Write = Callable[[bytes], Awaitable[None]]
Producer = Callable[[Write], Awaitable[None]]


class Reply:
    __slots__ = ("status", "body", "content_type", "headers")

    def __init__(self, status: int, body: bytes, content_type: str = "application/json",
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or []


class StreamReply:
    """`produce(write)` writes the body chunk by chunk. The server cancels it when the client goes
    away; the producer then cancels the upstream request and settles billing for what was streamed."""

    __slots__ = ("status", "produce", "content_type", "headers")

    def __init__(self, produce: Producer, status: int = 200, content_type: str = "text/event-stream",
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.status = status
        self.produce = produce
        self.content_type = content_type
        self.headers = headers or []


class StreamAborted(Exception):
    """Raised by a producer whose body cannot be finished (its upstream failed midway) and has no
    error event to end with (a binary download): the server closes the connection without the
    body's end, so the client sees a cut body, never a complete-looking short one."""
