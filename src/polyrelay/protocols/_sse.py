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

    __slots__ = ("_parts", "_size", "_cr", "_limit", "events")

    def __init__(self, limit: int | None = None) -> None:
        self._parts: list[bytes] = []   # the incomplete event's bytes, CRLF made LF; [b""] for a lone CR
        self._size = 0
        self._cr = False        # the last read ended in CR (its LF may open the next one)
        self._limit = MAX_EVENT_BYTES if limit is None else limit
        self.events = 0         # blocks returned that held a real event (not only keep-alives)

    def take(self, chunk: bytes) -> bytes:
        """The complete events so far as one block (ending in a blank line), or b""."""
        if not self._parts and chunk.endswith(b"\n\n") and b"\r" not in chunk:
            # the common case: whole events. Counted unless it may be only keep-alives (a comment,
            # a ping), which do not show the stream is alive (see relay.streaming's watchdog)
            if chunk[0] == 0x64 or _not_only_keepalives(chunk):   # 0x64: "data:"
                self.events += 1
            return chunk
        parts = self._parts
        if self._cr:
            chunk, self._cr = b"\r" + chunk, False
        if b"\r" in chunk:
            if chunk[-1] == 0x0D:
                self._cr, chunk = True, chunk[:-1]
            chunk = chunk.replace(b"\r\n", b"\n")
        end = chunk.rfind(b"\n\n")
        if end != -1:
            cut = end + 2
        elif parts and chunk[:1] == b"\n" and parts[-1][-1:] == b"\n":
            cut = 1   # the blank line spans two reads: the held bytes and this LF end an event
        else:   # (the hold, inlined: this is every read of an event split across reads)
            parts.append(chunk)
            self._size += len(chunk)
            if self._size > self._limit:
                self._parts, self._size = [], 0
                raise EventTooLarge(self._limit)
            return b""
        self._parts, self._size = [], 0
        if cut < len(chunk):
            parts.append(chunk[:cut])
            self._hold(chunk[cut:])
        else:
            parts.append(chunk)
            if self._cr:
                self._parts.append(b"")   # a CR is still pending: keep the fast path off
        block = parts[0] if len(parts) == 1 else b"".join(parts)
        if block[0] == 0x64 or _not_only_keepalives(block):
            self.events += 1
        return block

    def _hold(self, data: bytes) -> None:
        self._parts.append(data)
        self._size += len(data)
        if self._size > self._limit:
            self._parts, self._size = [], 0
            raise EventTooLarge(self._limit)

    def rest(self) -> bytes:
        """What is left when the body ends, as a block (an event without its blank line)."""
        rest = b"".join(self._parts).strip()
        self._parts, self._size, self._cr = [], 0, False
        return rest + b"\n\n" if rest else b""

    def feed(self, chunk: bytes) -> list[bytes]:
        return [e for e in self.take(chunk).split(b"\n\n") if e]

    def close(self) -> list[bytes]:
        return [e for e in self.rest().split(b"\n\n") if e]


def _not_only_keepalives(block: bytes) -> bool:
    """Whether a block of events holds a real one: not only comments (`: keep-alive`) and pings
    (`event: ping`, which Anthropic sends while it thinks)."""
    for event in block.split(b"\n\n"):
        if (not event or event.startswith((b"event: ping\n", b"event:ping\n"))
                or event in (b"event: ping", b"event:ping")):
            continue
        if any(line[:1] != b":" for line in event.split(b"\n") if line):
            return True
    return False


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
