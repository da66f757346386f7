"""What one kind of request asks of the pipeline (the operation seam): the pipeline itself
(relay/pipeline.py) is the same for every operation -- authorize -> price -> reserve -> route ->
call -> settle -- and an `Operation` record fills in the steps that differ. The records are listed
in `relay.operations.OPERATIONS`; a new operation (images, embeddings, ...) is a module that builds
one and a line there, not a branch in the pipeline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from polyrelay import ir
from polyrelay.billing.ledger import Reservation
from polyrelay.billing.prices import Price
from polyrelay.channels import Channel
from polyrelay.channels import Operation as ChannelOperation
from polyrelay.protocols import RequestPeek
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.meter import Meter
from polyrelay.relay.replies import Reply, StreamReply
from polyrelay.relay.surfaces import Surface
from polyrelay.store.keys import KeyRecord


class Job:
    """One client request on its way through the pipeline, shared by every candidate channel."""

    __slots__ = ("surface", "body", "peek", "parsed")

    def __init__(self, surface: Surface, body: bytes, peek: RequestPeek, parsed: ir.Request | None = None) -> None:
        self.surface = surface     # the client's protocol: its parsers, renderers and errors
        self.body = body           # the client's bytes, as they came
        self.peek = peek           # model, stream flag, output limit, n, framing (read by the route)
        # the body as IR: set up front by an operation that parses anyway (count_tokens), else
        # parsed once by the first candidate that needs it (the convert path)
        self.parsed = parsed


# hold the most the request may cost; the price is None for an operation that is not billed
Reserve = Callable[[Gateway, KeyRecord, "Price | None", Job], Awaitable[Reservation]]
# one attempt on one channel: the reply, or None when this channel cannot take the request as it
# is (the next candidate is tried, nothing is reported to the circuit breaker). A retryable
# GatewayError moves on to the next candidate; any other error goes to the client.
Attempt = Callable[[Gateway, Job, Channel, Meter], Awaitable["Reply | StreamReply | None"]]
# an answer made without an upstream, when no channel could answer
Fallback = Callable[[Gateway, Job], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Operation:
    """How the pipeline serves one kind of request.

    `name` is both the channel endpoint it calls (`channel.url(name, model, stream)`) and what a
    channel's `Capabilities.operations` must list for the router to offer it (`Router.candidates(
    model, name)`). Usage: a `billed` operation's attempts settle the meter themselves, with the
    usage they read from the upstream's answer (generate: the protocol's `fastpath.usage_of` and
    stream tap on the fast path, `parse_response` / the stream decoder on the convert path); an
    operation that is not billed needs no price and is settled at zero usage by the pipeline.
    """

    name: ChannelOperation
    reserve: Reserve
    fast: Attempt | None       # same protocol on both sides: the client's body passes through
    convert: Attempt | None    # the channel speaks another protocol (also used when `fast` is None)
    billed: bool = True        # charged at the model's price (an unpriced model is refused)
    fallback: Fallback | None = None   # None: with no channel left, the request fails (503 / last error)
    health: bool = True        # outcomes feed the channels' circuit breakers
    log_suffix: str = ""       # the request log's surface is `<surface name><log_suffix>`


__all__ = ["Attempt", "Fallback", "Job", "Operation", "Reserve"]
