"""OpenAI Chat Completions: wire details, requests, responses, streams, errors and the fast path."""

from __future__ import annotations

from polyrelay.protocols.openai_chat import fastpath
from polyrelay.protocols.openai_chat.errors import error_body, parse_error, render_error, render_stream_error
from polyrelay.protocols.openai_chat.fastpath import ChatStreamTap as StreamTap
from polyrelay.protocols.openai_chat.request import (
    COUNT_TOKENS_FIELD,
    count_tokens_body,
    parse_count_tokens_request,
    parse_request,
    render_count_tokens_response,
    render_request,
    tool_name,
)
from polyrelay.protocols.openai_chat.response import parse_response, render_response
from polyrelay.protocols.openai_chat.stream import StreamDecoder, StreamEncoder
from polyrelay.protocols.openai_chat.wire import usage_from_chat as usage_from

NAME = "openai_chat"
INLINE_MEDIA: frozenset[str] = frozenset()  # media the upstream must get as bytes, not URLs
MODEL_IN_URL = False                         # the model and the stream flag are in the body
THINKING_ALIAS = False                       # `<model>-thinking` names are not this protocol's

__all__ = [
    "COUNT_TOKENS_FIELD",
    "INLINE_MEDIA",
    "MODEL_IN_URL",
    "NAME",
    "THINKING_ALIAS",
    "StreamDecoder",
    "StreamEncoder",
    "StreamTap",
    "count_tokens_body",
    "error_body",
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
