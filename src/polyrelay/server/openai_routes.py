"""OpenAI surface: chat completions, legacy completions, embeddings, model list, legacy billing endpoints."""

from __future__ import annotations

import datetime as dt
import time

import msgspec

from polyrelay.billing.estimate import estimate_prompt_tokens
from polyrelay.billing.usage import DAY_MS, spent_micros
from polyrelay.errors import GatewayError
from polyrelay.protocols import images, model_lists, openai_chat, openai_completions, openai_embeddings
from polyrelay.protocols.registry import WireProtocol
from polyrelay.relay import surfaces
from polyrelay.relay.completions import COMPLETIONS
from polyrelay.relay.embeddings import EMBEDDINGS
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.images import IMAGES
from polyrelay.relay.pipeline import relay
from polyrelay.relay.replies import Reply, StreamReply
from polyrelay.relay.surfaces import OPENAI_CHAT
from polyrelay.server.asgi import Scope, header
from polyrelay.server.keys import anthropic_key, bearer, gemini_key, query_params
from polyrelay.server.route import GENERATION_BODY, Params, Route
from polyrelay.store.keys import KeyRecord

_UNLIMITED_USD = 100_000_000.0


async def chat_completions(gw: Gateway, scope: Scope, body: bytes, key: KeyRecord,
                           params: Params) -> Reply | StreamReply:
    peek = openai_chat.fastpath.peek_request(body)
    router = gw.catalog.now.router
    if router.has_image_models and router.is_image_model(peek.model):   # a channel's `image_models`
        image = images.chat_peek(peek, estimate_prompt_tokens(body))
        return await relay(gw, OPENAI_CHAT, key, body, image, IMAGES)
    return await relay(gw, OPENAI_CHAT, key, body, peek)


async def completions(gw: Gateway, scope: Scope, body: bytes, key: KeyRecord | None,
                      params: Params) -> Reply | StreamReply:
    assert key is not None, "the route reads a key"
    return await relay(gw, OPENAI_CHAT, key, body, openai_completions.peek_request(body), COMPLETIONS)


async def embeddings(gw: Gateway, scope: Scope, body: bytes, key: KeyRecord | None,
                     params: Params) -> Reply | StreamReply:
    assert key is not None, "the route reads a key"
    return await relay(gw, OPENAI_CHAT, key, body, openai_embeddings.peek_request(body), EMBEDDINGS)


def list_shape(scope: Scope) -> str:
    """`GET /v1/models` serves three SDKs: pick the shape from what the caller sent (§5.3)."""
    if header(scope, b"anthropic-version") is not None:
        return "anthropic"
    if header(scope, b"x-goog-api-key") is not None or b"key=" in scope.get("query_string", b""):
        return "gemini"
    return "openai"


def list_errors(scope: Scope) -> WireProtocol:
    return {"anthropic": surfaces.ANTHROPIC_MESSAGES, "gemini": surfaces.GEMINI}.get(
        list_shape(scope), surfaces.OPENAI_CHAT).protocol


def list_key(scope: Scope) -> str | None:
    """The key from the header of the SDK the model list is shaped for."""
    return {"anthropic": anthropic_key, "gemini": gemini_key}.get(list_shape(scope), bearer)(scope)


async def list_models(gw: Gateway, scope: Scope, body: bytes, key: KeyRecord, params: Params) -> Reply:
    shape = list_shape(scope)
    models = gw.models_for(key)
    if shape == "anthropic":
        return Reply(200, model_lists.anthropic_list(models))
    if shape == "gemini":
        return Reply(200, model_lists.gemini_list(models))
    return Reply(200, model_lists.openai_list([(m, gw.channel_type(m)) for m in models]))


async def get_model(gw: Gateway, scope: Scope, body: bytes, key: KeyRecord, params: Params) -> Reply:
    shape = list_shape(scope)
    model = params["model"].removeprefix("models/")
    if not gw.may_use(key, model):
        raise GatewayError(404, "not_found", f"model '{model}' does not exist or this key may not use it",
                           param="model")
    if shape == "anthropic":
        return Reply(200, msgspec.json.encode(model_lists.anthropic_model(model)))
    if shape == "gemini":
        return Reply(200, msgspec.json.encode(model_lists.gemini_model(model)))
    return Reply(200, msgspec.json.encode(model_lists.openai_model(model, gw.channel_type(model))))


async def billing_subscription(gw: Gateway, scope: Scope, body: bytes, key: KeyRecord, params: Params) -> Reply:
    limit = _UNLIMITED_USD if key.quota_micros is None else key.quota_micros / 1_000_000
    return Reply(200, msgspec.json.encode({
        "object": "billing_subscription", "has_payment_method": True,
        "soft_limit_usd": limit, "hard_limit_usd": limit, "system_hard_limit_usd": limit,
        "access_until": 0,
    }))


def _day_ms(value: str | None, name: str, default: int) -> int:
    if not value:
        return default
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise GatewayError(400, "invalid_request", f"'{name}' must be a date like 2026-01-31",
                           param=name) from None
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)


async def billing_usage(gw: Gateway, scope: Scope, body: bytes, key: KeyRecord, params: Params) -> Reply:
    """`total_usage` in cents spent by this key from start_date to end_date (both days included)."""
    query = query_params(scope)
    start = _day_ms(query.get("start_date"), "start_date", 0)
    end = _day_ms(query.get("end_date"), "end_date", int(time.time() * 1000)) + DAY_MS
    if end <= start:
        raise GatewayError(400, "invalid_request", "'end_date' is before 'start_date'", param="end_date")
    micros = await spent_micros(gw.ledger, gw.engine, key.id, start, end)
    return Reply(200, msgspec.json.encode({"object": "list", "total_usage": micros / 10_000}))


ROUTES = [
    Route("POST", "/v1/chat/completions", chat_completions, key=bearer, body_limit=GENERATION_BODY),
    Route("POST", "/v1/completions", completions, key=bearer, body_limit=GENERATION_BODY),
    Route("POST", "/v1/embeddings", embeddings, key=bearer, body_limit=GENERATION_BODY),
    Route("GET", "/v1/models", list_models, key=list_key, errors=list_errors),
    Route("GET", "/v1/models/{model:path}", get_model, key=list_key, errors=list_errors),
    Route("GET", "/v1/dashboard/billing/subscription", billing_subscription, key=bearer),
    Route("GET", "/dashboard/billing/subscription", billing_subscription, key=bearer),
    Route("GET", "/v1/dashboard/billing/usage", billing_usage, key=bearer),
    Route("GET", "/dashboard/billing/usage", billing_usage, key=bearer),
]
