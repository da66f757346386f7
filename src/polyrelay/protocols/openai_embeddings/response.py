"""Vectors as OpenAI's embeddings answer: floats, or base64 of the little-endian float32 array (what
the openai SDK asks for by default and unpacks with numpy's float32)."""

from __future__ import annotations

import base64
import struct
from typing import Any

import msgspec

from polyrelay import ir
from polyrelay.protocols.openai_embeddings.request import Encoding


def pack_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def render_response(vectors: list[list[float]], model: str, encoding: Encoding, usage: ir.Usage) -> bytes:
    data: list[dict[str, Any]] = [
        {"object": "embedding", "index": i, "embedding": pack_base64(v) if encoding == "base64" else v}
        for i, v in enumerate(vectors)]
    return msgspec.json.encode({"object": "list", "data": data, "model": model,
                                "usage": {"prompt_tokens": usage.input_tokens, "total_tokens": usage.input_tokens}})


__all__ = ["pack_base64", "render_response"]
