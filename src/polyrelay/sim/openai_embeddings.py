"""Simulated OpenAI embeddings (`POST /v1/embeddings`), strict like the real endpoint: `input` a
string, strings (none empty, at most 2048) or token ids; `encoding_format` float or base64 (packed
little-endian float32); `dimensions` only for text-embedding-3 models, at most their size. The
vectors are deterministic per input text (unit length), so tests can compare channels."""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import Any

import msgspec

from polyrelay.sim.openai_chat import error_reply
from polyrelay.sim.replies import SimReply
from polyrelay.sim.script import Script
from polyrelay.tokens import estimate_text_tokens

SIZES = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


def vector(text: str, size: int) -> list[float]:
    """A unit vector from the text's hash: the same text, the same vector, whichever API asked."""
    raw = b"".join(hashlib.sha256(f"{text}:{i}".encode()).digest() for i in range((size * 4 + 31) // 32))
    values = [v / 2**31 for v in struct.unpack(f"<{size}i", raw[:size * 4])]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [struct.unpack("<f", struct.pack("<f", v / norm))[0] for v in values]   # float32 values


def _inputs(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value] if value else None
    if isinstance(value, list) and 0 < len(value) <= 2048:
        if all(isinstance(v, str) and v for v in value):
            return list(value)
        if all(isinstance(t, int) and not isinstance(t, bool) for t in value):
            return [" ".join(map(str, value))]
        if all(isinstance(v, list) and v and all(isinstance(t, int) for t in v) for v in value):
            return [" ".join(map(str, v)) for v in value]
    return None


def handle(body: bytes, script: Script) -> SimReply:
    try:
        req = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return error_reply(400, "We could not parse the JSON body of your request.")
    if not isinstance(req, dict) or not isinstance(req.get("model"), str):
        return error_reply(400, "you must provide a model parameter")
    model = req["model"]
    size = SIZES.get(model.split("@")[0], 0)
    if not size:
        return error_reply(404, f"The model `{model}` does not exist or you do not have access to it.")
    inputs = _inputs(req.get("input"))
    if inputs is None:
        return error_reply(400, "'$.input' is invalid. Please check the API reference: "
                           "https://platform.openai.com/docs/api-reference.")
    encoding = req.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        return error_reply(400, "Invalid value for 'encoding_format': expected 'float' or 'base64'")
    dimensions = req.get("dimensions")
    if dimensions is not None:
        if not model.startswith("text-embedding-3"):
            return error_reply(400, "This model does not support specifying dimensions.")
        if not isinstance(dimensions, int) or isinstance(dimensions, bool) or not 1 <= dimensions <= size:
            return error_reply(400, f"Invalid 'dimensions': expected an integer between 1 and {size}")
        size = dimensions
    if script.status >= 400:
        return error_reply(script.status, f"simulated error {script.status}")
    data = []
    for i, text in enumerate(inputs):
        values = vector(text, size)
        embedding: Any = values if encoding == "float" else base64.b64encode(
            struct.pack(f"<{size}f", *values)).decode()
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    tokens = sum(len(t.split()) if t.replace(" ", "").isdigit() else estimate_text_tokens(t) for t in inputs)
    answer: dict[str, Any] = {"object": "list", "data": data, "model": model}
    if not script.nousage:
        answer["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return SimReply(200, msgspec.json.encode(answer))
