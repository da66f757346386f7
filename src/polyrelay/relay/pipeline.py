"""One request on any surface: authorize -> price -> reserve -> route -> call -> settle."""

from __future__ import annotations

import asyncio
import time

from polyrelay.billing.estimate import estimate_prompt_tokens
from polyrelay.billing.ledger import Reservation
from polyrelay.billing.prices import Price, covered_output_tokens, max_cost_micros
from polyrelay.errors import GatewayError
from polyrelay.protocols import RequestPeek
from polyrelay.relay import convert_path, fast_path
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.meter import Meter
from polyrelay.relay.replies import Reply, StreamReply
from polyrelay.relay.surfaces import Surface
from polyrelay.store.keys import KeyRecord
from polyrelay.upstream.call import earliest_retry

_RETRY_KINDS = ("upstream", "overloaded", "timeout", "rate_limit", "insufficient_quota")
MIN_OUTPUT_TOKENS = 16   # a request the balance cannot pay this much output for (with its prompt) is refused


async def relay(gw: Gateway, surface: Surface, key: KeyRecord, body: bytes, peek: RequestPeek) -> Reply | StreamReply:
    """Serve one generation request."""
    started = time.perf_counter()
    gw.authorize_model(key, peek.model)
    price = gw.price_of(peek.model)
    meter = Meter(gw.ledger, None, price, key, surface.name, peek.model, peek.stream, started)
    try:
        meter.reservation = await _reserve(gw, key, price, body, peek)
        return await _try_candidates(gw, surface, peek, body, meter)
    except GatewayError as err:
        meter.fail(err.status, err.message)
        raise
    except asyncio.CancelledError:
        meter.fail(499, "client disconnected")
        raise
    except BaseException as exc:
        meter.fail(500, f"internal error: {type(exc).__name__}")
        raise


async def _reserve(gw: Gateway, key: KeyRecord, price: Price | None, body: bytes, peek: RequestPeek) -> Reservation:
    """Hold the most the request may cost (at least 1 micro-dollar: a key with a quota needs a balance).

    A request with no output limit, on a key with a finite balance, gets one: the price's max_output,
    or what the balance covers if less (down to MIN_OUTPUT_TOKENS), set in `peek.upstream_max_output`
    and sent upstream, so the answer cannot cost more than was held. An explicit client limit is
    never lowered: if the balance cannot cover it, the request is refused (429).
    """
    prompt = estimate_prompt_tokens(body)
    output = peek.max_output if peek.max_output is not None else (price.max_output if price else 0)
    amount = max(1, max_cost_micros(price, prompt, output * peek.n))
    if key.quota_micros is None:
        return await gw.ledger.reserve(key, amount)   # nothing is held for an unlimited key
    # the refusal's wording is only formatted when the request is refused (lambdas, not f-strings)
    each = "" if peek.n == 1 else f" for each of {peek.n} answers"
    if peek.max_output is not None or price is None:
        return await gw.ledger.reserve(key, amount, what=lambda: f" (a prompt of about {prompt:,} tokens and "
                                                                 f"up to {output:,} output tokens{each})")
    least = min(price.max_output, MIN_OUTPUT_TOKENS)
    reservation = await gw.ledger.reserve(
        key, amount, minimum=max(1, max_cost_micros(price, prompt, least * peek.n)),
        what=lambda: f" at the least (a prompt of about {prompt:,} tokens and {least} output tokens{each})")
    peek.upstream_max_output = min(price.max_output, covered_output_tokens(price, prompt, reservation.amount, peek.n))
    return reservation


async def _try_candidates(gw: Gateway, surface: Surface, peek: RequestPeek, body: bytes,
                          meter: Meter) -> Reply | StreamReply:
    last: GatewayError | None = None
    rate_limited: list[GatewayError] = []   # failures that were an upstream's 429
    converted: convert_path.Converted | None = None  # the client request as IR, parsed once
    for channel in gw.router.candidates(peek.model):
        meter.attempts += 1
        meter.channel = channel.name
        meter.upstream_model = channel.upstream_model(peek.model)
        try:
            # same protocol: the upstream's bytes pass through, unless the client wants a stream
            # framed otherwise (Gemini's JSON array) and the converter has to re-frame it
            if channel.protocol == surface.name and (peek.framing == "sse" or not peek.stream):
                reply = await fast_path.call(gw, surface, channel, peek, body, meter)
            else:
                if converted is None:
                    converted = convert_path.Converted(surface, body, peek)
                reply = await convert_path.call(gw, converted, channel, meter)
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
