"""Simulated OpenAI images API: /v1/images/generations (JSON) and /v1/images/edits (multipart),
validated strictly like the real API (unknown fields, sizes and qualities per model, files that are
not images). gpt-image models answer base64 with token usage; dall-e models answer without usage
(and URLs when asked)."""

from __future__ import annotations

import base64
import struct
import time
import zlib
from typing import Any

import msgspec

from polyrelay.sim.replies import SimReply
from polyrelay.sim.script import Script

_COMMON = {"model", "prompt", "n", "size", "quality", "response_format", "user", "background", "moderation",
           "output_compression", "output_format", "style", "stream", "partial_images", "safety_identifier"}
_EDIT_ONLY = {"image", "image[]", "mask", "input_fidelity"}
_SIZES = {"gpt-image": {"1024x1024", "1536x1024", "1024x1536", "auto"},
          "dall-e-3": {"1024x1024", "1792x1024", "1024x1792"},
          "dall-e-2": {"256x256", "512x512", "1024x1024"}}
_QUALITIES = {"gpt-image": {"low", "medium", "high", "auto"}, "dall-e-3": {"standard", "hd"},
              "dall-e-2": {"standard"}}
# gpt-image-1 output tokens per image, by quality and size (OpenAI's published table)
_TOKENS = {("low", "1024x1024"): 272, ("low", "1024x1536"): 408, ("low", "1536x1024"): 400,
           ("medium", "1024x1024"): 1056, ("medium", "1024x1536"): 1584, ("medium", "1536x1024"): 1568,
           ("high", "1024x1024"): 4160, ("high", "1024x1536"): 6240, ("high", "1536x1024"): 6208}
IMAGE_INPUT_TOKENS = 323   # per image to edit


class Invalid(Exception):
    pass


def error_reply(status: int, message: str, param: str | None = None, code: str | None = None) -> SimReply:
    kind = "invalid_request_error" if status == 400 else "server_error" if status >= 500 else "api_error"
    return SimReply(status, msgspec.json.encode({"error": {"message": message, "type": kind, "param": param,
                                                           "code": code}}))


def _family(model: str) -> str:
    if model.startswith("gpt-image") or model.endswith("-image"):
        return "gpt-image"
    return "dall-e-3" if model.startswith("dall-e-3") else "dall-e-2"


def png(width: int, height: int, tag: bytes = b"") -> bytes:
    """A small valid PNG. Its private chunk of 0xfb bytes puts '+' and '/' in its base64, as real
    images have (a converter that mangles them, or uses URL-safe base64, is caught)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\x30\x90\xf0" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"prVt", b"\xfb" * 6 + tag) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def _check(ok: bool, message: str, param: str | None = None) -> None:
    if not ok:
        raise Invalid(message, param)


def _validate(fields: dict[str, Any], edit: bool) -> tuple[str, int, str, str]:
    allowed = _COMMON | (_EDIT_ONLY if edit else set())
    for name in fields:
        _check(name in allowed, f"Unknown parameter: '{name}'.", name)
    model = fields.get("model")
    _check(isinstance(model, str) and bool(model), "you must provide a model parameter", "model")
    family = _family(str(model))
    prompt = fields.get("prompt")
    _check(isinstance(prompt, str) and bool(prompt.strip()), "Missing required parameter: 'prompt'.", "prompt")
    n = fields.get("n", 1)
    _check(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 10, "n must be from 1 to 10", "n")
    _check(family != "dall-e-3" or n == 1, "dall-e-3 only supports n=1", "n")
    size = fields.get("size", "auto" if family == "gpt-image" else "1024x1024")
    _check(size in _SIZES[family], f"Invalid value: '{size}'. Supported values are: "
           f"{', '.join(sorted(_SIZES[family]))}.", "size")
    quality = fields.get("quality", "auto" if family == "gpt-image" else "standard")
    _check(quality in _QUALITIES[family], f"Invalid value: '{quality}' for quality.", "quality")
    fmt = fields.get("response_format")
    _check(fmt in (None, "b64_json", "url"), f"Invalid value: '{fmt}' for response_format.", "response_format")
    _check(family != "gpt-image" or fmt != "url", "response_format 'url' is not supported for gpt-image models; "
           "they always return base64", "response_format")
    for name in ("background", "output_format", "output_compression", "moderation"):
        _check(family == "gpt-image" or name not in fields, f"{name} is only supported for gpt-image models", name)
    _check(fields.get("background") in (None, "transparent", "opaque", "auto"), "Invalid background", "background")
    _check(fields.get("output_format") in (None, "png", "jpeg", "webp"), "Invalid output_format", "output_format")
    _check(not fields.get("stream"), "streaming is not simulated", "stream")
    return family, n, size, quality


def _answer(fields: dict[str, Any], family: str, n: int, size: str, quality: str, images_in: int) -> SimReply:
    actual_size = "1024x1024" if size == "auto" else size
    actual_quality = "high" if quality == "auto" else quality
    w, h = (int(x) // 128 for x in actual_size.split("x"))
    created = int(time.time())
    if family == "gpt-image":
        data = [{"b64_json": base64.b64encode(png(w, h, bytes([i]))).decode()} for i in range(n)]
        text = len(str(fields["prompt"])) // 4 + 1
        output = _TOKENS.get((actual_quality, actual_size), 4160) * n
        image_in = IMAGE_INPUT_TOKENS * images_in
        return SimReply(200, msgspec.json.encode({
            "created": created, "data": data, "background": fields.get("background", "opaque"),
            "output_format": fields.get("output_format", "png"), "quality": actual_quality, "size": actual_size,
            "usage": {"input_tokens": text + image_in, "output_tokens": output,
                      "total_tokens": text + image_in + output,
                      "input_tokens_details": {"text_tokens": text, "image_tokens": image_in}}}))
    if fields.get("response_format") == "url":
        data = [{"url": f"https://sim.invalid/images/{created}-{i}.png"} for i in range(n)]
    else:
        data = [{"b64_json": base64.b64encode(png(w, h, bytes([i]))).decode()} for i in range(n)]
    if family == "dall-e-3":
        for item in data:
            item["revised_prompt"] = f"A detailed rendering of: {fields['prompt']}"
    return SimReply(200, msgspec.json.encode({"created": created, "data": data}))


def generations(body: bytes, script: Script) -> SimReply:
    try:
        fields = msgspec.json.decode(body)
        _check(isinstance(fields, dict), "the body must be a JSON object")
        family, n, size, quality = _validate(fields, edit=False)
    except msgspec.DecodeError:
        return error_reply(400, "We could not parse the JSON body of your request.")
    except Invalid as e:
        return error_reply(400, *e.args)
    if script.status >= 400:
        return error_reply(script.status, f"simulated error {script.status}")
    return _answer(fields, family, n, size, quality, 0)


def parse_form(body: bytes, content_type: str) -> tuple[dict[str, Any], list[tuple[str, str, str, bytes]]]:
    """Text fields and files (name, filename, content type, content) of a multipart body."""
    _check(content_type.startswith("multipart/form-data"), "Invalid Content-Type header, expected multipart/form-data")
    boundary = content_type.partition("boundary=")[2].strip('"').encode()
    _check(bool(boundary), "multipart body has no boundary")
    fields: dict[str, Any] = {}
    files: list[tuple[str, str, str, bytes]] = []
    delimiter = b"\r\n--" + boundary
    _check(body.startswith(b"--" + boundary + b"\r\n"), "malformed multipart body")
    pos = len(boundary) + 2
    while body.startswith(b"\r\n", pos):
        head_end = body.index(b"\r\n\r\n", pos)
        headers = body[pos + 2:head_end].decode()
        end = body.index(delimiter, head_end + 4)
        content = body[head_end + 4:end]
        disposition = next(line for line in headers.split("\r\n") if line.lower().startswith("content-disposition"))
        params = dict(p.strip().partition("=")[::2] for p in disposition.split(";")[1:])
        name = params["name"].strip('"')
        if "filename" in params:
            ctype = next((line.partition(":")[2].strip() for line in headers.split("\r\n")
                          if line.lower().startswith("content-type")), "application/octet-stream")
            files.append((name, params["filename"].strip('"'), ctype, content))
        else:
            value: Any = content.decode()
            fields[name] = int(value) if name in ("n", "output_compression", "partial_images") and value.isdigit() \
                else value == "true" if name == "stream" else value
        pos = end + len(delimiter)
    _check(body.startswith(b"--", pos), "multipart body does not end with the closing boundary")
    return fields, files


def edits(body: bytes, headers: dict[str, str], script: Script) -> tuple[SimReply, dict[str, Any]]:
    """The answer, and a summary of the form for the request log (not its megabytes)."""
    summary: dict[str, Any] = {}
    try:
        fields, files = parse_form(body, headers.get("content-type", ""))
        summary = {"fields": fields, "files": [{"name": n, "filename": f, "content_type": c, "bytes": len(d),
                                                "sha256_head": d[:16].hex()} for n, f, c, d in files]}
        for name, _, ctype, data in files:
            fields.setdefault(name, True)
            _check(data.startswith((b"\x89PNG", b"\xff\xd8", b"RIFF")),
                   f"Invalid file '{name}': unsupported mimetype ('{ctype}'). Supported file formats are "
                   "'image/jpeg', 'image/png', and 'image/webp'.", name)
        images = [f for f in files if f[0] in ("image", "image[]")]
        _check(bool(images), "Missing required parameter: 'image'.", "image")
        family, n, size, quality = _validate(fields, edit=True)
        _check(family == "gpt-image" or len(images) == 1, "dall-e-2 edits take exactly one image", "image")
    except Invalid as e:
        return error_reply(400, *e.args), summary
    except (ValueError, KeyError, StopIteration, UnicodeDecodeError):
        return error_reply(400, "malformed multipart body"), summary
    if script.status >= 400:
        return error_reply(script.status, f"simulated error {script.status}"), summary
    return _answer(fields, family, n, size, quality, len(images)), summary
