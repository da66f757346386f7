"""The "videos" operation: Sora video jobs (`POST /v1/videos`, `POST /v1/videos/{id}/remix`) passed
through to OpenAI channels; what happens to a job after its create is relay/video_jobs.py.

Through the pipeline like any operation: authorize the model, price it (`prices.<model>.per_second`),
reserve `seconds x per_second`, try the candidate channels. The attempt posts the job upstream and,
in one transaction, records it (`video_jobs`: the gateway's id -> channel and upstream id) and moves
the reservation out of this process's lease into the job's durable hold (billing/holds.py): the
meter is handed over, not settled, and the job is billed when it ends. A remix is offered only to
the channel that holds the video it remixes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from sqlalchemy import Row

from polyrelay.billing import holds
from polyrelay.billing.ledger import Reservation, usd
from polyrelay.billing.prices import Price
from polyrelay.channels import Channel
from polyrelay.errors import GatewayError
from polyrelay.ids import new_id
from polyrelay.protocols import RequestPeek
from polyrelay.protocols import openai_videos as wire
from polyrelay.protocols.registry import PROTOCOLS
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.meter import Meter
from polyrelay.relay.operation import Job, Operation
from polyrelay.relay.replies import Reply
from polyrelay.relay.video_jobs import apply, now_ms
from polyrelay.store import videos as store
from polyrelay.store.keys import KeyRecord
from polyrelay.upstream.call import open_upstream, read_all


@dataclass(frozen=True, slots=True)
class Plan:
    """One create or remix: what is reserved for, and what is sent."""

    seconds: int
    size: str
    prompt: str
    request: wire.VideoRequest | None = None   # a create
    source: Row[Any] | None = None             # a remix: the job it remixes


def peek_of(model: str) -> RequestPeek:
    return RequestPeek({}, model, False, False, None, 1)


def cost_of(plan: Plan, price: Price | None) -> int:
    return 0 if price is None else plan.seconds * price.per_second


async def _reserve(plan: Plan, gw: Gateway, key: KeyRecord, price: Price | None, job: Job) -> Reservation:
    if not gw.router.candidates(job.peek.model, "videos"):   # served, but only by chat-only channels
        raise GatewayError(400, "invalid_request", f"model '{job.peek.model}' does not make videos on this "
                           "gateway (no channel serves it for /v1/videos)", param="model")
    if price is not None and price.per_second <= 0:
        raise GatewayError(403, "permission", f"model '{job.peek.model}' has no per-second price on this gateway, "
                           "so its videos cannot be billed; the operator must set "
                           f"'prices.{job.peek.model}.per_second'", param="model", code="model_not_priced")
    amount = cost_of(plan, price)
    if amount == 0:   # served free (`unpriced: free`): nothing to hold
        return Reservation(key.id, 0, leased=False)
    per_second = price.per_second if price is not None else 0
    return await gw.ledger.reserve(key, amount, what=lambda: f" ({plan.seconds} s of video at {usd(per_second)}/s)")


async def _create(plan: Plan, gw: Gateway, job: Job, channel: Channel, meter: Meter) -> Reply | None:
    source = plan.source
    if source is not None and channel.name != source.channel:
        return None   # only the channel holding the source video can remix it
    upstream_model = meter.upstream_model or job.peek.model
    url = channel.url("videos", upstream_model, False)
    if plan.request is not None:
        body, content_type = wire.render_create(plan.request, upstream_model)
    else:
        assert source is not None
        body, content_type = wire.render_remix(plan.prompt), "application/json"
        url = f"{url}/{source.upstream_id}/remix"
    resp = await open_upstream(gw.http, channel, upstream_model, body, False, PROTOCOLS[channel.protocol].parse_error,
                               url=url, extra_headers={"Content-Type": content_type})
    up = wire.parse_job(await read_all(resp, channel))
    reservation = meter.reservation
    assert reservation is not None
    created = now_ms()
    row_id = new_id("video_", 40)
    async with gw.engine.begin() as conn:
        held = await holds.take_over(conn, gw.ledger.holder, reservation)
        await store.insert_job(conn, {
            "id": row_id, "key_id": meter.key.id, "channel": channel.name, "upstream_id": up.id,
            "model": job.peek.model, "upstream_model": upstream_model,
            "status": up.status if up.status in store.OPEN else "in_progress", "progress": wire.progress_of(up),
            "seconds": plan.seconds, "size": plan.size, "prompt": plan.prompt,
            "remixed_from": source.id if source is not None else None, "error": None,
            "held_micros": held, "cost_micros": cost_of(plan, meter.price), "billed": False,
            "created_at": created, "completed_at": None, "polled_at": created,
        })
        row = await store.reread(conn, row_id)
        assert row is not None
        if up.status not in store.OPEN:   # an upstream that answers a create already finished
            await apply(conn, row, up)
            row = await store.reread(conn, row_id)
            assert row is not None
    meter.hand_over()   # committed: the job owns the money now (a rollback above left it to the meter)
    return Reply(200, wire.render_video(row))


VIDEOS = Operation("videos", partial(_reserve, Plan(0, "", "")), fast=partial(_create, Plan(0, "", "")),
                   convert=None, log_suffix=":videos")


def operation_for(plan: Plan) -> Operation:
    """The operation record for one create or remix (its plan bound to the steps)."""
    return replace(VIDEOS, reserve=partial(_reserve, plan), fast=partial(_create, plan))


def create_plan(req: wire.VideoRequest) -> Plan:
    return Plan(req.seconds, req.size, req.prompt, request=req)


def remix_plan(source: Row[Any], prompt: str) -> Plan:
    return Plan(source.seconds, source.size, prompt, source=source)


__all__ = ["VIDEOS", "Plan", "create_plan", "operation_for", "peek_of", "remix_plan"]
