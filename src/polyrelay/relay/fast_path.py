"""Same protocol on both sides: forward the body with only the model renamed; tap the answer."""

from __future__ import annotations

import msgspec

from polyrelay.billing.estimate import estimated_usage
from polyrelay.channels import Channel
from polyrelay.errors import GatewayError
from polyrelay.protocols import Unreadable
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.meter import Meter
from polyrelay.relay.operation import Job
from polyrelay.relay.replies import Reply, StreamReply
from polyrelay.relay.streaming import first_chunk, relay_stream
from polyrelay.routing import aliases
from polyrelay.upstream.call import open_upstream, read_all


async def call(gw: Gateway, job: Job, channel: Channel, meter: Meter) -> Reply | StreamReply:
    peek, body = job.peek, job.body
    upstream_model = meter.upstream_model or peek.model
    protocol = job.surface.protocol
    passthrough = protocol.fastpath
    if protocol.THINKING_ALIAS:
        upstream_model = meter.upstream_model = aliases.thinking_base_model(peek.model, upstream_model)
        peek.thinking_budget = aliases.thinking_budget(peek.model, peek.max_output)
    unchanged = (upstream_model == peek.model and (not peek.stream or peek.include_usage)
                 and peek.upstream_max_output is None)
    up_body = body if unchanged else passthrough.upstream_body(peek, upstream_model, channel.config.stream_options)
    resp = await open_upstream(gw.http, channel, upstream_model, up_body, peek.stream,
                               protocol.parse_error, extra_headers=peek.forward_headers)
    model_json = msgspec.json.encode(peek.model)
    if not peek.stream:
        data = await read_all(resp, channel)
        meter.first_byte()
        try:
            usage = passthrough.usage_of(data, whole=True)
        except Unreadable:
            raise GatewayError(502, "upstream", f"upstream channel '{channel.name}' answered with a body that is "
                               "not JSON", retryable=True) from None
        await meter.succeed(usage or estimated_usage(body, len(data) // 2))
        return Reply(resp.status, passthrough.rename_model(data, model_json))
    first = await first_chunk(resp, channel)
    meter.first_byte()
    tap = protocol.StreamTap(peek.model, drop_usage_chunk=not peek.include_usage)
    return StreamReply(relay_stream(resp, first, tap, body, meter, channel, protocol.render_stream_error))
