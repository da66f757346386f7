"""Client and upstream speak different protocols: client wire -> IR -> upstream wire, and back."""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec

from polyrelay import ir
from polyrelay.billing.estimate import estimated_usage
from polyrelay.channels import Channel
from polyrelay.errors import MALFORMED, GatewayError, blame
from polyrelay.protocols import TapState, openai_completions
from polyrelay.protocols.registry import PROTOCOLS, ClientCodec, StreamDecoder, StreamEncoder, UpstreamCodec
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.meter import Meter
from polyrelay.relay.operation import Job
from polyrelay.relay.replies import Reply, StreamReply
from polyrelay.relay.streaming import first_chunk, relay_stream
from polyrelay.routing import aliases
from polyrelay.upstream.call import open_upstream, read_all

log = logging.getLogger("polyrelay.convert")

def client_request(job: Job, client: ClientCodec | None = None) -> ir.Request:
    """The client's request as IR, parsed once for every candidate (a malformed body is a 400).
    `client`: the codec of the client's body when it is not the surface's protocol."""
    if job.parsed is None:
        protocol, peek = client or job.surface.protocol, job.peek
        with blame("the request is malformed", 400, "invalid_request"):
            req = protocol.parse_request(job.body)
        if protocol.MODEL_IN_URL:  # not in the body: the peek has them from the path
            req.model, req.stream = peek.model, peek.stream
        if req.max_tokens is None:   # the limit the reservation covers, if the relay set one
            req.max_tokens = peek.upstream_max_output
        job.parsed = req
    return job.parsed


def _for_channel(req: ir.Request, upstream: UpstreamCodec, public_model: str,
                 upstream_model: str) -> tuple[ir.Request, str]:
    """A model alias (routing/aliases.py), e.g. `claude-...-thinking`: the base model with thinking on."""
    if upstream.THINKING_ALIAS and public_model.endswith(aliases.THINKING_SUFFIX):
        upstream_model = aliases.thinking_base_model(public_model, upstream_model)
        budget = aliases.thinking_budget(public_model, req.max_tokens)
        if req.reasoning is None and budget is not None:
            req = msgspec.structs.replace(req, reasoning=ir.Reasoning(budget_tokens=budget))
    return req, upstream_model


async def call(gw: Gateway, job: Job, channel: Channel, meter: Meter) -> Reply | StreamReply:
    if channel.completion_only(meter.upstream_model or job.peek.model):
        return await completion_model(gw, job, channel, meter)
    return await convert(gw, job, channel, meter, job.surface.protocol)


async def completion_model(gw: Gateway, job: Job, channel: Channel, meter: Meter) -> Reply | StreamReply:
    """A chat-like request for a model the channel serves only at /completions (e.g.
    gpt-3.5-turbo-instruct): the conversation as one prompt there, the text back as the assistant's."""
    upstream_model = meter.upstream_model or job.peek.model
    return await convert(gw, job, channel, meter, job.surface.protocol, openai_completions.chat,
                         url=channel.url("completions", upstream_model, job.peek.stream))


async def convert(gw: Gateway, job: Job, channel: Channel, meter: Meter, client: ClientCodec,
                  upstream: UpstreamCodec | None = None, url: str | None = None) -> Reply | StreamReply:
    """The convert path with `client` reading the client's body and writing its answer (the
    surface's protocol, or another codec of the same errors: legacy completions), and `upstream`
    writing the channel's request and reading its answer (by default the channel's protocol, sent
    to its generate URL; else to `url`)."""
    peek = job.peek
    upstream = upstream or PROTOCOLS[channel.protocol]
    req, upstream_model = _for_channel(client_request(job, client), upstream, peek.model,
                                       meter.upstream_model or peek.model)
    meter.upstream_model = upstream_model
    kinds = upstream.INLINE_MEDIA
    if kinds:
        from polyrelay.upstream import media  # only needed when converting for such an upstream

        await media.inline_remote_media(req, set(kinds), gw.media_http, allow_private=media.ALLOW_PRIVATE)
    with blame("the request cannot be converted", 400, "invalid_request"):
        up_body, losses = upstream.render_request(req, upstream_model)
    headers = []
    if losses:
        meter.dropped = describe_losses(losses)
        log.warning("the conversion for channel '%s' lost: %s", channel.name, meter.dropped)
        headers.append((DROPPED_HEADER, header_value(meter.dropped)))
    names = tool_names_to_restore(req, upstream)
    resp = await open_upstream(gw.http, channel, upstream_model, up_body, req.stream, upstream.parse_error, url=url)
    if not req.stream:
        data = await read_all(resp, channel)
        meter.first_byte()
        unreadable = f"upstream channel '{channel.name}' sent an answer that cannot be read"
        with blame(unreadable, 502, "upstream"):
            try:
                answer = upstream.parse_response(data)
            except GatewayError as err:   # the parser's 400 is about the upstream's body here, not the client's
                raise GatewayError(502, "upstream", f"{unreadable}: {err.message}", retryable=True) from None
        for choice in answer.choices:
            for part in choice.parts:
                if isinstance(part, ir.ToolCallPart):
                    part.name = names.get(part.name, part.name)
        reported = answer.usage.input_tokens or answer.usage.output_tokens
        await meter.succeed(answer.usage if reported else estimated_usage(job.body, len(data) // 2))
        return Reply(200, client.render_response(answer, peek.model), headers=headers)
    first = await first_chunk(resp, channel)
    meter.first_byte()
    tap = ConvertingTap(upstream.StreamDecoder(), client.StreamEncoder(peek.model, req, peek.framing), names)
    chunks = relay_stream(resp, first, tap, job.body, meter, channel, client.render_stream_error)
    return StreamReply(chunks, content_type="text/event-stream" if peek.framing == "sse" else "application/json",
                       headers=headers)


DROPPED_HEADER = b"x-polyrelay-dropped"
_HEADER_LIMIT = 2000   # bytes of the header value; the log row keeps the whole text


def describe_losses(losses: list[ir.Loss]) -> str:
    """`field: what (why); ...` in the order the conversion met them, each once."""
    return "; ".join(dict.fromkeys(f"{loss.field}: {loss.what} ({loss.why})" for loss in losses))


def header_value(text: str) -> bytes:
    """Printable ASCII only (field names and stop sequences come from the client's body)."""
    value = text.encode("ascii", "replace")[:_HEADER_LIMIT]
    return bytes(c if 0x20 <= c < 0x7f else 0x3f for c in value)


def tool_names_to_restore(req: ir.Request, upstream: UpstreamCodec) -> dict[str, str]:
    """{name as the upstream knows it: the client's name} for names the upstream's rules changed."""
    rename = upstream.tool_name
    return {rename(t.name): t.name for t in req.tools if rename(t.name) != t.name}


class ConvertingTap(TapState):
    """Upstream stream bytes -> IR events -> client stream bytes, noting usage and the finish."""

    def __init__(self, decoder: StreamDecoder, encoder: StreamEncoder, names: dict[str, str] | None = None) -> None:
        super().__init__()
        self._decoder = decoder
        self._encoder = encoder
        self._names = names or {}  # tool names to give back as the client wrote them

    def feed(self, chunk: bytes) -> bytes:
        return self._encode(self._decode(self._decoder.feed, chunk))

    @property
    def events(self) -> int:
        return self._decoder.events

    def close(self) -> bytes:
        return self._encode(self._decode(self._decoder.close)) + self._encoder.close()

    def _decode(self, step: Callable[..., list[ir.StreamEvent]], *args: bytes) -> list[ir.StreamEvent]:
        if self.errored:
            return []
        try:
            return step(*args)
        except MALFORMED as exc:
            log.info("unreadable upstream stream event: %r", exc)
            return [ir.StreamError(502, "upstream", "upstream sent a stream event that cannot be read")]

    def _encode(self, events: list[ir.StreamEvent]) -> bytes:
        out = []
        for event in events:
            if isinstance(event, (ir.TextDelta, ir.ThinkingDelta)):
                self.text_bytes += len(event.text)
            elif isinstance(event, ir.ToolCallDelta):
                self.text_bytes += len(event.arguments)
            elif isinstance(event, ir.UsageEvent):
                self.usage = event.usage
            elif isinstance(event, ir.StreamStart) and event.usage is not None:
                self.start_usage = event.usage   # early usage, not final: kept for a cut stream's bill
            elif isinstance(event, ir.ToolCallStart) and event.name in self._names:
                event.name = self._names[event.name]
            elif isinstance(event, ir.Finish):
                self.finished = True
            elif isinstance(event, ir.StreamError):
                self.errored = True
            out.append(self._encoder.encode(event))
        return b"".join(out)


__all__ = ["DROPPED_HEADER", "ConvertingTap", "call", "client_request", "completion_model", "convert",
           "describe_losses", "header_value"]
