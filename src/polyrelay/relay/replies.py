"""What the relay hands back to the server layer: a whole body, or a stream of bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator


class Reply:
    __slots__ = ("status", "body", "content_type", "headers")

    def __init__(self, status: int, body: bytes, content_type: str = "application/json",
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or []


class StreamReply:
    """`chunks` is an async generator: the server iterates it and calls `aclose()` when the client
    goes away, which cancels the upstream request and settles billing for what was streamed."""

    __slots__ = ("status", "chunks", "content_type", "headers")

    def __init__(self, chunks: AsyncIterator[bytes], status: int = 200,
                 content_type: str = "text/event-stream",
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.status = status
        self.chunks = chunks
        self.content_type = content_type
        self.headers = headers or []
