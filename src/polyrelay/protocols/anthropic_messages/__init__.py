"""Anthropic Messages: wire details, requests, responses, streams, errors, count_tokens and the fast path."""

from __future__ import annotations

from polyrelay.protocols.anthropic_messages import fastpath
from polyrelay.protocols.anthropic_messages.errors import parse_error, render_error, render_stream_error
from polyrelay.protocols.anthropic_messages.fastpath import MessagesStreamTap as StreamTap
from polyrelay.protocols.anthropic_messages.request import (
    COUNT_TOKENS_FIELD,
    count_tokens_body,
    parse_count_tokens_request,
    parse_request,
    render_count_tokens_request,
    render_count_tokens_response,
    render_request,
    tool_name,
)
from polyrelay.protocols.anthropic_messages.response import parse_response, render_response
from polyrelay.protocols.anthropic_messages.stream import StreamDecoder, StreamEncoder
from polyrelay.protocols.anthropic_messages.wire import usage_from

NAME = "anthropic_messages"
INLINE_MEDIA: frozenset[str] = frozenset()
MODEL_IN_URL = False
THINKING_ALIAS = True   # `claude-...-thinking`: the base model with thinking on (routing/aliases.py)

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
    "fastpath",
    "parse_count_tokens_request",
    "parse_error",
    "parse_request",
    "parse_response",
    "render_count_tokens_request",
    "render_count_tokens_response",
    "render_error",
    "render_request",
    "render_response",
    "render_stream_error",
    "tool_name",
    "usage_from",
]
