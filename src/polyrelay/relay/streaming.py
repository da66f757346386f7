"""Relaying one upstream stream to the client, and settling it however it ends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from polyrelay import ir
from polyrelay.billing.estimate import estimated_usage
from polyrelay.channels import Channel
from polyrelay.errors import GatewayError
from polyrelay.protocols import EventTooLarge
from polyrelay.relay.meter import Meter
from polyrelay.relay.replies import Producer, Write
from polyrelay.upstream.call import transport_error, upstream_errors
from polyrelay.upstream.client import TRANSPORT_ERRORS, UpstreamResponse, UpstreamTimeout


class Tap(Protocol):
    """Upstream bytes in, client bytes out; what the stream said about itself so far."""

    usage: ir.Usage | None
    finished: bool     # the answer's end (a finish/stop reason) was seen
    done: bool         # the stream's terminator was seen: stop reading
    errored: bool      # an error event was already passed to the client
    text_bytes: int    # generated text seen, for an estimate when usage never comes
    start_usage: ir.Usage | None   # early usage (exact input) some upstreams send first

    @property
    def events(self) -> int: ...   # blocks of real events so far (comments do not count): the idle watchdog's pulse

    def feed(self, chunk: bytes) -> bytes: ...
    def close(self) -> bytes: ...


async def first_chunk(resp: UpstreamResponse, channel: Channel) -> bytes:
    """The upstream's first bytes; until they come the gateway can still fail over. If they never
    come (a transport failure, or cancelled: the client left) the upstream is closed, not left
    generating for nobody."""
    with upstream_errors(channel.name, closing=resp):
        first = await resp.readany()
    if not first:
        resp.close()
        raise GatewayError(502, "upstream", f"upstream channel '{channel.name}' sent an empty stream",
                           retryable=True)
    return first


def relay_stream(resp: UpstreamResponse, first: bytes, tap: Tap, body: bytes, meter: Meter,
                 channel: Channel, stream_error: Callable[[GatewayError], bytes]) -> Producer:
    """The producer of a StreamReply: upstream bytes through `tap` to the client's `write`."""
    return lambda write: _relay(resp, first, tap, body, meter, channel, stream_error, write)


class _Watchdog:
    """Cuts a stream that sends no real event for `idle` seconds (a comment every few seconds does
    not keep it alive) or that lasts longer than `total`. It looks at the tap's event count every
    idle/8 seconds instead of timing each read: nothing is added to the per-chunk work, and a quiet
    stream is cut between `idle` and 1.125 x `idle` after its last event."""

    __slots__ = ("_resp", "_tap", "_idle", "_deadline", "_tick", "_seen", "_quiet_since", "_handle",
                 "_loop", "_total", "reason")

    def __init__(self, resp: UpstreamResponse, tap: Tap, idle: float, total: float) -> None:
        self._loop = loop = asyncio.get_running_loop()
        now = loop.time()
        self._resp, self._tap, self._idle = resp, tap, idle
        self._deadline, self._total = now + total, total
        self._tick = idle / 8
        self._seen, self._quiet_since = tap.events, now
        self.reason: str | None = None
        self._handle = loop.call_later(min(self._tick, total), self._check)

    def _check(self) -> None:
        now = self._loop.time()
        if now >= self._deadline:
            return self._cut(f"upstream stream lasted longer than {_seconds(self._total)} s (stream_timeout)")
        events = self._tap.events
        if events != self._seen:
            self._seen, self._quiet_since = events, now
        elif now - self._quiet_since >= self._idle:
            return self._cut(f"upstream stream sent no event for {_seconds(self._idle)} s (stream_idle_timeout)")
        self._handle = self._loop.call_later(min(self._tick, self._deadline - now), self._check)

    def _cut(self, reason: str) -> None:
        self.reason = reason
        self._resp.fail(UpstreamTimeout(reason))

    def stop(self) -> None:
        self._handle.cancel()


def _seconds(value: float) -> str:
    return f"{value:g}"


async def _relay(resp: UpstreamResponse, first: bytes, tap: Tap, body: bytes, meter: Meter,
                 channel: Channel, stream_error: Callable[[GatewayError], bytes], write: Write) -> None:
    status, error = 200, None
    watchdog = _Watchdog(resp, tap, channel.config.stream_idle_timeout, channel.config.stream_timeout)
    try:
        out = tap.feed(first)
        if tap.errored:
            out = channel.scrub(out.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
        if out:
            await write(out)
        read = resp.readany
        while not tap.done:  # clients may hang up right after the terminator: stop there
            chunk = await read()
            if not chunk:
                break
            out = tap.feed(chunk)
            if tap.errored:   # an upstream error event may echo the channel's key (rare: then scrubbed)
                out = channel.scrub(out.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
            if out:
                await write(out)
        out = tap.close()
        if out:
            await write(out)
        if tap.errored:
            status, error = 502, "upstream sent an error event mid-stream"
        elif not tap.finished and tap.usage is None:   # a terminator alone does not make an answer
            status, error = 502, "upstream stream ended before it was complete"
    except TRANSPORT_ERRORS as exc:
        if watchdog.reason is not None:
            status, error = 504, watchdog.reason
        else:
            status, error = 502, transport_error(exc, channel.name).message
    except EventTooLarge as exc:
        status, error = 502, str(exc)
    except asyncio.CancelledError:  # the client went away (the server cancels the producer)
        if tap.finished:
            await _drain_usage(resp, tap)  # the answer was complete; only its usage may be missing
        else:
            status, error = 499, "client disconnected"
        raise
    finally:
        watchdog.stop()
        resp.close()  # cancels the upstream request if it is still running
        if status == 502 and not (tap.usage or tap.start_usage or tap.text_bytes):
            meter.fail(status, error or "")   # the upstream said nothing readable: a failed request, not billed
        else:
            usage = tap.usage or estimated_usage(body, tap.text_bytes, tap.start_usage)
            # shielded: a disconnect that cancels this producer while the ledger extends a lease must
            # not leave the stream unbilled and unlogged
            await asyncio.shield(meter.succeed(usage, status, error))
    if error and not tap.errored:
        # The client must not mistake a cut stream for a complete one: end with an error event.
        await write(stream_error(GatewayError(status, "timeout" if status == 504 else "upstream", error)))


async def _drain_usage(resp: UpstreamResponse, tap: Tap, timeout: float = 2.0) -> None:
    """Read what is left of a finished stream (without forwarding it) to learn its usage."""
    try:
        async with asyncio.timeout(timeout):
            while tap.usage is None and not tap.done:
                chunk = await resp.readany()
                if not chunk:
                    return
                tap.feed(chunk)
    except TRANSPORT_ERRORS:
        pass

