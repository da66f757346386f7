"""OpenAI surface: chat completions, model list, legacy billing endpoints."""

from __future__ import annotations

import datetime as dt
import time

import msgspec

from polyrelay.errors import GatewayError
from polyrelay.relay.chat import relay_chat
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.replies import Reply, StreamReply
from polyrelay.server.asgi import Scope
from polyrelay.server.keys import bearer, query_params
from polyrelay.store.logs import charged_between

_OWNER = {"openai": "openai", "anthropic": "anthropic", "gemini": "google"}
_UNLIMITED_USD = 100_000_000.0


async def chat_completions(gw: Gateway, scope: Scope, body: bytes) -> Reply | StreamReply:
    key = await gw.keys.authenticate(bearer(scope))
    return await relay_chat(gw, key, body)


def _owner(gw: Gateway, model: str) -> str:
    for ch in gw.router.candidates(model)[:1]:
        return _OWNER.get(ch.config.type, "polyrelay")
    return "polyrelay"


def _model_object(gw: Gateway, model: str) -> dict[str, object]:
    return {"id": model, "object": "model", "created": 0, "owned_by": _owner(gw, model)}


async def list_models(gw: Gateway, scope: Scope, body: bytes) -> Reply:
    key = await gw.keys.authenticate(bearer(scope))
    data = [_model_object(gw, m) for m in gw.models_for(key)]
    return Reply(200, msgspec.json.encode({"object": "list", "data": data}))


async def get_model(gw: Gateway, scope: Scope, body: bytes) -> Reply:
    key = await gw.keys.authenticate(bearer(scope))
    model = scope["path"].removeprefix("/v1/models/")
    if model not in gw.models_for(key):
        raise GatewayError(404, "not_found", f"model '{model}' does not exist or this key may not use it",
                           param="model")
    return Reply(200, msgspec.json.encode(_model_object(gw, model)))


async def billing_subscription(gw: Gateway, scope: Scope, body: bytes) -> Reply:
    key = await gw.keys.authenticate(bearer(scope))
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
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp() * 1000)


async def billing_usage(gw: Gateway, scope: Scope, body: bytes) -> Reply:
    """`total_usage` in cents spent by this key from start_date to end_date (both days included)."""
    key = await gw.keys.authenticate(bearer(scope))
    params = query_params(scope)
    start = _day_ms(params.get("start_date"), "start_date", 0)
    end = _day_ms(params.get("end_date"), "end_date", int(time.time() * 1000)) + 86_400_000
    if end <= start:
        raise GatewayError(400, "invalid_request", "'end_date' is before 'start_date'", param="end_date")
    await gw.ledger.flush()
    micros = await charged_between(gw.engine, key.id, start, end)
    return Reply(200, msgspec.json.encode({"object": "list", "total_usage": micros / 10_000}))


ROUTES = [
    ("POST", "/v1/chat/completions", chat_completions, True),
    ("GET", "/v1/models", list_models, False),
    ("GET", "/v1/models/", get_model, False),
    ("GET", "/v1/dashboard/billing/subscription", billing_subscription, False),
    ("GET", "/dashboard/billing/subscription", billing_subscription, False),
    ("GET", "/v1/dashboard/billing/usage", billing_usage, False),
    ("GET", "/dashboard/billing/usage", billing_usage, False),
]
