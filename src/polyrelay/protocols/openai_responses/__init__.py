"""OpenAI Responses (`POST /v1/responses`): wire details, requests, responses, streams, errors,
input token counts and the fast path."""

from __future__ import annotations

from polyrelay.protocols.openai_responses import fastpath
from polyrelay.protocols.openai_responses.errors import parse_error, render_error, render_stream_error
from polyrelay.protocols.openai_responses.fastpath import ResponsesStreamTap as StreamTap
from polyrelay.protocols.openai_responses.request import (
    COUNT_TOKENS_FIELD,
    client_tools,
    count_tokens_body,
    expanded_from,
    parse_count_tokens_request,
    parse_request,
    render_count_tokens_response,
    render_request,
    tool_name,
)
from polyrelay.protocols.openai_responses.response import parse_response, render_response
from polyrelay.protocols.openai_responses.stream import StreamDecoder, StreamEncoder
from polyrelay.protocols.openai_responses.wire import usage_from

NAME = "openai_responses"
INLINE_MEDIA: frozenset[str] = frozenset()
MODEL_IN_URL = False
THINKING_ALIAS = False

__all__ = [
    "COUNT_TOKENS_FIELD", "INLINE_MEDIA", "MODEL_IN_URL", "NAME", "THINKING_ALIAS", "StreamDecoder", "StreamEncoder",
    "StreamTap", "client_tools", "count_tokens_body", "expanded_from", "fastpath", "parse_count_tokens_request",
    "parse_error", "parse_request", "parse_response", "render_count_tokens_response", "render_error", "render_request",
    "render_response", "render_stream_error", "tool_name", "usage_from",
]
