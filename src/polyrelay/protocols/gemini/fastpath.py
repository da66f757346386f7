"""The Gemini generateContent fast path: the model lives in the URL, so the body passes unchanged."""

from __future__ import annotations

import re

import msgspec

from polyrelay import ir
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
    rename_first,
    text_markers,
    with_field,
)
from polyrelay.protocols.gemini.wire import UsageMetadata, usage_to_ir


def peek_request(body: bytes, model: str, stream: bool, alt: str | None = None) -> RequestPeek:
    """`model` and `stream` come from the path (`models/{model}:streamGenerateContent`); a stream is
    SSE with `?alt=sse`, else one JSON array that arrives piece by piece."""
    top = decode_top(body)
    max_output, n = limits.gemini(limits.RawFields(top))
    peek = RequestPeek(top, model, stream, True, max_output, n or 1)
    if stream and alt != "sse":
        peek.framing = "json"
    return peek


def upstream_body(peek: RequestPeek, upstream_model: str, force_usage: bool = True) -> bytes:
    """The body as it came (the model is in the URL), with the relay's output limit when it set one."""
    top = peek.top
    if peek.upstream_max_output is not None:
        name = next((n for n in limits.GEMINI_CONFIG if top.get(n) is not None), limits.GEMINI_CONFIG[0])
        config = field(top, name, dict, {})
        top = with_field(top, name, {**config, "maxOutputTokens": peek.upstream_max_output})
    return msgspec.json.encode(top)


class _Holder(msgspec.Struct):
    usageMetadata: UsageMetadata | None = None


_SEARCHED = re.compile(rb'"webSearchQueries"\s*:\s*\[\s*"')   # grounding that ran a query


def usage_of(body: bytes, whole: bool = False) -> ir.Usage | None:
    """The usage of an answer or a stream event, None when it has none. A `whole` answer that is not
    JSON raises Unreadable (a stream event never fails the stream). A grounded answer counts one
    search (Google bills a grounded prompt once)."""
    holder = decode_answer(body, _Holder) if whole else decode_or_none(body, _Holder)
    if not holder or not holder.usageMetadata:
        return None
    usage = usage_to_ir(holder.usageMetadata)
    usage.web_searches = int(whole and _SEARCHED.search(body) is not None)
    return usage


_MODEL_FIELD = model_field(b"modelVersion")
_FINISH = re.compile(rb'"finishReason"\s*:\s*"')
_TEXT_MARKERS = text_markers(b"text")


def rename_model(payload: bytes, model_json: bytes) -> bytes:
    return rename_first(_MODEL_FIELD, payload, b"modelVersion", model_json)


class GeminiStreamTap(SseTap):
    """Passes Gemini SSE (`data: <GenerateContentResponse>` only) through, tracking usage."""

    def __init__(self, public_model: str, drop_usage_chunk: bool = False) -> None:
        super().__init__()
        self._rename = ModelRenamer(_MODEL_FIELD, b"modelVersion", public_model)
        self._searched = False

    def _event(self, event: bytes) -> bytes:
        if not event.startswith(b"data:"):
            return b""  # google-genai fails on anything but data lines
        payload = event[5:].lstrip()
        if payload.startswith(b'{"error"'):
            self.errored = True
            return event
        if not self._searched and b'"webSearchQueries"' in payload and _SEARCHED.search(payload):
            self._searched = True
            if self.usage is not None:
                self.usage.web_searches = 1
        if b'"usageMetadata"' in payload:
            usage = usage_of(payload)
            if usage is not None:
                usage.web_searches = int(self._searched)
                self.usage = usage
        if _FINISH.search(payload):
            self.finished = True
        self.text_bytes += quoted_lengths(payload, _TEXT_MARKERS)
        return b"data: " + self._rename(payload)
