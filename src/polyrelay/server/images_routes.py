"""Images surface (OpenAI's images API): generations (JSON) and edits (multipart), as the openai
SDK's `images.generate` / `images.edit` send them. Bearer keys, OpenAI-shaped errors."""

from __future__ import annotations

from polyrelay.protocols import images
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.images import IMAGE_EDITS, IMAGES
from polyrelay.relay.pipeline import relay
from polyrelay.relay.replies import Reply, StreamReply
from polyrelay.relay.surfaces import OPENAI_CHAT
from polyrelay.server.asgi import Scope, header
from polyrelay.server.keys import bearer
from polyrelay.server.route import GENERATION_BODY, Params, Route
from polyrelay.store.keys import KeyRecord


async def generations(gw: Gateway, scope: Scope, body: bytes, key: KeyRecord, params: Params) -> Reply | StreamReply:
    return await relay(gw, OPENAI_CHAT, key, body, images.peek_json(body), IMAGES)


async def edits(gw: Gateway, scope: Scope, body: bytes, key: KeyRecord, params: Params) -> Reply | StreamReply:
    content_type = header(scope, b"content-type") or ""
    form = images.multipart.parse(body, content_type)
    return await relay(gw, OPENAI_CHAT, key, body, images.peek_form(form, content_type), IMAGE_EDITS)


ROUTES = [
    Route("POST", "/v1/images/generations", generations, key=bearer, body_limit=GENERATION_BODY),
    Route("POST", "/v1/images/edits", edits, key=bearer, body_limit=GENERATION_BODY),
]
