"""Server-sent events: split a body into whole events whatever the chunking, and write them."""

from __future__ import annotations

import msgspec


class SseSplitter:
    """Holds only the bytes of one incomplete event."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def take(self, chunk: bytes) -> bytes:
        """The complete events so far as one block (ending in a blank line), or b""."""
        if not self._buffer and chunk.endswith(b"\n\n") and b"\r" not in chunk:
            return chunk  # the common case: whole events
        data = self._buffer + chunk if self._buffer else chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        end = data.rfind(b"\n\n")
        if end == -1:
            self._buffer = data
            return b""
        self._buffer = data[end + 2:]
        return data[:end + 2]

    def rest(self) -> bytes:
        """What is left when the body ends, as a block (an event without its blank line)."""
        rest, self._buffer = self._buffer.strip(), b""
        return rest + b"\n\n" if rest else b""

    def feed(self, chunk: bytes) -> list[bytes]:
        return [e for e in self.take(chunk).split(b"\n\n") if e]

    def close(self) -> list[bytes]:
        return [e for e in self.rest().split(b"\n\n") if e]


def event_fields(event: bytes) -> tuple[bytes, bytes]:
    """(event name, data) of one SSE event; data lines joined; b"" where absent."""
    name, data = b"", []
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[5:].lstrip(b" "))
        elif line.startswith(b"event:"):
            name = line[6:].strip()
    return name, b"\n".join(data)


def data_event(payload: object) -> bytes:
    return b"data: " + msgspec.json.encode(payload) + b"\n\n"


def named_event(name: str, payload: object) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + msgspec.json.encode(payload) + b"\n\n"
