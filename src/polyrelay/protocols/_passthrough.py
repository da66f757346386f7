"""Shared pieces of the same-protocol fast path: the request peek and the SSE event splitter.

The fast path forwards the client's bytes with only the model renamed, and taps the upstream's
answer for usage instead of re-rendering it. Each protocol's `<name>_passthrough` module builds on
these.
"""

from __future__ import annotations

import re
from typing import TypeVar, overload

import msgspec

from polyrelay import ir
from polyrelay.errors import invalid_request, too_deep
from polyrelay.protocols._sse import SseSplitter

Top = dict[str, msgspec.Raw]
T = TypeVar("T")


class RequestPeek:
    """What the gateway needs to know about a request, read without a full parse."""

    __slots__ = ("top", "model", "stream", "include_usage", "max_output", "n", "forward_headers",
                 "upstream_max_output", "framing", "thinking_budget")

    def __init__(self, top: Top, model: str, stream: bool, include_usage: bool,
                 max_output: int | None, n: int) -> None:
        self.top = top                      # top-level fields, values still raw JSON
        self.model = model
        self.stream = stream
        self.include_usage = include_usage  # the client asked for usage in its stream
        self.max_output = max_output        # the client's output limit, if any
        self.n = n                          # answers asked for
        self.forward_headers: dict[str, str] | None = None   # client headers for a same-kind upstream
        # set by the relay when the client set no limit and the key's balance is finite: the output
        # limit the reservation covers, sent upstream so the answer cannot cost more than was held
        self.upstream_max_output: int | None = None
        # how the client wants a stream framed: "sse" (every protocol), or "json" (Gemini without
        # `alt=sse`: one JSON array); only an "sse" client can take an upstream's stream as it is
        self.framing = "sse"
        # set by the relay for a model alias that turns thinking on (routing/aliases.py); a protocol
        # whose THINKING_ALIAS is set adds it to the body when the client configured no thinking
        self.thinking_budget: int | None = None


def decode_top(body: bytes) -> Top:
    try:
        return msgspec.json.decode(body, type=Top)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise invalid_request("the request body must be a JSON object") from None
    except RecursionError:  # skipping a raw value still recurses: a body nested ~1,000 levels
        raise too_deep() from None


def decode_or_none(body: bytes, typ: type[T]) -> T | None:
    """`body` decoded as `typ`, or None when it is not (tapping must never fail a response)."""
    try:
        return msgspec.json.decode(body, type=typ)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None


class Unreadable(Exception):
    """A whole upstream answer that is not a JSON object: a failed request, never billed."""


def decode_answer(body: bytes, typ: type[T]) -> T | None:
    """A whole (non-stream) upstream answer decoded as `typ`: None when it is a JSON object of another
    shape (no usage to read), Unreadable when it is not a JSON object at all. One decode on the
    common path; the second look happens only for a body that does not fit `typ`."""
    try:
        return msgspec.json.decode(body, type=typ)
    except msgspec.DecodeError:
        raise Unreadable from None
    except msgspec.ValidationError:
        pass
    try:
        msgspec.json.decode(body, type=dict[str, msgspec.Raw])
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise Unreadable from None
    return None


@overload
def field(top: Top, name: str, typ: type[T], default: T) -> T: ...
@overload
def field(top: Top, name: str, typ: object, default: object = None) -> object: ...


def field(top: Top, name: str, typ: object, default: object = None) -> object:
    """Decode one top-level field as `typ`; a wrong type is a 400 naming the field. With a class and
    a default the result is typed; with a union (`str | None`) the caller states what it asked for."""
    raw = top.get(name)
    if raw is None:
        return default
    try:
        value = msgspec.json.decode(raw, type=typ)
    except msgspec.ValidationError as e:
        raise invalid_request(f"'{name}': {e}", param=name) from None
    return default if value is None else value


def with_field(top: Top, name: str, value: object) -> Top:
    out = dict(top)
    out[name] = msgspec.Raw(msgspec.json.encode(value))
    return out


def model_field(key: bytes) -> re.Pattern[bytes]:
    """Matches `"<key>": "<any JSON string>"`."""
    return re.compile(rb'"' + key + rb'"\s*:\s*"(?:[^"\\]|\\.)*"')


def rename_first(pattern: re.Pattern[bytes], payload: bytes, key: bytes, model_json: bytes) -> bytes:
    """Replace the first match of `"<key>": "..."` by the public model name (already JSON-encoded)."""
    m = pattern.search(payload)
    if m is None:
        return payload
    return payload[:m.start()] + b'"' + key + b'":' + model_json + payload[m.end():]


class ModelRenamer:
    """Renames the model in each event of one stream. Upstreams repeat the same field in every
    event, so after the first regex match a plain bytes replace does (or nothing, if equal)."""

    __slots__ = ("_pattern", "_new", "_old", "same")
    # `same`: the upstream already says the public name, nothing to do; `known`: the field was seen

    def __init__(self, pattern: re.Pattern[bytes], key: bytes, public_model: str) -> None:
        self._pattern = pattern
        self._new = b'"' + key + b'":' + msgspec.json.encode(public_model)
        self._old: bytes | None = None
        self.same = False  # the upstream already says the public name: nothing to do from now on

    def __call__(self, payload: bytes) -> bytes:
        old = self._old
        if old is not None and old in payload:
            return payload.replace(old, self._new, 1)
        m = self._pattern.search(payload)
        if m is None:
            return payload
        self._old = m.group(0)
        self.same = self._old == self._new
        return payload[:m.start()] + self._new + payload[m.end():]

    @property
    def known(self) -> bool:
        return self._old is not None

    def everywhere(self, block: bytes) -> bytes:
        """Rename in a block of whole events (after `known`): one field per event, never in strings."""
        return block if self.same else block.replace(self._old, self._new)  # type: ignore[arg-type]


def quoted_lengths_all(block: bytes, marker: bytes) -> int:
    """Total length of the JSON strings after every `marker` in a block of events."""
    total, start = 0, block.find(marker)
    while start != -1:
        start += len(marker)
        end = block.find(b'"', start)
        while end > 0 and block[end - 1] == 0x5C:
            end = block.find(b'"', end + 1)
        if end == -1:
            break
        total += end - start
        start = block.find(marker, end)
    return total


def text_markers(*fields: bytes) -> tuple[bytes, ...]:
    """`"field":"` for each field, then `"field": "`: upstreams that print JSON with a space after
    the colon (some OpenAI-compatible servers) would otherwise look as if they streamed no text."""
    return (*(b'"' + f + b'":"' for f in fields), *(b'"' + f + b'": "' for f in fields))


def quoted_lengths(payload: bytes, markers: tuple[bytes, ...]) -> int:
    """Length of the JSON string after the first marker found (e.g. b'"content":"'): an estimate
    of generated text, without decoding the event. Markers are tried in order of likelihood."""
    for marker in markers:
        start = payload.find(marker)
        if start == -1:
            continue
        start += len(marker)
        end = payload.find(b'"', start)
        while end > 0 and payload[end - 1] == 0x5C:  # an escaped quote: keep looking
            end = payload.find(b'"', end + 1)
        return max(0, end - start)
    return 0


class TapState:
    """What a stream tap knows about the stream it passes on (see relay.streaming.Tap)."""

    def __init__(self) -> None:
        self.usage: ir.Usage | None = None        # final usage as the upstream reported it
        self.start_usage: ir.Usage | None = None  # early usage (exact input, partial output), if sent
        self.finished = False   # the answer's end (a finish/stop reason) was seen
        self.done = False       # the stream's terminator was seen: stop reading
        self.errored = False    # an upstream error event was passed to the client
        self.text_bytes = 0     # generated text seen, for an estimate if usage never comes


class SseTap(TapState):
    """Splits an SSE body into whole events, whatever the chunking, holding only one partial event.

    Each read's complete events go to `_block` as one block; by default every event is passed to
    `_event(event) -> bytes` (what to forward; b"" drops it), which keeps the TapState up to date.
    """

    def __init__(self) -> None:
        super().__init__()
        self._sse = SseSplitter()

    def feed(self, chunk: bytes) -> bytes:
        block = self._sse.take(chunk)
        return self._block(block) if block else b""

    @property
    def events(self) -> int:
        """Blocks of real events (not only comments) seen so far."""
        return self._sse.events

    def close(self) -> bytes:
        """Forward a trailing event the upstream did not end with a blank line."""
        block = self._sse.rest()
        return self._block(block) if block else b""

    def _block(self, block: bytes) -> bytes:
        out = []
        for event in block.split(b"\n\n"):
            if event:
                kept = self._event(event)
                if kept:
                    out.append(kept)
                    out.append(b"\n\n")
        return b"".join(out)

    def _event(self, event: bytes) -> bytes:
        raise NotImplementedError
