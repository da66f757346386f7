"""The Anthropic Messages fast path: client and upstream both speak Messages; bytes pass through."""

from __future__ import annotations

import re
from typing import cast

import msgspec

from polyrelay import ir
from polyrelay.errors import invalid_request
from polyrelay.protocols import limits
from polyrelay.protocols._passthrough import (
    RequestPeek,
    SseTap,
    decode_answer,
    decode_or_none,
    decode_top,
    field,
    model_field,
    quoted_lengths,
    rename_first,
    text_markers,
    with_field,
)
from polyrelay.protocols.anthropic_messages.wire import Usage, merge_usage


def peek_request(body: bytes) -> RequestPeek:
    top = decode_top(body)
    model = cast("str | None", field(top, "model", str | None))
    if not model:
        raise invalid_request("model: Field required", param="model")
    if "messages" not in top:
        raise invalid_request("messages: Field required", param="messages")
    max_output, _ = limits.anthropic_messages(limits.RawFields(top))
    return RequestPeek(top, model, bool(field(top, "stream", bool | None, False)),
                       True, max_output, 1)


def upstream_body(peek: RequestPeek, upstream_model: str, force_usage: bool = True) -> bytes:
    """The body with the model renamed; an alias's thinking budget (`peek.thinking_budget`, from
    routing/aliases.py) turns thinking on when the client did not configure it."""
    top = with_field(peek.top, "model", upstream_model)
    if peek.thinking_budget is not None and "thinking" not in top:
        top = with_field(top, "thinking", {"type": "enabled", "budget_tokens": peek.thinking_budget})
    return msgspec.json.encode(top)


class _Holder(msgspec.Struct):
    usage: Usage | None = None


class _Start(msgspec.Struct):
    message: _Holder


def usage_of(body: bytes, whole: bool = False) -> ir.Usage | None:
    """The usage of an answer or a stream event, None when it has none. A `whole` answer that is not
    JSON raises Unreadable (a stream event never fails the stream)."""
    holder = decode_answer(body, _Holder) if whole else decode_or_none(body, _Holder)
    return merge_usage(None, holder.usage) if holder and holder.usage else None


_MODEL_FIELD = model_field(b"model")
_STOP_REASON = re.compile(rb'"stop_reason"\s*:\s*"')
_TEXT_MARKERS = text_markers(b"text", b"thinking", b"partial_json")


def rename_model(payload: bytes, model_json: bytes) -> bytes:
    return rename_first(_MODEL_FIELD, payload, b"model", model_json)


class MessagesStreamTap(SseTap):
    """Passes Anthropic SSE through: renames the model in message_start, tracks cumulative usage."""

    def __init__(self, public_model: str, drop_usage_chunk: bool = False) -> None:
        super().__init__()
        self._model_json = msgspec.json.encode(public_model)

    def _event(self, event: bytes) -> bytes:
        head, _, data = event.partition(b"\ndata:")
        if not data:
            return event
        if b"content_block_delta" in head:
            self.text_bytes += quoted_lengths(data, _TEXT_MARKERS)
        elif b"message_start" in head:
            start = decode_or_none(data, _Start)
            if start and start.message.usage:   # its output count is not final: message_delta's is
                self.start_usage = merge_usage(None, start.message.usage)
            return head + b"\ndata: " + rename_model(data.lstrip(), self._model_json)
        elif b"message_delta" in head:
            holder = decode_or_none(data, _Holder)
            if holder and holder.usage:
                self.usage = merge_usage(self.usage or self.start_usage, holder.usage)
            if _STOP_REASON.search(data):
                self.finished = True
        elif b"message_stop" in head:
            self.done = True
            if not self.finished:   # no stop reason read: hold it back, the client gets an error event
                return b""
        elif head.endswith(b"error"):
            self.errored = True
        return event
