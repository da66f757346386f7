"""The Gemini generateContent fast path: the model lives in the URL, so the body passes unchanged."""

from __future__ import annotations

import re

import msgspec

from polyrelay import ir
from polyrelay.protocols.passthrough import (
    ModelRenamer, RequestPeek, SseTap, decode_or_none, decode_top, model_field, quoted_lengths, rename_first,
)


class _GenerationConfig(msgspec.Struct):
    maxOutputTokens: int | None = None
    max_output_tokens: int | None = None
    candidateCount: int | None = None
    candidate_count: int | None = None


def peek_request(body: bytes, model: str, stream: bool) -> RequestPeek:
    top = decode_top(body)
    max_output, n = None, 1
    raw = top.get("generationConfig") or top.get("generation_config")
    if raw is not None:
        try:
            cfg = msgspec.json.decode(raw, type=_GenerationConfig | None)
        except msgspec.ValidationError:
            cfg = None  # the converter or the upstream will say what is wrong
        if cfg is not None:
            max_output = cfg.maxOutputTokens or cfg.max_output_tokens
            n = cfg.candidateCount or cfg.candidate_count or 1
    return RequestPeek(top, model, stream, True, max_output, max(1, n))


def upstream_body(peek: RequestPeek, upstream_model: str, force_usage: bool = True) -> bytes:
    return msgspec.json.encode(peek.top)


class _UsageMetadata(msgspec.Struct):
    promptTokenCount: int = 0
    candidatesTokenCount: int = 0
    thoughtsTokenCount: int = 0
    cachedContentTokenCount: int = 0
    toolUsePromptTokenCount: int = 0


class _Holder(msgspec.Struct):
    usageMetadata: _UsageMetadata | None = None


def _to_ir(u: _UsageMetadata) -> ir.Usage:
    # thoughts are not part of candidatesTokenCount: add them, or reasoning goes unbilled
    return ir.Usage(input_tokens=u.promptTokenCount + u.toolUsePromptTokenCount,
                    output_tokens=u.candidatesTokenCount + u.thoughtsTokenCount,
                    cache_read_tokens=u.cachedContentTokenCount, reasoning_tokens=u.thoughtsTokenCount)


def usage_of(body: bytes) -> ir.Usage | None:
    holder = decode_or_none(body, _Holder)
    return _to_ir(holder.usageMetadata) if holder and holder.usageMetadata else None


_MODEL_FIELD = model_field(b"modelVersion")
_FINISH = re.compile(rb'"finishReason"\s*:\s*"')
_TEXT_MARKERS = (b'"text":"',)


def rename_model(payload: bytes, model_json: bytes) -> bytes:
    return rename_first(_MODEL_FIELD, payload, b"modelVersion", model_json)


class GeminiStreamTap(SseTap):
    """Passes Gemini SSE (`data: <GenerateContentResponse>` only) through, tracking usage."""

    def __init__(self, public_model: str, drop_usage_chunk: bool = False) -> None:
        super().__init__()
        self._rename = ModelRenamer(_MODEL_FIELD, b"modelVersion", public_model)

    def _event(self, event: bytes) -> bytes:
        if not event.startswith(b"data:"):
            return b""  # google-genai fails on anything but data lines
        payload = event[5:].lstrip()
        if payload.startswith(b'{"error"'):
            self.errored = True
            return event
        if b'"usageMetadata"' in payload:
            usage = usage_of(payload)
            if usage is not None:
                self.usage = usage
        if _FINISH.search(payload):
            self.finished = True
        self.text_bytes += quoted_lengths(payload, _TEXT_MARKERS)
        return b"data: " + self._rename(payload)
