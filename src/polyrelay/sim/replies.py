"""Simulator replies: a whole body, or stream pieces sent with a delay and maybe cut short."""

from __future__ import annotations

import msgspec


class SimReply(msgspec.Struct):
    status: int
    body: bytes
    content_type: str = "application/json"


class SimStream(msgspec.Struct):
    pieces: list[bytes]
    delay_s: float = 0.0
    cut: int = -1               # stop after this many pieces, without the end (-1: never)
    content_type: str = "text/event-stream"


class SimBytes(msgspec.Struct):
    """A large generated body (video content): `size` bytes streamed from one repeated block."""
    size: int
    content_type: str = "application/octet-stream"
    seed: bytes = b"polyrelay"
    cut: int = -1               # stop after this many bytes, without the end (-1: never)
