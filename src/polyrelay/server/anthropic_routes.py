"""Anthropic surface: `POST /v1/messages` and `POST /v1/messages/count_tokens`."""

from __future__ import annotations

from polyrelay.protocols import anthropic_messages
from polyrelay.relay.count_tokens import COUNT_TOKENS, parse_request, peek_of
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.pipeline import relay
from polyrelay.relay.replies import Reply, StreamReply
from polyrelay.relay.surfaces import ANTHROPIC_MESSAGES
from polyrelay.server.asgi import Scope, header
from polyrelay.server.keys import anthropic_key
from polyrelay.server.route import GENERATION_BODY, Params, Route
from polyrelay.store.keys import KeyRecord


async def messages(gw: Gateway, scope: Scope, body: bytes, key: KeyRecord, params: Params) -> Reply | StreamReply:
    peek = anthropic_messages.fastpath.peek_request(body)
    beta = header(scope, b"anthropic-beta")
    if beta:   # beta features (1M context, interleaved thinking, ...) for Anthropic channels
        peek.forward_headers = {"anthropic-beta": beta}
    return await relay(gw, ANTHROPIC_MESSAGES, key, body, peek)


async def count_tokens(gw: Gateway, scope: Scope, body: bytes, key: KeyRecord, params: Params) -> Reply | StreamReply:
    """Asked natively of the model's Anthropic or Gemini channel; estimated locally otherwise."""
    req = parse_request(ANTHROPIC_MESSAGES, body)
    beta = header(scope, b"anthropic-beta")
    peek = peek_of(req, {"anthropic-beta": beta} if beta else None)
    return await relay(gw, ANTHROPIC_MESSAGES, key, body, peek, COUNT_TOKENS, parsed=req)


ROUTES = [
    Route("POST", "/v1/messages", messages, key=anthropic_key, body_limit=GENERATION_BODY),
    Route("POST", "/v1/messages/count_tokens", count_tokens, key=anthropic_key, body_limit=GENERATION_BODY),
]
