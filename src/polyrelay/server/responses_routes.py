"""OpenAI Responses surface: `POST /v1/responses` and `POST /v1/responses/input_tokens` (Bearer key,
OpenAI's error shape). Stored responses join here: `previous_response_id` is expanded before the
relay and the answer remembered after it (relay/stored_responses.py, docs/responses.md); GET and
DELETE by id are in stored_responses_routes.py."""

from __future__ import annotations

import msgspec

from polyrelay.protocols import openai_responses
from polyrelay.relay import stored_responses
from polyrelay.relay.count_tokens import COUNT_TOKENS, parse_request, peek_of
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.pipeline import relay
from polyrelay.relay.replies import Reply, StreamReply
from polyrelay.relay.surfaces import OPENAI_RESPONSES
from polyrelay.server.asgi import Scope
from polyrelay.server.keys import bearer
from polyrelay.server.route import GENERATION_BODY, Params, Route
from polyrelay.store.keys import KeyRecord

# client headers an OpenAI Responses channel gets as they came (Codex's session and turn state);
# other channels never see them
_FORWARDED = (b"originator", b"session-id", b"session_id", b"thread-id", b"x-client-request-id", b"openai-beta")


def _forward_headers(scope: Scope) -> dict[str, str] | None:
    found = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
             if k in _FORWARDED or k.startswith(b"x-codex-")}
    return found or None


async def create(gw: Gateway, scope: Scope, body: bytes, key: KeyRecord, params: Params) -> Reply | StreamReply:
    peek = openai_responses.fastpath.peek_request(body)
    top = peek.top   # the client's own request: its `store`, and what is remembered
    expanded = await stored_responses.expand(gw, key, body, stored_responses.responses_channel_may_serve(gw), top)
    if expanded is not body:   # the earlier turns went into `input`
        peek = openai_responses.fastpath.peek_request(expanded)
        previous = top.get("previous_response_id") if top is not None else None
        if previous is not None:   # a converted answer repeats it (request_echo)
            openai_responses.expanded_from(msgspec.json.decode(previous, type=str))
    peek.forward_headers = _forward_headers(scope)
    return stored_responses.remember(gw, key, body, await relay(gw, OPENAI_RESPONSES, key, expanded, peek), top)


async def input_tokens(gw: Gateway, scope: Scope, body: bytes, key: KeyRecord, params: Params) -> Reply | StreamReply:
    """Asked of the model's Responses, Anthropic or Gemini channel; estimated locally otherwise. A
    `previous_response_id` counts the whole conversation, as the answer would see it."""
    passthrough = stored_responses.responses_channel_may_serve(gw, COUNT_TOKENS.name)
    body = await stored_responses.expand(gw, key, body, passthrough)
    req = parse_request(OPENAI_RESPONSES, body)
    return await relay(gw, OPENAI_RESPONSES, key, body, peek_of(req), COUNT_TOKENS, parsed=req)


ROUTES = [
    Route("POST", "/v1/responses", create, key=bearer, body_limit=GENERATION_BODY),
    Route("POST", "/v1/responses/input_tokens", input_tokens, key=bearer, body_limit=GENERATION_BODY),
]
