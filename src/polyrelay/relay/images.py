"""The "images" and "image_edits" operations: image generation and editing (the OpenAI images API,
and Gemini's generateContent asking image models for IMAGE output), billed per image or per token
(billing/images.py).

Same protocol on both sides, the client's body passes through (a multipart edit with only its model
field re-emitted, sent as views of the client's bytes); otherwise the request is converted through
the neutral form of protocols/images (one upstream call per image asked of a Gemini image model).
An answer with no image is a failure and costs nothing."""

from __future__ import annotations

import asyncio

import msgspec

from polyrelay import ir
from polyrelay.billing.images import reserve_micros, settled_micros
from polyrelay.billing.ledger import Reservation
from polyrelay.billing.prices import Price
from polyrelay.channels import Channel
from polyrelay.errors import GatewayError
from polyrelay.protocols.images import CHAT, SIDES, ImagePeek, Outgoing
from polyrelay.protocols.images.call import combine
from polyrelay.protocols.registry import PROTOCOLS
from polyrelay.relay.convert_path import DROPPED_HEADER, describe_losses, header_value
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.meter import Meter
from polyrelay.relay.operation import Job, Operation
from polyrelay.relay.replies import Reply
from polyrelay.store.keys import KeyRecord
from polyrelay.upstream.call import open_upstream, read_all


def _peek(job: Job) -> ImagePeek:
    peek = job.peek
    assert isinstance(peek, ImagePeek), "image jobs carry an ImagePeek"
    return peek


async def _reserve(gw: Gateway, key: KeyRecord, price: Price | None, job: Job) -> Reservation:
    peek = _peek(job)
    image = peek.image
    amount = max(1, reserve_micros(price, peek.n, image.size, image.quality, peek.prompt_tokens))
    if key.quota_micros is None:
        return await gw.ledger.reserve(key, amount)
    return await gw.ledger.reserve(key, amount, what=lambda: f" ({peek.n} image{'s' if peek.n > 1 else ''})")


async def _call(gw: Gateway, channel: Channel, upstream_model: str, out: Outgoing) -> bytes:
    parse_error = PROTOCOLS[channel.protocol].parse_error
    headers = {"Content-Type": out.content_type} if out.content_type else None
    resp = await open_upstream(gw.http, channel, upstream_model, out.body, False, parse_error,
                               url=channel.url(out.operation, upstream_model, False), extra_headers=headers)
    return await read_all(resp, channel)


async def _all(gw: Gateway, channel: Channel, upstream_model: str,
               outgoing: list[Outgoing]) -> list[asyncio.Task[bytes]]:
    """The calls at once; the first to fail cancels the others and is raised as it is (not as an
    exception group: the pipeline reads its status and whether another channel may be tried)."""
    if len(outgoing) == 1:
        task = asyncio.ensure_future(_call(gw, channel, upstream_model, outgoing[0]))
        await task
        return [task]
    try:
        async with asyncio.TaskGroup() as calls:
            tasks = [calls.create_task(_call(gw, channel, upstream_model, out)) for out in outgoing]
    except BaseExceptionGroup as group:
        raise _first(group) from None
    return tasks


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first(exc)
        if isinstance(exc, GatewayError):
            return exc
    return group.exceptions[0]


def _unreadable(channel: Channel) -> GatewayError:
    return GatewayError(502, "upstream", f"upstream channel '{channel.name}' sent an images answer that cannot "
                        "be read", retryable=True)


async def _passthrough(gw: Gateway, job: Job, channel: Channel, meter: Meter) -> Reply | None:
    peek = _peek(job)
    if peek.client is not None:   # not the images API (chat to an image model): converted
        return await _converted(gw, job, channel, meter)
    side = SIDES.get(job.surface.name)
    if side is None:
        return None
    upstream_model = meter.upstream_model or peek.model
    data = await _call(gw, channel, upstream_model, side.passthrough(peek, job.body, upstream_model))
    meter.first_byte()
    tally = side.tally(data)
    if tally is None:
        raise _unreadable(channel)
    image = peek.image
    cost = settled_micros(meter.price, tally.images, tally.size or image.size, tally.quality or image.quality,
                          tally.usage)
    await meter.succeed(tally.usage or ir.Usage(), cost=cost)
    if upstream_model != peek.model:
        data = job.surface.protocol.fastpath.rename_model(data, msgspec.json.encode(peek.model))
    return Reply(200, data)


async def _converted(gw: Gateway, job: Job, channel: Channel, meter: Meter) -> Reply | None:
    peek = _peek(job)
    client, upstream = peek.client or SIDES.get(job.surface.name), SIDES.get(channel.protocol)
    if client is None or upstream is None:
        return None
    call = peek.call
    if call is None:
        call = peek.call = client.parse(peek, job.body)
    upstream_model = meter.upstream_model or peek.model
    outgoing, losses = upstream.requests(call, upstream_model)
    headers = []
    if losses:
        meter.dropped = describe_losses(losses)
        headers.append((DROPPED_HEADER, header_value(meter.dropped)))
    tasks = await _all(gw, channel, upstream_model, outgoing)
    meter.first_byte()
    try:
        result = combine([upstream.read(task.result()) for task in tasks], call)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        raise _unreadable(channel) from None
    if not result.images:
        said = f": {result.text[:300]}" if result.text else ""
        raise GatewayError(400, "invalid_request", f"the model generated no image{said}")
    cost = settled_micros(meter.price, len(result.images), result.size, result.quality or call.quality,
                          result.usage)
    await meter.succeed(result.usage or ir.Usage(), cost=cost)
    if peek.stream:   # only chat streams (the images routes refuse `stream`)
        return Reply(200, CHAT.render_stream(result, call, peek.include_usage), content_type="text/event-stream",
                     headers=headers)
    return Reply(200, client.render(result, call), headers=headers)


IMAGES = Operation("images", _reserve, fast=_passthrough, convert=_converted, log_suffix=":images")
IMAGE_EDITS = Operation("image_edits", _reserve, fast=_passthrough, convert=_converted, log_suffix=":image_edits")

__all__ = ["IMAGES", "IMAGE_EDITS"]
