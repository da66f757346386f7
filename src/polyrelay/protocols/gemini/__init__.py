"""Gemini generateContent: wire details, requests, responses, streams, errors, countTokens and the fast path."""

from __future__ import annotations

from polyrelay.protocols.gemini import fastpath
from polyrelay.protocols.gemini.errors import parse_error, render_error, render_stream_error
from polyrelay.protocols.gemini.fastpath import GeminiStreamTap as StreamTap
from polyrelay.protocols.gemini.request import (
    COUNT_TOKENS_FIELD,
    count_tokens_body,
    parse_count_tokens_request,
    parse_request,
    render_count_tokens_response,
    render_request,
    tool_name,
)
from polyrelay.protocols.gemini.response import parse_response, render_response
from polyrelay.protocols.gemini.stream import StreamDecoder, StreamEncoder
from polyrelay.protocols.gemini.wire import SKIP_SIGNATURE, _signature_from_client, client_signature, usage_from

NAME = "gemini"
INLINE_MEDIA = frozenset({"image", "video", "audio", "file"})  # inlineData only: no URLs
MODEL_IN_URL = True      # generateContent / streamGenerateContent: the model and stream flag are in the path
THINKING_ALIAS = False

__all__ = [
    "COUNT_TOKENS_FIELD",
    "INLINE_MEDIA",
    "MODEL_IN_URL",
    "NAME",
    "SKIP_SIGNATURE",
    "THINKING_ALIAS",
    "StreamDecoder",
    "StreamEncoder",
    "StreamTap",
    "_signature_from_client",
    "client_signature",
    "count_tokens_body",
    "fastpath",
    "parse_count_tokens_request",
    "parse_error",
    "parse_request",
    "parse_response",
    "render_count_tokens_response",
    "render_error",
    "render_request",
    "render_response",
    "render_stream_error",
    "tool_name",
    "usage_from",
]
