"""Anthropic surface: `POST /v1/messages` and `POST /v1/messages/count_tokens`."""

from __future__ import annotations

from polyrelay.errors import GatewayError
from polyrelay.protocols import anthropic_messages_passthrough
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.pipeline import relay
from polyrelay.relay.replies import Reply, StreamReply
from polyrelay.relay.surfaces import ANTHROPIC_MESSAGES
from polyrelay.relay.upstream import open_upstream, read_all
from polyrelay.server.asgi import Scope, header
from polyrelay.server.keys import anthropic_key


async def messages(gw: Gateway, scope: Scope, body: bytes) -> Reply | StreamReply:
    key = await gw.keys.authenticate(anthropic_key(scope))
    peek = anthropic_messages_passthrough.peek_request(body)
    beta = header(scope, b"anthropic-beta")
    if beta:   # beta features (1M context, interleaved thinking, ...) for Anthropic channels
        peek.forward_headers = {"anthropic-beta": beta}
    return await relay(gw, ANTHROPIC_MESSAGES, key, body, peek)


async def count_tokens(gw: Gateway, scope: Scope, body: bytes) -> Reply:
    """Asked of an Anthropic channel natively when one serves the model; estimated locally otherwise."""
    key = await gw.keys.authenticate(anthropic_key(scope))
    protocol = ANTHROPIC_MESSAGES.protocol
    req = protocol.parse_count_tokens_request(body)
    gw.authorize_model(key, req.model)
    for channel in gw.router.candidates(req.model):
        if channel.protocol != ANTHROPIC_MESSAGES.name:
            continue
        upstream_model = channel.upstream_model(req.model)
        try:
            resp = await open_upstream(gw.http, channel, upstream_model,
                                       protocol.render_count_tokens_request(req, upstream_model), False,
                                       protocol.parse_error, url=channel.base_url + "/v1/messages/count_tokens")
            data = await read_all(resp, channel)
        except GatewayError as err:
            if err.retryable:
                continue
            raise
        return Reply(200, data)
    from polyrelay.tokens import estimate_request_tokens

    return Reply(200, protocol.render_count_tokens_response(estimate_request_tokens(req)))


ROUTES = [
    ("POST", "/v1/messages", messages, True),
    ("POST", "/v1/messages/count_tokens", count_tokens, True),
]
