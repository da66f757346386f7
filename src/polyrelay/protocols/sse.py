"""Server-sent events: split a body into whole events whatever the chunking, and write them."""

from __future__ import annotations

import os

import msgspec

# The largest SSE event an upstream may send (an incomplete one held past this ends the stream).
MAX_EVENT_BYTES = int(os.environ.get("POLYRELAY_MAX_EVENT_MB", "16")) * 1024 * 1024


class EventTooLarge(Exception):
    """An upstream event grew past MAX_EVENT_BYTES without ending (not a ValueError: stream
    decoders turn those into an unreadable-event error and read on; this must end the stream)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"upstream sent a stream event larger than {limit // (1024 * 1024) or limit} "
                         f"{'MB' if limit >= 1024 * 1024 else 'bytes'}")


class SseSplitter:
    """Holds only the bytes of one incomplete event, as the reads that brought them (joined once,
    when the event ends): each read is searched once, so splitting is linear in the body's size."""

    __slots__ = ("_parts", "_size", "_cr", "_newline", "_limit", "events")

    def __init__(self, limit: int | None = None) -> None:
        self._parts: list[bytes] = []   # the incomplete event's bytes, CRLF already made LF
        self._size = 0
        self._cr = False        # the last read ended in CR (its LF may come in the next one)
        self._newline = False   # the held bytes end in LF (an LF first in the next read ends the event)
        self._limit = MAX_EVENT_BYTES if limit is None else limit
        self.events = 0         # blocks returned that held more than comments (stream idleness)

    def take(self, chunk: bytes) -> bytes:
        """The complete events so far as one block (ending in a blank line), or b""."""
        if not self._parts and not self._cr and chunk.endswith(b"\n\n") and b"\r" not in chunk:
            if chunk[0] != 0x3A or _not_only_comments(chunk):
                self.events += 1
            return chunk  # the common case: whole events
        if self._cr:
            chunk = b"\r" + chunk
            self._cr = False
        if b"\r" in chunk:
            if chunk.endswith(b"\r"):
                self._cr, chunk = True, chunk[:-1]
            chunk = chunk.replace(b"\r\n", b"\n")
        if not chunk:
            return b""
        end = chunk.rfind(b"\n\n")
        if end == -1 and self._newline and chunk[0] == 0x0A:
            end = -1   # the blank line spans the two reads: the held bytes + this LF end an event
            cut = 1
        elif end == -1:
            self._hold(chunk)
            return b""
        else:
            cut = end + 2
        parts, self._parts, self._size = self._parts, [], 0
        parts.append(chunk[:cut] if cut < len(chunk) else chunk)
        if cut < len(chunk):
            self._hold(chunk[cut:])
        else:
            self._newline = False
        block = parts[0] if len(parts) == 1 else b"".join(parts)
        if block[0] != 0x3A or _not_only_comments(block):
            self.events += 1
        return block

    def _hold(self, data: bytes) -> None:
        self._parts.append(data)
        self._size += len(data)
        self._newline = data[-1] == 0x0A
        if self._size > self._limit:
            self._parts, self._size = [], 0
            raise EventTooLarge(self._limit)

    def rest(self) -> bytes:
        """What is left when the body ends, as a block (an event without its blank line)."""
        rest = b"".join(self._parts).strip()
        self._parts, self._size, self._cr, self._newline = [], 0, False, False
        return rest + b"\n\n" if rest else b""

    def feed(self, chunk: bytes) -> list[bytes]:
        return [e for e in self.take(chunk).split(b"\n\n") if e]

    def close(self) -> list[bytes]:
        return [e for e in self.rest().split(b"\n\n") if e]


def _not_only_comments(block: bytes) -> bool:
    """Whether a block of events holds anything but comments (`: keep-alive`, which say nothing)."""
    return any(line[:1] not in (b":", b"") for line in block.split(b"\n"))


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
