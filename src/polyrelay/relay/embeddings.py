"""The "embeddings" operation: OpenAI's `POST /v1/embeddings`, billed on input tokens at the model's
`input` price. OpenAI channels take the body as it is (model renamed); Gemini channels get it
converted to `batchEmbedContents` (protocols/openai_embeddings). When the upstream reports no input
count (Gemini never does), the inputs are counted with the offline tokenizer (tokens.py; a token-id
input counts its ids) and the log row says `usage_estimated`. The log's surface is
`openai_chat:embeddings`."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from polyrelay import ir
from polyrelay.billing.estimate import estimate_prompt_tokens
from polyrelay.billing.estimate import estimated_usage as estimated_body_usage
from polyrelay.billing.ledger import Reservation
from polyrelay.billing.prices import Price, max_cost_micros
from polyrelay.channels import Channel
from polyrelay.errors import GatewayError
from polyrelay.protocols import Unreadable, openai_embeddings
from polyrelay.protocols.registry import PROTOCOLS
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.meter import Meter
from polyrelay.relay.operation import Job, Operation
from polyrelay.relay.replies import Reply
from polyrelay.store.keys import KeyRecord
from polyrelay.upstream.call import open_upstream, read_all


async def _reserve(gw: Gateway, key: KeyRecord, price: Price | None, job: Job) -> Reservation:
    """Every input token at the input price, counted generously from the body's size (no output)."""
    tokens = estimate_prompt_tokens(job.body)
    return await gw.ledger.reserve(key, max(1, max_cost_micros(price, tokens, 0)),
                                   what=lambda: f" (about {tokens:,} input tokens to embed)")


def _count(inputs: list[str] | list[list[int]]) -> int:
    from polyrelay.tokens import estimate_text_tokens

    return sum(len(v) if isinstance(v, list) else estimate_text_tokens(v) for v in inputs)


_INLINE_CHARS = 8192   # counted on the loop below this (about 20-40 µs once the table is loaded)


async def estimated_usage(inputs: list[str] | list[list[int]]) -> ir.Usage:
    """The inputs' tokens counted with the offline tokenizer: in a thread when the table must load
    first (~250 ms) or the text is long, so the event loop never stalls on it."""
    from polyrelay import tokens

    if tokens.table_loaded() and sum(len(v) for v in inputs) <= _INLINE_CHARS:
        return ir.Usage(input_tokens=_count(inputs), estimated=True)
    return ir.Usage(input_tokens=await asyncio.to_thread(_count, inputs), estimated=True)


def _inputs(job: Job) -> list[str] | list[list[int]]:
    raw: Any = msgspec.json.decode(job.peek.top["input"])
    return openai_embeddings.input_texts(raw)


async def _openai(gw: Gateway, job: Job, channel: Channel, meter: Meter) -> Reply:
    """Same protocol: the body passes through; usage from the answer, or counted when it has none."""
    peek = job.peek
    upstream_model = meter.upstream_model or peek.model
    protocol = job.surface.protocol
    body = job.body if upstream_model == peek.model else openai_embeddings.upstream_body(peek, upstream_model)
    resp = await open_upstream(gw.http, channel, upstream_model, body, False, protocol.parse_error,
                               url=channel.url("embeddings", upstream_model, False))
    data = await read_all(resp, channel)
    meter.first_byte()
    try:
        usage = openai_embeddings.answer.usage_of(data)
    except Unreadable:
        raise GatewayError(502, "upstream", f"upstream channel '{channel.name}' answered with a body that is "
                           "not JSON", retryable=True) from None
    if usage is None or not usage.input_tokens:
        try:
            inputs = _inputs(job)
        except GatewayError:   # an input the upstream took though OpenAI would not: its size, then
            usage = estimated_body_usage(job.body, 0)
        else:
            usage = await estimated_usage(inputs)
    await meter.succeed(usage)
    return Reply(resp.status, openai_embeddings.answer.rename_model(data, msgspec.json.encode(peek.model)))


async def _converted(gw: Gateway, job: Job, channel: Channel, meter: Meter) -> Reply | None:
    """Another kind's embed API (openai_embeddings.UPSTREAMS); None for a kind that has none."""
    upstream = openai_embeddings.UPSTREAMS.get(channel.protocol)
    if upstream is None:
        return None
    peek = job.peek
    req = openai_embeddings.parse_request(job.body)
    upstream_model = meter.upstream_model or peek.model
    resp = await open_upstream(gw.http, channel, upstream_model, upstream.render_request(req, upstream_model), False,
                               PROTOCOLS[channel.protocol].parse_error,
                               url=channel.url("embeddings", upstream_model, False))
    data = await read_all(resp, channel)
    meter.first_byte()
    try:
        vectors, usage = upstream.parse_response(data, len(req.inputs))
    except GatewayError as err:
        raise GatewayError(502, "upstream", f"upstream channel '{channel.name}': {err.message}",
                           retryable=True) from None
    if usage is None:
        usage = await estimated_usage(req.inputs)
    await meter.succeed(usage)
    return Reply(200, openai_embeddings.render_response(vectors, peek.model, req.encoding_format, usage))


EMBEDDINGS = Operation("embeddings", _reserve, fast=_openai, convert=_converted, log_suffix=":embeddings")

__all__ = ["EMBEDDINGS", "estimated_usage"]
