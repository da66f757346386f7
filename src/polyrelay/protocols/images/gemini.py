"""Gemini image models (generateContent with responseModalities IMAGE) as a side of an image
conversion: an image request is one generateContent call per image asked for (n calls; the image
models answer one candidate), images in as inlineData parts, images out from inlineData parts."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec

from polyrelay import ir
from polyrelay.errors import GatewayError
from polyrelay.protocols import RequestPeek
from polyrelay.protocols.gemini.wire import UsageMetadata, usage_to_ir
from polyrelay.protocols.images.call import (
    GeneratedImage,
    ImageCall,
    ImageResult,
    InputImage,
    Outgoing,
    Tally,
    ratio_of_size,
)


class _InlineData(msgspec.Struct):
    mimeType: str = "image/png"
    data: str = ""


class _Part(msgspec.Struct):
    text: str | None = None
    inlineData: _InlineData | None = None
    thought: bool = False


class _Content(msgspec.Struct):
    parts: list[_Part] = []
    role: str = "user"


class _Candidate(msgspec.Struct):
    content: _Content | None = None
    finishReason: str | None = None


class _Answer(msgspec.Struct):
    candidates: list[_Candidate] = []
    usageMetadata: UsageMetadata | None = None


class _CountedPart(msgspec.Struct):
    inlineData: msgspec.Raw = msgspec.Raw(b"")   # counted, not decoded


class _CountedContent(msgspec.Struct):
    parts: list[_CountedPart] = []


class _CountedCandidate(msgspec.Struct):
    content: _CountedContent | None = None


class _Counted(msgspec.Struct):
    candidates: list[_CountedCandidate] = []
    usageMetadata: UsageMetadata | None = None


class _ImageConfig(msgspec.Struct):
    aspectRatio: str | None = None


class _GenerationConfig(msgspec.Struct):
    responseModalities: list[str] = []
    imageConfig: _ImageConfig | None = None
    candidateCount: int = 1


class _Request(msgspec.Struct):
    contents: list[_Content] = []
    generationConfig: _GenerationConfig | None = None


def _b64decode(text: str) -> bytes:
    try:   # standard or URL-safe, as Gemini takes them (google-genai sends URL-safe)
        return base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise GatewayError(400, "invalid_request", "an inlineData image is not valid base64") from None


def wants_image(top: dict[str, msgspec.Raw]) -> bool:
    """A generateContent request asking for image output (responseModalities has IMAGE), from the
    route's peek (top-level values still raw): only a generation config that names IMAGE is decoded."""
    found = top.get("generationConfig") or top.get("generation_config")
    if found is None:
        return False
    raw = bytes(found)   # a generation config: a few hundred bytes
    if b"IMAGE" not in raw:
        return False
    try:
        cfg = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return False   # the generate route reports what is wrong with it
    if not isinstance(cfg, dict):
        return False
    modalities = cfg.get("responseModalities") or cfg.get("response_modalities")
    return isinstance(modalities, list) and any(isinstance(m, str) and m.upper() == "IMAGE" for m in modalities)


class GeminiImages:
    """Gemini generateContent for image models, as a side of a conversion (call.ImageSide)."""

    def parse(self, peek: RequestPeek, body: bytes) -> ImageCall:
        try:
            req = msgspec.json.decode(body, type=_Request)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            raise GatewayError(400, "invalid_request", "the request is malformed") from None
        texts: list[str] = []
        images: list[InputImage] = []
        for content in req.contents:
            if content.role != "user":
                continue
            for part in content.parts:
                if part.inlineData is not None:
                    images.append(InputImage(part.inlineData.mimeType, _b64decode(part.inlineData.data)))
                elif part.text:
                    texts.append(part.text)
        cfg = req.generationConfig or _GenerationConfig()
        if not texts:
            raise GatewayError(400, "invalid_request", "the request has no text prompt")
        ratio = cfg.imageConfig.aspectRatio if cfg.imageConfig else None
        return ImageCall(peek.model, "\n".join(texts), max(1, cfg.candidateCount), aspect_ratio=ratio,
                         images=images, with_text=any(m.upper() == "TEXT" for m in cfg.responseModalities))

    def passthrough(self, peek: RequestPeek, body: bytes, upstream_model: str) -> Outgoing:
        return Outgoing("images", body)   # the model is in the URL

    def requests(self, call: ImageCall, upstream_model: str) -> tuple[list[Outgoing], list[ir.Loss]]:
        parts: list[dict[str, Any]] = [
            {"inlineData": {"mimeType": im.mime, "data": base64.b64encode(im.data).decode()}} for im in call.images]
        parts.append({"text": call.prompt})
        cfg: dict[str, Any] = {"responseModalities": ["TEXT", "IMAGE"] if call.with_text else ["IMAGE"]}
        ratio = call.aspect_ratio or ratio_of_size(call.size)
        if ratio:
            cfg["imageConfig"] = {"aspectRatio": ratio}
        losses = [ir.Loss(name, "dropped", "Gemini image models have no such setting")
                  for name, value in (("quality", call.quality), ("background", call.background),
                                      ("output_format", call.output_format)) if value not in (None, "auto")]
        if call.size and ratio:
            losses.append(ir.Loss("size", "changed", f"sent as aspectRatio {ratio}"))
        if call.mask is not None:
            losses.append(ir.Loss("mask", "dropped",
                                  "Gemini image models take no mask; the prompt says what to change"))
        body = msgspec.json.encode({"contents": [{"role": "user", "parts": parts}], "generationConfig": cfg})
        return [Outgoing("image_edits" if call.images else "images", body) for _ in range(call.n)], losses

    def tally(self, data: bytes) -> Tally | None:
        try:
            answer = msgspec.json.decode(data, type=_Counted)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return None
        images = sum(1 for c in answer.candidates if c.content for p in c.content.parts if p.inlineData)
        usage = usage_to_ir(answer.usageMetadata) if answer.usageMetadata else None
        return Tally(images, usage=usage)

    def read(self, data: bytes) -> ImageResult:
        answer = msgspec.json.decode(data, type=_Answer)
        result = ImageResult(usage=usage_to_ir(answer.usageMetadata) if answer.usageMetadata else None)
        texts = []
        for candidate in answer.candidates:
            for part in candidate.content.parts if candidate.content else []:
                if part.inlineData is not None:
                    # URL-safe base64 from some clients' upstreams: an OpenAI client expects standard
                    b64 = part.inlineData.data.replace("-", "+").replace("_", "/")
                    result.images.append(GeneratedImage(part.inlineData.mimeType, b64))
                elif part.text and not part.thought:
                    texts.append(part.text)
        result.text = "".join(texts)
        return result

    def render(self, result: ImageResult, call: ImageCall) -> bytes:
        parts: list[dict[str, Any]] = []
        if call.with_text and result.text:
            parts.append({"text": result.text})
        parts += [{"inlineData": {"mimeType": im.mime, "data": im.b64}} for im in result.images]
        out: dict[str, Any] = {
            "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
            "modelVersion": call.model}
        if result.usage is not None:
            out["usageMetadata"] = _usage_metadata(result.usage, len(result.images))
        return msgspec.json.encode(out)


def _usage_metadata(u: ir.Usage, images: int) -> dict[str, Any]:
    meta: dict[str, Any] = {"promptTokenCount": u.input_tokens, "candidatesTokenCount": u.output_tokens,
                            "totalTokenCount": u.input_tokens + u.output_tokens}
    if images:
        meta["candidatesTokensDetails"] = [{"modality": "IMAGE", "tokenCount": u.output_tokens}]
    return meta


GEMINI = GeminiImages()

__all__ = ["GEMINI", "GeminiImages", "wants_image"]
