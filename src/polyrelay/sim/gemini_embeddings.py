"""Simulated Gemini embeddings: `:embedContent` and `:batchEmbedContents`, strict like the real API
(an embedding model only; text parts only; every batch entry names the URL's model as `models/<m>`;
`outputDimensionality` 1..3072). No token count in the answer, as the real API sends none. The
vectors are the OpenAI simulator's for the same text (sim/openai_embeddings.vector)."""

from __future__ import annotations

from typing import Any

from polyrelay.sim.gemini import Invalid, _check, get
from polyrelay.sim.openai_embeddings import vector

SIZE = 3072


def _embedding(req: Any, model: str, where: str) -> dict[str, Any]:
    _check(isinstance(req, dict), f"{where}: must be an object")
    parts = get(get(req, "content", {}), "parts")
    _check(isinstance(parts, list) and len(parts) > 0, f"{where}.content.parts must not be empty")
    _check(all(isinstance(p, dict) and set(p) == {"text"} and isinstance(p["text"], str) for p in parts),
           f"{where}.content.parts: only text parts can be embedded")
    size = get(req, "outputDimensionality", SIZE)
    _check(isinstance(size, int) and not isinstance(size, bool) and 1 <= size <= SIZE,
           f"{where}.outputDimensionality must be from 1 to {SIZE}")
    return {"values": vector(" ".join(p["text"] for p in parts), size)}


def handle(req: Any, model: str, method: str) -> dict[str, Any]:
    """The answer to `method` (embedContent, batchEmbedContents); Invalid for a bad request."""
    if "embedding" not in model:
        raise Invalid(f"models/{model} is not found for API version v1beta, or is not supported for {method}.")
    if method == "embedContent":
        return {"embedding": _embedding(req, model, "request")}
    requests = get(req, "requests")
    _check(isinstance(requests, list) and 0 < len(requests) <= 100, "requests must hold 1 to 100 entries")
    for i, r in enumerate(requests):
        _check(get(r, "model") == f"models/{model}",
               f"requests[{i}].model: Model names in a batch must match the URL's models/{model}")
    return {"embeddings": [_embedding(r, model, f"requests[{i}]") for i, r in enumerate(requests)]}
