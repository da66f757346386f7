"""Legacy completion requests: the peek every path reads, and the IR a conversion renders.

`max_tokens` defaults to 16, as OpenAI's endpoint does: a converted request sends 16 to a chat
upstream, which has no such default. `best_of` completions are generated (and billed) upstream for
each answer returned, so the reservation counts `max(n, best_of)` answers.

A conversion carries prompt (a string, or a list of one string), max_tokens, temperature, top_p,
stop, seed, n, frequency/presence penalties, user and stream_options. What it cannot honour is a
400 naming the field, never a silently different answer: `suffix`, `echo`, `logprobs`, `logit_bias`,
`best_of` above `n`, token-array prompts and several prompts.
"""

from __future__ import annotations

from typing import Any

import msgspec

from polyrelay import ir
from polyrelay.config import MAX_OUTPUT_TOKENS
from polyrelay.errors import invalid_request
from polyrelay.protocols import limits
from polyrelay.protocols._common import decode_json_object, expect
from polyrelay.protocols._passthrough import RequestPeek, decode_top, field

DEFAULT_MAX_TOKENS = 16   # OpenAI's default for /v1/completions
MAX_BEST_OF = 20


class _StreamOptions(msgspec.Struct):
    include_usage: bool | None = None


def _answers(fields: limits.Fields) -> int:
    n = limits.integer(fields.get("n"), "n", 1, limits.MAX_CHOICES) or 1
    best_of = limits.integer(fields.get("best_of"), "best_of", 1, MAX_BEST_OF)
    if best_of is not None and best_of < n:
        raise invalid_request("'best_of' must be greater than or equal to 'n'", param="best_of")
    return max(n, best_of or 1)


def peek_request(body: bytes) -> RequestPeek:
    top = decode_top(body)
    model = field(top, "model", str | None)
    if not model:
        raise invalid_request("'model' is required", param="model")
    if "prompt" not in top:
        raise invalid_request("'prompt' is required", param="prompt")
    fields = limits.RawFields(top)
    max_tokens = limits.integer(fields.get("max_tokens"), "max_tokens", 0, MAX_OUTPUT_TOKENS)
    options = field(top, "stream_options", _StreamOptions | None)
    stream = bool(field(top, "stream", bool | None, False))
    include_usage = isinstance(options, _StreamOptions) and bool(options.include_usage)
    return RequestPeek(top, model, stream, include_usage,  # type: ignore[arg-type]
                       DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens, _answers(fields))


def _prompt(value: Any) -> str:
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        value = value[0]
    if isinstance(value, str):
        expect(value != "", "'prompt' must not be empty when the model is served by a chat model", "prompt")
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        raise invalid_request("'prompt' with several prompts cannot be served by a chat model: send one "
                              "request per prompt", param="prompt")
    if isinstance(value, list) and value and all(isinstance(v, (int, list)) for v in value):
        raise invalid_request("a 'prompt' of token ids cannot be served by a chat model: send the text",
                              param="prompt")
    raise invalid_request("'prompt' must be a string or a list of one string", param="prompt")


# fields a chat model cannot honour, with when they are harmless (their default values)
_NOT_CONVERTIBLE: dict[str, tuple[object, ...]] = {
    "suffix": (None, ""), "echo": (None, False), "logprobs": (None,), "logit_bias": (None, {})}


def _unconvertible(b: dict[str, Any]) -> None:
    for name, harmless in _NOT_CONVERTIBLE.items():
        if b.get(name) not in harmless:
            raise invalid_request(f"'{name}' cannot be honoured: the model is served by a chat model, which has "
                                  f"no {name}", param=name)


def _number(b: dict[str, Any], name: str, kind: type = float) -> Any:
    value = b.get(name)
    if value is None:
        return None
    expect(isinstance(value, (int, float)) and not isinstance(value, bool), f"'{name}' must be a number", name)
    if kind is int:
        expect(isinstance(value, int), f"'{name}' must be an integer", name)
    return value


def parse_request(body: bytes) -> ir.Request:
    """The completion as a chat request: the prompt is one user message."""
    b = decode_json_object(body)
    model = b.get("model")
    expect(isinstance(model, str) and bool(model), "'model' is required", "model")
    _unconvertible(b)
    n = limits.integer(b.get("n"), "n", 1, limits.MAX_CHOICES)
    if _answers(b) != (n or 1):
        raise invalid_request("'best_of' above 'n' cannot be honoured: the model is served by a chat model, "
                              "which cannot pick the best of several answers", param="best_of")
    max_tokens = limits.integer(b.get("max_tokens"), "max_tokens", 0, MAX_OUTPUT_TOKENS)
    expect(max_tokens != 0, "'max_tokens' 0 (echo scoring) needs a native completions model", "max_tokens")
    stop = b.get("stop")
    expect(stop is None or isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop)),
           "'stop' must be a string or a list of strings", "stop")
    options = b.get("stream_options") or {}
    user = b.get("user")
    return ir.Request(
        model=model, messages=[ir.Message("user", [ir.TextPart(_prompt(b.get("prompt")))])],  # type: ignore[arg-type]
        stream=bool(b.get("stream")), max_tokens=DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens,
        temperature=_number(b, "temperature"), top_p=_number(b, "top_p"),
        stop=[stop] if isinstance(stop, str) else list(stop or []), seed=_number(b, "seed", int), n=n,
        frequency_penalty=_number(b, "frequency_penalty"), presence_penalty=_number(b, "presence_penalty"),
        user=user if isinstance(user, str) else None,
        include_usage=bool(isinstance(options, dict) and options.get("include_usage")))
