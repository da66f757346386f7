"""`POST /v1/chat/completions`: authorize -> price -> reserve -> route -> call -> settle."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import msgspec

from polyrelay import ir
from polyrelay.billing.estimate import estimate_prompt_tokens
from polyrelay.billing.prices import max_cost_micros
from polyrelay.channels import Channel
from polyrelay.errors import GatewayError
from polyrelay.protocols import openai_chat
from polyrelay.protocols.openai_chat_passthrough import (
    ChatPeek, ChatStreamTap, peek_request, rename_model, upstream_body, usage_of,
)
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.meter import Meter
from polyrelay.relay.replies import Reply, StreamReply
from polyrelay.relay.upstream import open_upstream, transport_error
from polyrelay.store.keys import KeyRecord

SURFACE = "openai_chat"


async def relay_chat(gw: Gateway, key: KeyRecord, body: bytes) -> Reply | StreamReply:
    started = time.perf_counter()
    peek = peek_request(body)
    gw.authorize_model(key, peek.model)
    price = gw.prices.get(peek.model)
    max_output = peek.max_output or (price.max_output if price else 0)
    estimate = max_cost_micros(price, estimate_prompt_tokens(body), max_output * peek.n)
    reservation = await gw.ledger.reserve(key, estimate)
    meter = Meter(gw.ledger, reservation, price, key, SURFACE, peek.model, peek.stream, started)
    try:
        return await _try_candidates(gw, peek, body, meter)
    except GatewayError as err:
        meter.fail(err.status, err.message)
        raise
    except BaseException as exc:
        meter.fail(500, f"internal error: {type(exc).__name__}")
        raise


async def _try_candidates(gw: Gateway, peek: ChatPeek, body: bytes, meter: Meter) -> Reply | StreamReply:
    last: GatewayError | None = None
    for channel in gw.router.candidates(peek.model):
        meter.attempts += 1
        meter.channel = channel.name
        meter.upstream_model = channel.upstream_model(peek.model)
        try:
            reply = await _fast_path(gw, channel, peek, body, meter)
        except GatewayError as err:
            if not err.retryable:
                raise
            gw.router.report(channel, ok=False)
            last = err
            continue
        gw.router.report(channel, ok=True)
        return reply
    if last is None:
        raise GatewayError(503, "overloaded", f"no channel available for model '{peek.model}'")
    if last.kind not in ("upstream", "overloaded", "timeout", "rate_limit", "insufficient_quota"):
        raise last
    raise GatewayError(last.status if last.status in (429, 502, 503, 504) else 502, last.kind,
                       f"every upstream channel for '{peek.model}' failed; last error: {last.message}")


async def _fast_path(gw: Gateway, channel: Channel, peek: ChatPeek, body: bytes,
                     meter: Meter) -> Reply | StreamReply:
    assert meter.upstream_model is not None
    up_body = body if (meter.upstream_model == peek.model and not peek.stream) else upstream_body(
        peek, meter.upstream_model, force_usage=channel.config.stream_options)
    resp = await open_upstream(gw.http, channel, meter.upstream_model, up_body, peek.stream,
                               openai_chat.parse_error)
    model_json = msgspec.json.encode(peek.model)
    if not peek.stream:
        try:
            data = await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise transport_error(exc, channel.name) from None
        finally:
            resp.release()
        meter.first_byte()
        usage = usage_of(data) or _estimated_usage(body, len(data) // 2)
        await meter.succeed(usage)
        return Reply(resp.status, rename_model(data, model_json))
    # Wait for the first bytes before answering the client: until then we can still fail over.
    try:
        first = await resp.content.readany()
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        resp.close()
        raise transport_error(exc, channel.name) from None
    if not first:
        resp.close()
        raise GatewayError(502, "upstream", f"upstream channel '{channel.name}' sent an empty stream",
                           retryable=True)
    meter.first_byte()
    tap = ChatStreamTap(peek.model, drop_usage_chunk=not peek.include_usage)
    return StreamReply(_pass_stream(resp, first, tap, body, meter, channel))


async def _pass_stream(resp: aiohttp.ClientResponse, first: bytes, tap: ChatStreamTap, body: bytes,
                       meter: Meter, channel: Channel) -> AsyncIterator[bytes]:
    status, error = 200, None
    try:
        out = tap.feed(first)
        if out:
            yield out
        while not tap.done:  # clients may hang up right after [DONE]: stop there
            chunk = await resp.content.readany()
            if not chunk:
                break
            out = tap.feed(chunk)
            if out:
                yield out
        out = tap.close()
        if out:
            yield out
        if not (tap.done or tap.finished):
            status, error = 502, "upstream stream ended before it was complete"
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        status, error = 502, transport_error(exc, channel.name).message
    except (asyncio.CancelledError, GeneratorExit):
        if tap.finished:
            await _drain_usage(resp, tap)  # the answer was complete; only the usage chunk was missing
        else:
            status, error = 499, "client disconnected"
        raise
    finally:
        resp.close()  # cancels the upstream request if it is still running
        usage = tap.usage or _estimated_usage(body, tap.text_bytes)
        await meter.succeed(usage, status, error)
    if error:
        # The client must not mistake a cut stream for a complete one: end with an error event.
        yield b"data: " + openai_chat.error_body(GatewayError(502, "upstream", error)) + b"\n\n"


async def _drain_usage(resp: aiohttp.ClientResponse, tap: ChatStreamTap, timeout: float = 2.0) -> None:
    """Read what is left of a finished stream (without forwarding it) to learn its usage."""
    try:
        async with asyncio.timeout(timeout):
            while tap.usage is None and not tap.done:
                chunk = await resp.content.readany()
                if not chunk:
                    return
                tap.feed(chunk)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
        pass


def _estimated_usage(body: bytes, completion_text_bytes: int) -> ir.Usage:
    return ir.Usage(input_tokens=len(body) // 4, output_tokens=(completion_text_bytes + 3) // 4,
                    estimated=True)
