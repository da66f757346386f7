"""OpenAI's embeddings API (`POST /v1/embeddings`, `client.embeddings.create`): an operation with
its own wire format, not a chat-like protocol on the IR, so it is not in `PROTOCOLS`; relay/embeddings.py
serves it (docs/conversion.md, "Embeddings").

    client body --peek_request--> RequestPeek (model; nothing else is decoded on the pass-through)
      OpenAI channel: the body as it is (model renamed) --> /embeddings, usage and model read from the
                    answer's tail (answer.py: the vectors are not walked)
      a channel kind in UPSTREAMS (Gemini): parse_request --> Embedding request --> its embed API,
                    its vectors --> render_response (float, or base64: little-endian float32)

Errors are OpenAI's (the route renders them with openai_chat's errors)."""

from __future__ import annotations

from typing import Protocol

from polyrelay import ir
from polyrelay.protocols.openai_embeddings import answer, gemini
from polyrelay.protocols.openai_embeddings.request import (
    EmbeddingRequest,
    input_texts,
    parse_request,
    peek_request,
    upstream_body,
)
from polyrelay.protocols.openai_embeddings.response import Vector, pack_base64, render_response


class EmbeddingsUpstream(Protocol):
    """A channel protocol's embed API: the request for the inputs, and the vectors it answered (raw
    JSON arrays, in input order) with its usage, None when it reports none."""

    def render_request(self, req: EmbeddingRequest, upstream_model: str) -> bytes: ...
    def parse_response(self, body: bytes, count: int) -> tuple[list[Vector], ir.Usage | None]: ...


# channel protocol -> its embed API, for channels that do not speak OpenAI's
UPSTREAMS: dict[str, EmbeddingsUpstream] = {"gemini": gemini}

__all__ = [
    "UPSTREAMS",
    "EmbeddingRequest",
    "EmbeddingsUpstream",
    "Vector",
    "answer",
    "input_texts",
    "pack_base64",
    "parse_request",
    "peek_request",
    "render_response",
    "upstream_body",
]
