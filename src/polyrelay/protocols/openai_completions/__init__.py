"""OpenAI's legacy Completions API (`POST /v1/completions`, `client.completions.create`): a client
surface, not a protocol any channel kind speaks, so it is not in `PROTOCOLS`; relay/completions.py
serves it (docs/conversion.md, "Legacy completions").

    client body --peek_request--> RequestPeek          (reservation, routing)
      OpenAI channel, model in its `completions`:  upstream_body --> /completions, answer tapped
      any other channel:  parse_request --> ir.Request (one user message) --> the channel's protocol,
                          its answer --> render_response / StreamEncoder --> `text_completion`

Errors are OpenAI's (the route renders them with openai_chat's errors)."""

from __future__ import annotations

from polyrelay.protocols.openai_chat.errors import render_stream_error
from polyrelay.protocols.openai_completions import chat
from polyrelay.protocols.openai_completions.fastpath import CompletionStreamTap, upstream_body
from polyrelay.protocols.openai_completions.request import DEFAULT_MAX_TOKENS, parse_request, peek_request
from polyrelay.protocols.openai_completions.response import render_response
from polyrelay.protocols.openai_completions.stream import StreamEncoder

NAME = "openai_completions"
MODEL_IN_URL = False   # the model and the stream flag are in the body

__all__ = ["DEFAULT_MAX_TOKENS", "MODEL_IN_URL", "NAME", "CompletionStreamTap", "StreamEncoder", "chat",
           "parse_request", "peek_request", "render_response", "render_stream_error", "upstream_body"]
