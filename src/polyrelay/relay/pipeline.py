"""One request on any surface: authorize -> price -> reserve -> route -> call -> settle."""

from __future__ import annotations

import asyncio
import time

from polyrelay.billing.estimate import estimate_prompt_tokens
from polyrelay.billing.prices import max_cost_micros
from polyrelay.errors import GatewayError
from polyrelay.protocols.passthrough import RequestPeek
from polyrelay.relay import convert_path, fast_path
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.meter import Meter
from polyrelay.relay.replies import Reply, StreamReply
from polyrelay.relay.surfaces import Surface
from polyrelay.relay.upstream import earliest_retry
from polyrelay.store.keys import KeyRecord

_RETRY_KINDS = ("upstream", "overloaded", "timeout", "rate_limit", "insufficient_quota")


async def relay(gw: Gateway, surface: Surface, key: KeyRecord, body: bytes, peek: RequestPeek,
                client_sse: bool = True) -> Reply | StreamReply:
    """Serve one generation request; `client_sse` is False for Gemini's JSON-array streams."""
    started = time.perf_counter()
    gw.authorize_model(key, peek.model)
    price = gw.prices.get(peek.model)
    max_output = peek.max_output or (price.max_output if price else 0)
    estimate = max_cost_micros(price, estimate_prompt_tokens(body), max_output * peek.n)
    reservation = await gw.ledger.reserve(key, estimate)
    meter = Meter(gw.ledger, reservation, price, key, surface.name, peek.model, peek.stream, started)
    try:
        return await _try_candidates(gw, surface, peek, body, meter, client_sse)
    except GatewayError as err:
        meter.fail(err.status, err.message)
        raise
    except asyncio.CancelledError:
        meter.fail(499, "client disconnected")
        raise
    except BaseException as exc:
        meter.fail(500, f"internal error: {type(exc).__name__}")
        raise


async def _try_candidates(gw: Gateway, surface: Surface, peek: RequestPeek, body: bytes, meter: Meter,
                          client_sse: bool) -> Reply | StreamReply:
    last: GatewayError | None = None
    rate_limited: list[GatewayError] = []   # failures that were an upstream's 429
    converted: convert_path.Converted | None = None  # the client request as IR, parsed once
    for channel in gw.router.candidates(peek.model):
        meter.attempts += 1
        meter.channel = channel.name
        meter.upstream_model = channel.upstream_model(peek.model)
        try:
            if channel.protocol == surface.name and (client_sse or not peek.stream):
                reply = await fast_path.call(gw, surface, channel, peek, body, meter)
            else:
                if converted is None:
                    converted = convert_path.Converted(surface, body, peek)
                reply = await convert_path.call(gw, converted, channel, meter, client_sse)
        except GatewayError as err:
            if not err.retryable:
                raise
            gw.router.report(channel, ok=False)
            # without its traceback: that holds this very frame, and this frame would hold it (a
            # reference cycle keeping the request body alive until a rare full collection)
            last = err.with_traceback(None)
            if err.status == 429:
                rate_limited.append(last)
            continue
        gw.router.report(channel, ok=True)
        return reply
    if last is None:
        raise GatewayError(503, "overloaded", f"no channel available for model '{peek.model}'")
    raise _all_failed(peek.model, last, rate_limited, meter.attempts)


def _all_failed(model: str, last: GatewayError, rate_limited: list[GatewayError], attempts: int) -> GatewayError:
    """A new error (one raised from a local of the loop's frame would be a cycle, as above)."""
    if last.kind not in _RETRY_KINDS:
        return GatewayError(last.status, last.kind, last.message, code=last.code, param=last.param,
                            retryable=last.retryable)
    final = GatewayError(last.status if last.status in (429, 502, 503, 504) else 502, last.kind,
                         f"every upstream channel for '{model}' failed; last error: {last.message}")
    if len(rate_limited) == attempts:   # every channel said 429: say when the first frees up
        final.retry_after, final.retry_after_ms = earliest_retry(rate_limited)
    return final
