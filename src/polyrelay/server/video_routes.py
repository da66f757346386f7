"""OpenAI's video API (Sora): create, retrieve, list, delete, content, remix (relay/videos.py for
the create and remix, which go through the pipeline; relay/video_jobs.py for the rest). Errors are
OpenAI-shaped: the table is mounted with the OpenAI surface."""

from __future__ import annotations

from polyrelay.errors import invalid_request
from polyrelay.protocols import openai_videos as wire
from polyrelay.relay import video_jobs, videos
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.pipeline import relay
from polyrelay.relay.replies import Reply, StreamReply
from polyrelay.relay.surfaces import OPENAI_CHAT
from polyrelay.server.asgi import Scope, header
from polyrelay.server.keys import bearer, query_params
from polyrelay.server.route import GENERATION_BODY, SMALL_BODY, Params, Route
from polyrelay.store import videos as store
from polyrelay.store.keys import KeyRecord

_MAX_PAGE = 100


async def create(gw: Gateway, scope: Scope, body: bytes, key: KeyRecord | None, params: Params) -> Reply | StreamReply:
    assert key is not None, "a keyed route"
    req = wire.parse_create(body, header(scope, b"content-type"))
    plan = videos.create_plan(req)
    return await relay(gw, OPENAI_CHAT, key, body, videos.peek_of(req.model), videos.operation_for(plan))


async def remix(gw: Gateway, scope: Scope, body: bytes, key: KeyRecord | None, params: Params) -> Reply | StreamReply:
    assert key is not None, "a keyed route"
    prompt = wire.parse_remix(body)
    source = await video_jobs.job_of(gw, key.id, params["video_id"])
    plan = videos.remix_plan(source, prompt)
    return await relay(gw, OPENAI_CHAT, key, body, videos.peek_of(source.model), videos.operation_for(plan))


async def retrieve(gw: Gateway, scope: Scope, body: bytes, key: KeyRecord | None, params: Params) -> Reply:
    assert key is not None, "a keyed route"
    row = await video_jobs.refresh(gw, await video_jobs.job_of(gw, key.id, params["video_id"]))
    return Reply(200, wire.render_video(row))


async def list_videos(gw: Gateway, scope: Scope, body: bytes, key: KeyRecord | None, params: Params) -> Reply:
    """This key's jobs as they last stood (the poller and the key's own polls keep them fresh)."""
    assert key is not None, "a keyed route"
    query = query_params(scope)
    limit_text = query.get("limit", "20")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= _MAX_PAGE:
        raise invalid_request(f"'limit' must be a whole number from 1 to {_MAX_PAGE}", param="limit")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid_request("'order' must be 'asc' or 'desc'", param="order")
    rows, more = await store.list_jobs(gw.engine, key.id, query.get("after") or None, int(limit_text),
                                       descending=order == "desc")
    return Reply(200, wire.render_list(rows, more))


async def delete(gw: Gateway, scope: Scope, body: bytes, key: KeyRecord | None, params: Params) -> Reply:
    assert key is not None, "a keyed route"
    return await video_jobs.delete(gw, key.id, params["video_id"])


async def content(gw: Gateway, scope: Scope, body: bytes, key: KeyRecord | None, params: Params) -> StreamReply:
    assert key is not None, "a keyed route"
    variant = wire.variant_of(query_params(scope).get("variant"))
    return await video_jobs.content(gw, key.id, params["video_id"], variant)


ROUTES = [
    Route("POST", "/v1/videos", create, key=bearer, body_limit=GENERATION_BODY),
    Route("GET", "/v1/videos", list_videos, key=bearer),
    Route("GET", "/v1/videos/{video_id}", retrieve, key=bearer),
    Route("DELETE", "/v1/videos/{video_id}", delete, key=bearer),
    Route("GET", "/v1/videos/{video_id}/content", content, key=bearer),
    Route("POST", "/v1/videos/{video_id}/remix", remix, key=bearer, body_limit=SMALL_BODY),
]
