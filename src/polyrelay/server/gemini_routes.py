"""Gemini surface: `/v1beta/models/{model}:{method}` and the same under `/v1/models/` (google-genai's
default), plus the `/v1beta/models` list."""

from __future__ import annotations

import msgspec

from polyrelay.billing.estimate import estimate_prompt_tokens
from polyrelay.errors import GatewayError
from polyrelay.protocols import gemini, images, model_lists
from polyrelay.relay.count_tokens import COUNT_TOKENS, parse_request, peek_of
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.images import IMAGES
from polyrelay.relay.pipeline import relay
from polyrelay.relay.replies import Reply, StreamReply
from polyrelay.relay.surfaces import GEMINI
from polyrelay.server.asgi import Scope
from polyrelay.server.keys import gemini_key, query_params
from polyrelay.server.route import GENERATION_BODY, Params, Route
from polyrelay.store.keys import KeyRecord

_METHODS = ("generateContent", "streamGenerateContent", "countTokens")


def _unknown_method(path: str) -> GatewayError:
    return GatewayError(404, "not_found", f"unknown method in {path}: use one of {', '.join(_METHODS)}")


async def model_method(gw: Gateway, scope: Scope, body: bytes, key: KeyRecord, params: Params) -> Reply | StreamReply:
    model, method = params["model"], params["method"]
    if not model or method not in _METHODS:
        raise _unknown_method(scope["path"])
    if method == "countTokens":
        return await _count_tokens(gw, key, model, body)
    stream = method == "streamGenerateContent"
    peek = gemini.fastpath.peek_request(body, model, stream, query_params(scope).get("alt"))
    if not stream and images.wants_image(peek.top):   # an image model asked for images
        image = images.ImagePeek(images.ImageRequest(model=model, n=peek.n), prompt_tokens=estimate_prompt_tokens(body))
        return await relay(gw, GEMINI, key, body, image, IMAGES)
    return await relay(gw, GEMINI, key, body, peek)


async def no_method(gw: Gateway, scope: Scope, body: bytes, key: KeyRecord, params: Params) -> Reply:
    """A POST under models/ without `:{method}`: the Gemini-shaped 404 that names the methods."""
    raise _unknown_method(scope["path"])


async def _count_tokens(gw: Gateway, key: KeyRecord, model: str, body: bytes) -> Reply | StreamReply:
    """Asked natively of the model's Gemini or Anthropic channel; estimated locally otherwise."""
    req = parse_request(GEMINI, body)
    req.model = model
    return await relay(gw, GEMINI, key, body, peek_of(req), COUNT_TOKENS, parsed=req)


async def list_models(gw: Gateway, scope: Scope, body: bytes, key: KeyRecord, params: Params) -> Reply:
    return Reply(200, model_lists.gemini_list(gw.models_for(key)))


async def get_model(gw: Gateway, scope: Scope, body: bytes, key: KeyRecord, params: Params) -> Reply:
    model = params["model"]
    if not gw.may_use(key, model):
        raise GatewayError(404, "not_found", f"model 'models/{model}' is not found for this key")
    return Reply(200, msgspec.json.encode(model_lists.gemini_model(model)))


# one route serves generateContent, streamGenerateContent and countTokens: the generation cap
ROUTES = [
    Route("POST", "/v1beta/models/{model:path}:{method}", model_method, key=gemini_key, body_limit=GENERATION_BODY),
    Route("POST", "/v1/models/{model:path}:{method}", model_method, key=gemini_key, body_limit=GENERATION_BODY),
    # the same head (key, body cap) as the generation route: a caller finds out the path is wrong
    # the way it would find out anything else
    Route("POST", "/v1beta/models/{rest:path}", no_method, key=gemini_key, body_limit=GENERATION_BODY),
    Route("POST", "/v1/models/{rest:path}", no_method, key=gemini_key, body_limit=GENERATION_BODY),
    Route("GET", "/v1beta/models", list_models, key=gemini_key),
    Route("GET", "/v1beta/models/{model:path}", get_model, key=gemini_key),
]
