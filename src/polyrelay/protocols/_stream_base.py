"""What every upstream stream decoder shares: SSE splitting, and a cut stream reported as an error."""

from __future__ import annotations

from polyrelay import ir
from polyrelay.protocols._sse import SseSplitter

CUT_MESSAGE = "upstream stream ended before it was complete"


class EventDecoder:
    """Subclasses turn one raw SSE event into IR events in `_event`, and set `_finished` when the
    upstream's own end (a finish reason) is seen and `_failed` when it sent an error."""

    def __init__(self) -> None:
        self._sse = SseSplitter()
        self._finished = False
        self._failed = False
        self.usage: ir.Usage | None = ir.Usage()   # the last usage read (Anthropic: None until one is)

    @property
    def events(self) -> int:
        """Blocks of real events (not only comments) seen so far."""
        return self._sse.events

    def feed(self, chunk: bytes) -> list[ir.StreamEvent]:
        return [e for raw in self._sse.feed(chunk) for e in self._event(raw)]

    def close(self) -> list[ir.StreamEvent]:
        events = [e for raw in self._sse.close() for e in self._event(raw)]
        if not (self._finished or self._failed):
            self._failed = True
            events.append(ir.StreamError(502, "upstream", CUT_MESSAGE))
        return events

    def _event(self, raw: bytes) -> list[ir.StreamEvent]:
        raise NotImplementedError
