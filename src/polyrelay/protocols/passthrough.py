"""Shared pieces of the same-protocol fast path: the request peek and the SSE event splitter.

The fast path forwards the client's bytes with only the model renamed, and taps the upstream's
answer for usage instead of re-rendering it. Each protocol's `<name>_passthrough` module builds on
these.
"""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec

from polyrelay import ir
from polyrelay.errors import invalid_request
from polyrelay.protocols.sse import SseSplitter

Top = dict[str, msgspec.Raw]
T = TypeVar("T")


class RequestPeek:
    """What the gateway needs to know about a request, read without a full parse."""

    __slots__ = ("top", "model", "stream", "include_usage", "max_output", "n")

    def __init__(self, top: Top, model: str, stream: bool, include_usage: bool,
                 max_output: int | None, n: int) -> None:
        self.top = top                      # top-level fields, values still raw JSON
        self.model = model
        self.stream = stream
        self.include_usage = include_usage  # the client asked for usage in its stream
        self.max_output = max_output        # the client's output limit, if any
        self.n = n                          # answers asked for


def decode_top(body: bytes) -> Top:
    try:
        return msgspec.json.decode(body, type=Top)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise invalid_request("the request body must be a JSON object") from None


def decode_or_none(body: bytes, typ: type[T]) -> T | None:
    """`body` decoded as `typ`, or None when it is not (tapping must never fail a response)."""
    try:
        return msgspec.json.decode(body, type=typ)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def field(top: Top, name: str, typ: object, default: object = None) -> object:
    """Decode one top-level field as `typ`; a wrong type is a 400 naming the field."""
    raw = top.get(name)
    if raw is None:
        return default
    try:
        value = msgspec.json.decode(raw, type=typ)  # type: ignore[call-overload]
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

    __slots__ = ("_pattern", "_new", "_old")

    def __init__(self, pattern: re.Pattern[bytes], key: bytes, public_model: str) -> None:
        self._pattern = pattern
        self._new = b'"' + key + b'":' + msgspec.json.encode(public_model)
        self._old: bytes | None = None

    def __call__(self, payload: bytes) -> bytes:
        old = self._old
        if old is not None and old in payload:
            return payload if old == self._new else payload.replace(old, self._new, 1)
        m = self._pattern.search(payload)
        if m is None:
            return payload
        self._old = m.group(0)
        return payload[:m.start()] + self._new + payload[m.end():]


def quoted_lengths(payload: bytes, markers: tuple[bytes, ...]) -> int:
    """Total length of the JSON strings that follow each marker (e.g. b'"content":"'): an
    estimate of generated text, without decoding the event."""
    total = 0
    for marker in markers:
        start = payload.find(marker)
        if start == -1:
            continue
        start += len(marker)
        end = payload.find(b'"', start)
        while end > 0 and payload[end - 1] == 0x5C:  # an escaped quote: keep looking
            end = payload.find(b'"', end + 1)
        if end > start:
            total += end - start
    return total


class SseTap:
    """Splits an SSE body into whole events, whatever the chunking, holding only one partial event.

    Subclasses implement `_event(event) -> bytes` (what to forward; b"" to drop) and set `usage`,
    `finished` (the answer's end was seen), `done` (the stream's terminator was seen), `errored`
    (an upstream error event was passed on) and
    `text_bytes` (generated text seen, for an estimate when usage never comes).
    """

    def __init__(self) -> None:
        self._splitter = SseSplitter()
        self.usage: ir.Usage | None = None
        self.finished = False
        self.done = False
        self.errored = False  # an error event was passed to the client
        self.text_bytes = 0

    def feed(self, chunk: bytes) -> bytes:
        return self._forward(self._splitter.feed(chunk))

    def close(self) -> bytes:
        """Forward a trailing event the upstream did not end with a blank line."""
        return self._forward(self._splitter.close())

    def _forward(self, events: list[bytes]) -> bytes:
        out = []
        for event in events:
            kept = self._event(event)
            if kept:
                out.append(kept)
                out.append(b"\n\n")
        return b"".join(out)

    def _event(self, event: bytes) -> bytes:
        raise NotImplementedError
