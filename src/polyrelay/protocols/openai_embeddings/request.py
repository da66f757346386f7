"""Embedding requests: the peek (model; the rest stays raw bytes), the renamed body of a pass-through,
and the whole request for a conversion (strings only: token ids are no text another API takes)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from polyrelay.errors import invalid_request
from polyrelay.protocols._common import decode_json_object, expect
from polyrelay.protocols._passthrough import RequestPeek, decode_top, field, with_field

MAX_INPUTS = 2048   # OpenAI's limit on inputs per request
Encoding = Literal["float", "base64"]


class EmbeddingRequest(msgspec.Struct, frozen=True):
    inputs: list[str]
    dimensions: int | None = None
    encoding_format: Encoding = "float"


def peek_request(body: bytes) -> RequestPeek:
    top = decode_top(body)
    model = field(top, "model", str | None)
    if not model:
        raise invalid_request("'model' is required", param="model")
    if "input" not in top:
        raise invalid_request("'input' is required", param="input")
    return RequestPeek(top, model, False, False, None, 1)  # type: ignore[arg-type]


def upstream_body(peek: RequestPeek, upstream_model: str) -> bytes:
    return msgspec.json.encode(with_field(peek.top, "model", upstream_model))


def _is_tokens(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(t, int) and not isinstance(t, bool)
                                                           for t in value)


def input_texts(value: Any) -> list[str] | list[list[int]]:
    """The inputs as a list: strings, or token-id arrays. Anything else is a 400."""
    if isinstance(value, str) or _is_tokens(value):
        value = [value]
    if not isinstance(value, list) or not value:
        raise invalid_request("'input' must be a string, a list of strings, or token ids", param="input")
    expect(len(value) <= MAX_INPUTS, f"'input' must have at most {MAX_INPUTS} items", "input")
    if all(isinstance(v, str) for v in value):
        expect(all(v != "" for v in value), "'input' must not contain empty strings", "input")
        return value
    if all(_is_tokens(v) for v in value):
        return value
    raise invalid_request("'input' must be a string, a list of strings, or token ids", param="input")


def parse_request(body: bytes) -> EmbeddingRequest:
    """For a conversion: a 400 naming the field for what the other API cannot take."""
    b = decode_json_object(body)
    inputs = input_texts(b.get("input"))
    if not all(isinstance(v, str) for v in inputs):
        raise invalid_request("'input' of token ids can only go to an OpenAI channel; this model is served by "
                              "another kind: send the text", param="input")
    dimensions = b.get("dimensions")
    expect(dimensions is None or (isinstance(dimensions, int) and not isinstance(dimensions, bool) and dimensions > 0),
           "'dimensions' must be a positive integer", "dimensions")
    encoding = b.get("encoding_format") or "float"
    expect(encoding in ("float", "base64"), "'encoding_format' must be 'float' or 'base64'", "encoding_format")
    return EmbeddingRequest(inputs, dimensions, encoding)  # type: ignore[arg-type]


__all__ = ["EmbeddingRequest", "Encoding", "input_texts", "parse_request", "peek_request", "upstream_body"]
