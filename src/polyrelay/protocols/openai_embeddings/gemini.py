"""OpenAI embeddings on Gemini's `batchEmbedContents` (one request per input, in order, at most 100):
`dimensions` -> `outputDimensionality`; `embeddings[].values` -> the vectors. Gemini reports no
token count for embeddings (a `usageMetadata.promptTokenCount`, if an upstream sends one, is used)."""

from __future__ import annotations

from typing import Any

import msgspec

from polyrelay import ir
from polyrelay.errors import GatewayError, invalid_request
from polyrelay.protocols.openai_embeddings.request import EmbeddingRequest
from polyrelay.protocols.openai_embeddings.response import Vector

MAX_BATCH = 100   # Gemini's limit on requests in one batchEmbedContents


def render_request(req: EmbeddingRequest, upstream_model: str) -> bytes:
    if len(req.inputs) > MAX_BATCH:
        raise invalid_request(f"'input' has {len(req.inputs)} items; a Gemini embedding model takes at most "
                              f"{MAX_BATCH} in one request", param="input")
    model = upstream_model if upstream_model.startswith("models/") else f"models/{upstream_model}"
    extra: dict[str, Any] = {} if req.dimensions is None else {"outputDimensionality": req.dimensions}
    return msgspec.json.encode({"requests": [{"model": model, "content": {"parts": [{"text": text}]}, **extra}
                                             for text in req.inputs]})


class _Embedding(msgspec.Struct):
    values: msgspec.Raw   # copied to a float answer as it is (response.py)


class _Usage(msgspec.Struct, rename="camel"):
    prompt_token_count: int | None = None


class _Answer(msgspec.Struct, rename="camel"):
    embeddings: list[_Embedding] = []
    usage_metadata: _Usage | None = None


def parse_response(body: bytes, count: int) -> tuple[list[Vector], ir.Usage | None]:
    try:
        answer = msgspec.json.decode(body, type=_Answer)
    except (msgspec.DecodeError, msgspec.ValidationError):
        answer = None
    if answer is not None and not all(memoryview(e.values)[:1].tobytes() == b"[" for e in answer.embeddings):
        answer = None   # a vector that is not an array
    if answer is None or len(answer.embeddings) != count:
        raise GatewayError(502, "upstream", f"the upstream answered with {len(answer.embeddings) if answer else 'no'} "
                           f"embeddings for {count} inputs", retryable=True)
    used = answer.usage_metadata.prompt_token_count if answer.usage_metadata else None
    return [e.values for e in answer.embeddings], (ir.Usage(input_tokens=used) if used else None)


__all__ = ["parse_response", "render_request"]
