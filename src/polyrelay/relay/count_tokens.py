"""The "count_tokens" operation: Anthropic's count_tokens and Gemini's :countTokens, for a client of
either protocol. Asked of the first candidate channel that can count natively (its `Capabilities`
list "count_tokens": Anthropic and Gemini kinds), whatever protocol the client speaks; retryable
failures move on to the next candidate, and with none left the count is estimated locally.

Counting is free, but not for a key with nothing left (429, like a generation), and every count is
logged (surface `<surface>:count_tokens`, cost 0)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from polyrelay import ir
from polyrelay.billing.ledger import Reservation
from polyrelay.billing.prices import Price
from polyrelay.channels import Channel
from polyrelay.errors import GatewayError, blame
from polyrelay.protocols import RequestPeek
from polyrelay.protocols.registry import PROTOCOLS
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.meter import Meter
from polyrelay.relay.operation import Job, Operation
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


def peek_of(req: ir.Request, forward_headers: dict[str, str] | None = None) -> RequestPeek:
    """The pipeline's view of a parsed count request: its model; never a stream. `forward_headers`
    (the client's, e.g. anthropic-beta) go only to channels of the client's protocol."""
    peek = RequestPeek({}, req.model, False, False, None, 1)
    peek.forward_headers = forward_headers
    return peek


async def _reserve(gw: Gateway, key: KeyRecord, price: Price | None, job: Job) -> Reservation:
    # 1 micro-dollar held and given back: refuses a key with no balance, at no store round trip
    # when this process already holds part of the key's quota
    return await gw.ledger.reserve(key, 1, what=" (counting tokens needs a balance)")


async def _native(gw: Gateway, job: Job, channel: Channel, meter: Meter) -> Reply | None:
    """The channel's own counter; the client's body as it is for a channel of the client's protocol."""
    req = job.parsed
    assert req is not None, "count_tokens jobs carry their parsed request"
    upstream = PROTOCOLS[channel.protocol]
    render = upstream.count_tokens_body
    if render is None:
        return None
    upstream_model = meter.upstream_model or req.model
    if upstream.THINKING_ALIAS:
        upstream_model = meter.upstream_model = aliases.thinking_base_model(req.model, upstream_model)
    client = job.surface
    same = channel.protocol == client.name
    try:
        with blame("the request cannot be converted"):
            up_body = render(req, upstream_model, job.body if same else None)
    except GatewayError:
        return None  # this channel cannot take the request as it is (e.g. media it cannot fetch)
    resp = await open_upstream(gw.http, channel, upstream_model, up_body, False,
                               upstream.parse_error, url=channel.url("count_tokens", upstream_model, False),
                               extra_headers=job.peek.forward_headers if same else None)
    data = await read_all(resp, channel)
    if same:
        return Reply(200, data)
    return Reply(200, client.protocol.render_count_tokens_response(_number(data, upstream.COUNT_TOKENS_FIELD, channel)))


def _estimate(req: ir.Request) -> int:
    from polyrelay.tokens import estimate_request_tokens

    with blame("the request is malformed"):
        return estimate_request_tokens(req)


async def _estimated(gw: Gateway, job: Job) -> Reply:
    assert job.parsed is not None, "count_tokens jobs carry their parsed request"
    # in a thread: the first count loads the tokenizer's tables (~250 ms), which must not stall the loop
    count = await asyncio.to_thread(_estimate, job.parsed)
    return Reply(200, job.surface.protocol.render_count_tokens_response(count))


COUNT_TOKENS = Operation("count_tokens", _reserve, fast=_native, convert=_native, billed=False,
                         fallback=_estimated, health=False, log_suffix=":count_tokens")

__all__ = ["COUNT_TOKENS", "parse_request", "peek_of"]
