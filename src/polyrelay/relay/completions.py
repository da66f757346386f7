"""The "completions" operation: OpenAI's legacy `POST /v1/completions`, billed exactly as chat.

An OpenAI channel passes it through to its /completions when the upstream model is one its
`completions` setting lists (by default OpenAI's completion-only models, config.DEFAULT_COMPLETION_MODELS);
for any other model, and on every other kind, it is converted: the prompt becomes one user message
of a chat-like request in the channel's protocol, and the answer comes back as `text_completion`
choices (protocols/openai_completions). Errors are OpenAI's; the log's surface is
`openai_chat:completions`."""

from __future__ import annotations

import msgspec

from polyrelay.billing.estimate import estimated_usage
from polyrelay.billing.ledger import Reservation
from polyrelay.billing.prices import Price
from polyrelay.channels import Channel
from polyrelay.errors import GatewayError
from polyrelay.protocols import Unreadable, openai_completions
from polyrelay.relay import convert_path, generate
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.meter import Meter
from polyrelay.relay.operation import Job, Operation
from polyrelay.relay.replies import Reply, StreamReply
from polyrelay.relay.streaming import first_chunk, relay_stream
from polyrelay.store.keys import KeyRecord
from polyrelay.upstream.call import open_upstream, read_all


async def _reserve(gw: Gateway, key: KeyRecord, price: Price | None, job: Job) -> Reservation:
    """As a generation's, with the output limit the client gave or the endpoint's default of 16 (the
    peek's `max_output` is never None); on a key with a finite balance that default is also written
    into a passed-through body, so no upstream's own default can cost more than was held."""
    reservation = await generate.reserve(gw, key, price, job)
    peek = job.peek
    if key.quota_micros is not None and "max_tokens" not in peek.top:
        peek.upstream_max_output = peek.max_output
    return reservation


async def _converted(gw: Gateway, job: Job, channel: Channel, meter: Meter) -> Reply | StreamReply:
    return await convert_path.convert(gw, job, channel, meter, openai_completions)


async def _openai(gw: Gateway, job: Job, channel: Channel, meter: Meter) -> Reply | StreamReply:
    """An OpenAI channel: its /completions for the models it lists there, else converted to chat."""
    peek = job.peek
    upstream_model = meter.upstream_model or peek.model
    if not channel.completes_natively(upstream_model):
        return await _converted(gw, job, channel, meter)
    protocol = job.surface.protocol   # the surface speaks the channel's protocol: its errors and usage
    unchanged = (upstream_model == peek.model and (not peek.stream or peek.include_usage)
                 and peek.upstream_max_output is None)
    body = job.body if unchanged else openai_completions.upstream_body(peek, upstream_model,
                                                                        channel.config.stream_options)
    resp = await open_upstream(gw.http, channel, upstream_model, body, peek.stream, protocol.parse_error,
                               url=channel.url("completions", upstream_model, peek.stream))
    if not peek.stream:
        data = await read_all(resp, channel)
        meter.first_byte()
        try:
            usage = protocol.fastpath.usage_of(data, whole=True)
        except Unreadable:
            raise GatewayError(502, "upstream", f"upstream channel '{channel.name}' answered with a body that is "
                               "not JSON", retryable=True) from None
        await meter.succeed(usage or estimated_usage(job.body, len(data) // 2))
        return Reply(resp.status, protocol.fastpath.rename_model(data, msgspec.json.encode(peek.model)))
    first = await first_chunk(resp, channel)
    meter.first_byte()
    tap = openai_completions.CompletionStreamTap(peek.model, drop_usage_chunk=not peek.include_usage)
    return StreamReply(relay_stream(resp, first, tap, job.body, meter, channel, protocol.render_stream_error))


COMPLETIONS = Operation("completions", _reserve, fast=_openai, convert=_converted, log_suffix=":completions")

__all__ = ["COMPLETIONS"]
