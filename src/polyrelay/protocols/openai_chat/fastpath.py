"""The OpenAI Chat fast path: client and upstream both speak Chat, so bytes pass through.

Only the top level of the request is decoded (values stay raw bytes); only `model` (and, for
streams, `stream_options`) is rewritten. Responses are tapped for usage, not re-rendered.
"""

from __future__ import annotations

import re
from typing import cast

import msgspec

from polyrelay import ir
from polyrelay.errors import invalid_request
from polyrelay.protocols import limits
from polyrelay.protocols._passthrough import (
    ModelRenamer,
    RequestPeek,
    SseTap,
    decode_answer,
    decode_or_none,
    decode_top,
    field,
    model_field,
    quoted_lengths,
    quoted_lengths_all,
    rename_first,
    text_markers,
    with_field,
)
from polyrelay.protocols.openai_chat.wire import Usage, usage_to_ir

_INCLUDE_USAGE = {"include_usage": True}


class _StreamOptions(msgspec.Struct):
    include_usage: bool | None = None


def peek_request(body: bytes) -> RequestPeek:
    top = decode_top(body)
    model = cast("str | None", field(top, "model", str | None))
    if not model:
        raise invalid_request("'model' is required", param="model")
    if "messages" not in top:
        raise invalid_request("'messages' is required", param="messages")
    options = cast("_StreamOptions | None", field(top, "stream_options", _StreamOptions | None))
    max_output, n = limits.openai_chat(limits.RawFields(top))
    return RequestPeek(top, model, bool(field(top, "stream", bool | None, False)),
                       bool(options and options.include_usage), max_output, n or 1)


def upstream_body(peek: RequestPeek, upstream_model: str, force_usage: bool) -> bytes:
    """The client's body with the model renamed (and usage asked for in streams when `force_usage`),
    and the relay's output limit when it set one: `max_completion_tokens`, which every OpenAI chat
    model takes (o-series and gpt-5 refuse `max_tokens`)."""
    top = with_field(peek.top, "model", upstream_model)
    if peek.upstream_max_output is not None:
        top = with_field(top, "max_completion_tokens", peek.upstream_max_output)
    if peek.stream and force_usage and not peek.include_usage:
        options = field(top, "stream_options", dict, {})
        top = with_field(top, "stream_options", {**options, **_INCLUDE_USAGE})
    return msgspec.json.encode(top)


# ---- responses ------------------------------------------------------------------------------


class _UsageHolder(msgspec.Struct):
    usage: Usage | None = None


def usage_of(body: bytes, whole: bool = False) -> ir.Usage | None:
    """The usage of an answer or a stream event, None when it has none. A `whole` answer that is not
    JSON raises Unreadable (a stream event never fails the stream)."""
    holder = decode_answer(body, _UsageHolder) if whole else decode_or_none(body, _UsageHolder)
    return usage_to_ir(holder.usage) if holder and holder.usage else None


_MODEL_FIELD = model_field(b"model")


def rename_model(payload: bytes, model_json: bytes) -> bytes:
    """Replace the first `"model": "..."` (the top-level one in Chat bodies) by `model_json`."""
    return rename_first(_MODEL_FIELD, payload, b"model", model_json)


_FINISHED = re.compile(rb'"finish_reason"\s*:\s*"')
_TEXT_MARKERS = text_markers(b"content", b"arguments", b"reasoning_content")
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_EMPTY_CHOICES = re.compile(rb'"choices"\s*:\s*\[\s*\]')
# events that need a closer look than a block scan
_MARKERS_AFTER_FINISH = (b'"usage":{', b'"usage": {', b"[DONE]", b'{"error"')
_MARKERS = (*_MARKERS_AFTER_FINISH, b'"finish_reason":"', b'"finish_reason": "')


def _printed_with_spaces(block: bytes) -> bool:
    """Whether the upstream prints JSON with a space after the colon, judged by the block's first data
    event (a stream has one serializer): `": "` searched in the whole block was a full scan of it per
    read (~15 us per 100 chunks) for the many upstreams that print none."""
    start = block.find(b"data:")
    if start == -1:
        return False
    end = block.find(b"\n", start)
    return block.find(b'": "', start, end if end != -1 else len(block)) != -1


class ChatStreamTap(SseTap):
    """Passes Chat SSE through event by event: renames the model, notes usage and the finish, and
    drops the usage-only chunk when the client did not ask for it."""

    # where one event's generated text is, for an estimate when usage never comes (the legacy
    # completions tap reads `text` instead, and overrides `_plain`, the block scan, likewise)
    TEXT_MARKERS: tuple[bytes, ...] = _TEXT_MARKERS

    def __init__(self, public_model: str, drop_usage_chunk: bool) -> None:
        super().__init__()
        self._rename = ModelRenamer(_MODEL_FIELD, b"model", public_model)
        self._drop_usage_chunk = drop_usage_chunk

    def _block(self, block: bytes) -> bytes:
        """Content deltas (nearly every event) need no event-by-event look: the block up to the first
        event that may carry usage, a finish, an error or [DONE] is scanned once as a whole."""
        if not self._rename.known:  # learn the upstream's model field from the first event
            first_end = block.find(b"\n\n") + 2
            head = super()._block(block[:first_end])
            rest = block[first_end:]
            return head + (self._block(rest) if self._rename.known and rest else super()._block(rest))
        markers = _MARKERS if not self.finished else _MARKERS_AFTER_FINISH
        cut = min((i for i in (block.find(m) for m in markers) if i != -1), default=-1)
        if cut == -1:
            return self._plain(block)
        previous_end = block.rfind(b"\n\n", 0, cut)
        boundary = previous_end + 2 if previous_end != -1 else 0
        return self._plain(block[:boundary]) + super()._block(block[boundary:])

    def _plain(self, block: bytes) -> bytes:
        if not block:
            return b""
        self.text_bytes += quoted_lengths_all(block, b'"content":"') + quoted_lengths_all(block, b'"arguments":"')
        if _printed_with_spaces(block):   # JSON printed with spaces (see text_markers)
            self.text_bytes += (quoted_lengths_all(block, b'"content": "')
                                + quoted_lengths_all(block, b'"arguments": "'))
        return self._rename.everywhere(block)

    def _event(self, event: bytes) -> bytes:
        if not event.startswith(b"data:"):
            return event  # comments, event:/id:/retry: lines pass as they are
        payload = event[5:].lstrip()
        if payload.startswith(b"[DONE]"):
            self.done = True
            # nothing of the stream could be read: hold back [DONE], so the client gets the error event
            return event if self.finished or self.usage is not None else b""
        if payload.startswith(b'{"error"'):
            self.errored = True
            return event
        if b'"usage":{' in payload or (b'"usage":null' not in payload and _USAGE_OBJECT.search(payload)):
            usage = usage_of(payload)
            if usage is not None:
                self.usage = usage
                if self._drop_usage_chunk and _EMPTY_CHOICES.search(payload):
                    return b""
        if not self.finished and b'"finish_reason":' in payload and _FINISHED.search(payload):
            self.finished = True
        self.text_bytes += quoted_lengths(payload, self.TEXT_MARKERS)
        return event if self._rename.same else b"data: " + self._rename(payload)
