"""One request on any surface, for any operation: authorize -> price -> reserve -> route -> call ->
settle. What differs between operations (how to reserve, the fast and convert paths, who settles,
a local fallback) is data on the `Operation` record (relay/operation.py, relay/operations.py)."""

from __future__ import annotations

import asyncio
import time

from polyrelay import ir
from polyrelay.errors import GatewayError
from polyrelay.protocols import RequestPeek
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.generate import GENERATE
from polyrelay.relay.meter import Meter
from polyrelay.relay.operation import Job, Operation
from polyrelay.relay.replies import Reply, StreamReply
from polyrelay.relay.surfaces import Surface
from polyrelay.routing.router import Router
from polyrelay.store.keys import KeyRecord
from polyrelay.upstream.call import earliest_retry

_RETRY_KINDS = ("upstream", "overloaded", "timeout", "rate_limit", "insufficient_quota")


async def relay(gw: Gateway, surface: Surface, key: KeyRecord, body: bytes, peek: RequestPeek,
                operation: Operation = GENERATE, parsed: ir.Request | None = None) -> Reply | StreamReply:
    """Serve one request of `operation` (a generation unless said otherwise). `peek` is the route's
    read of the request; `parsed`, the request as IR when the route has parsed it already."""
    started = time.perf_counter()
    catalog = gw.catalog.now   # one snapshot to the end: a reload meanwhile does not mix old and new
    gw.authorize_model(key, peek.model, catalog)
    price = gw.price_of(peek.model, catalog) if operation.billed else None
    name = surface.name + operation.log_suffix if operation.log_suffix else surface.name
    meter = Meter(gw.ledger, None, price, key, name, peek.model, peek.stream, started)
    job = Job(surface, body, peek, parsed)
    try:
        meter.reservation = await operation.reserve(gw, key, price, job)
        reply = await _try_candidates(gw, catalog.router, operation, job, meter)
        if not operation.billed:   # free: settled here, at zero usage (a billed attempt settled itself)
            meter.first_byte()
            await meter.succeed(ir.Usage())
        return reply
    except GatewayError as err:
        meter.fail(err.status, err.message)
        raise
    except asyncio.CancelledError:
        meter.fail(499, "client disconnected")
        raise
    except BaseException as exc:
        meter.fail(500, f"internal error: {type(exc).__name__}")
        raise


async def _try_candidates(gw: Gateway, router: Router, operation: Operation, job: Job,
                          meter: Meter) -> Reply | StreamReply:
    peek = job.peek
    protocol = job.surface.name
    last: GatewayError | None = None
    rate_limited: list[GatewayError] = []   # failures that were an upstream's 429
    for channel in router.candidates(peek.model, operation.name):
        # same protocol: the upstream's bytes pass through, unless the client wants a stream
        # framed otherwise (Gemini's JSON array) and the converter has to re-frame it
        if channel.protocol == protocol and operation.fast is not None and (peek.framing == "sse" or not peek.stream):
            attempt = operation.fast
        elif operation.convert is not None:
            attempt = operation.convert
        else:
            continue
        meter.attempts += 1
        meter.channel = channel.name
        meter.upstream_model = channel.upstream_model(peek.model)
        try:
            reply = await attempt(gw, job, channel, meter)
        except GatewayError as err:
            if not err.retryable:
                raise
            if operation.health:
                router.report(channel, ok=False)
            # without its traceback: that holds this very frame, and this frame would hold it (a
            # reference cycle keeping the request body alive until a rare full collection)
            last = err.with_traceback(None)
            if err.status == 429:
                rate_limited.append(last)
            continue
        if reply is None:   # this channel cannot take the request as it is
            continue
        if operation.health:
            router.report(channel, ok=True)
        return reply
    if operation.fallback is not None:
        return await operation.fallback(gw, job)
    # no channel of the model can take this request (e.g. embeddings of a model only chat channels serve)
    if last is None:
        raise GatewayError(400, "invalid_request", f"model '{peek.model}' has no channel that can serve this request "
                           f"({operation.name})", param="model")
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
