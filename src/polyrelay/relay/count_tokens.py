"""count_tokens (Anthropic) and :countTokens (Gemini), for a client of either protocol: asked of the
first candidate channel that has a native counter (Anthropic or Gemini), whatever protocol the client
speaks; OpenAI-compatible channels have none. Retryable failures move on to the next candidate, and
with none left the count is estimated locally."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec

from polyrelay import ir
from polyrelay.channels import Channel
from polyrelay.errors import GatewayError, blame
from polyrelay.protocols.registry import PROTOCOLS
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.meter import Meter
from polyrelay.relay.replies import Reply
from polyrelay.relay.surfaces import Surface
from polyrelay.routing import aliases
from polyrelay.store.keys import KeyRecord
from polyrelay.upstream.call import open_upstream, read_all


def _number(data: bytes, field: str, channel: Channel) -> int:
    try:
        answer: Any = msgspec.json.decode(data)
        n = answer[field]
        if isinstance(n, int) and not isinstance(n, bool):
            return n
    except (msgspec.DecodeError, TypeError, KeyError):
        pass
    raise GatewayError(502, "upstream", f"upstream channel '{channel.name}' sent a token count that cannot be read",
                       retryable=True)


def parse_request(client: Surface, body: bytes) -> ir.Request:
    """The client's count_tokens body as IR; a malformed one is a 400 in the client's shape."""
    with blame("the request is malformed"):
        return client.protocol.parse_count_tokens_request(body)


def _estimate(req: ir.Request) -> int:
    from polyrelay.tokens import estimate_request_tokens

    with blame("the request is malformed"):
        return estimate_request_tokens(req)


async def count_tokens(gw: Gateway, client: Surface, key: KeyRecord, req: ir.Request, body: bytes,
                       forward_headers: dict[str, str] | None = None) -> Reply:
    """`req` is the client's request parsed (with its public model); the answer is in the client's shape.
    `forward_headers` (the client's, e.g. anthropic-beta) go only to channels of the client's protocol.

    Counting is free, but not for a key with nothing left (429, like a generation), and every count
    is logged (surface `<surface>:count_tokens`, cost 0)."""
    meter = Meter(gw.ledger, None, None, key, f"{client.name}:count_tokens", req.model, False, time.perf_counter())
    try:
        # 1 micro-dollar held and given back: refuses a key with no balance, at no store round trip
        # when this process already holds part of the key's quota
        meter.reservation = await gw.ledger.reserve(key, 1, what=" (counting tokens needs a balance)")
        reply = await _count(gw, client, req, body, forward_headers, meter)
    except GatewayError as err:
        meter.fail(err.status, err.message)
        raise
    except BaseException as exc:
        meter.fail(499 if isinstance(exc, asyncio.CancelledError) else 500, f"count failed: {type(exc).__name__}")
        raise
    meter.first_byte()
    await meter.succeed(ir.Usage())
    return reply


async def _count(gw: Gateway, client: Surface, req: ir.Request, body: bytes,
                 forward_headers: dict[str, str] | None, meter: Meter) -> Reply:
    for channel in gw.router.candidates(req.model):
        upstream = PROTOCOLS[channel.protocol]
        render = upstream.count_tokens_body
        if render is None:
            continue
        upstream_model = channel.upstream_model(req.model)
        if upstream.THINKING_ALIAS:
            upstream_model = aliases.thinking_base_model(req.model, upstream_model)
        same = channel.protocol == client.name
        meter.attempts += 1
        meter.channel, meter.upstream_model = channel.name, upstream_model
        try:
            with blame("the request cannot be converted"):
                up_body = render(req, upstream_model, body if same else None)
        except GatewayError:
            continue  # this channel cannot take the request as it is (e.g. media it cannot fetch)
        try:
            resp = await open_upstream(gw.http, channel, upstream_model, up_body, False,
                                       upstream.parse_error, url=channel.url("count_tokens", upstream_model, False),
                                       extra_headers=forward_headers if same else None)
            data = await read_all(resp, channel)
            if same:
                return Reply(200, data)
            count = _number(data, upstream.COUNT_TOKENS_FIELD, channel)
            return Reply(200, client.protocol.render_count_tokens_response(count))
        except GatewayError as err:
            if not err.retryable:
                raise
    # in a thread: the first count loads the tokenizer's tables (~250 ms), which must not stall the loop
    count = await asyncio.to_thread(_estimate, req)
    return Reply(200, client.protocol.render_count_tokens_response(count))
