"""An image request and its answer in neutral form, between a client's images API and an
upstream's (the images counterpart of ir.py), and what each side of a conversion provides."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from polyrelay import ir
from polyrelay.protocols import RequestPeek

# the channel operation an upstream call goes to (a subset of channels.Operation)
ImageOperation = Literal["images", "image_edits"]
Body = bytes | tuple[bytes | memoryview, ...]


@dataclass(slots=True)
class InputImage:
    mime: str
    data: bytes | memoryview   # the raw image (decoded from base64 where it came so)


@dataclass(slots=True)
class ImageCall:
    model: str
    prompt: str
    n: int = 1
    size: str | None = None          # "WxH" or "auto"
    quality: str | None = None
    aspect_ratio: str | None = None  # "W:H"
    images: list[InputImage] = field(default_factory=list)   # images to edit
    mask: InputImage | None = None
    response_format: str | None = None   # "b64_json" | "url" (OpenAI clients)
    with_text: bool = False          # the client takes text parts as well as images (Gemini TEXT+IMAGE)
    background: str | None = None
    output_format: str | None = None


@dataclass(slots=True)
class GeneratedImage:
    mime: str
    b64: str


@dataclass(slots=True)
class ImageResult:
    images: list[GeneratedImage] = field(default_factory=list)
    usage: ir.Usage | None = None    # the upstream's token usage, if it reported any
    size: str | None = None
    quality: str | None = None
    text: str = ""


@dataclass(slots=True)
class Tally:
    """What an upstream's answer is billed on, read without decoding its images."""

    images: int
    size: str | None = None
    quality: str | None = None
    usage: ir.Usage | None = None


@dataclass(slots=True)
class Outgoing:
    operation: ImageOperation
    body: Body
    content_type: str | None = None   # None: the channel's own (JSON)


class ImageSide(Protocol):
    """One protocol's images API, as client and as upstream."""

    def parse(self, peek: RequestPeek, body: bytes) -> ImageCall: ...
    def passthrough(self, peek: RequestPeek, body: bytes, upstream_model: str) -> Outgoing: ...
    def requests(self, call: ImageCall, upstream_model: str) -> tuple[list[Outgoing], list[ir.Loss]]: ...
    def tally(self, data: bytes) -> Tally | None: ...
    def read(self, data: bytes) -> ImageResult: ...
    def render(self, result: ImageResult, call: ImageCall) -> bytes: ...


def combine(results: Iterable[ImageResult], call: ImageCall) -> ImageResult:
    """The answers of one request's upstream calls as one answer (a Gemini image model's `n` calls):
    their images and text in order, their usage summed, the size asked for where none was reported."""
    out = ImageResult()
    for one in results:
        out.images += one.images
        out.text += one.text
        out.size, out.quality = out.size or one.size, out.quality or one.quality
        if one.usage is not None:
            u = out.usage or ir.Usage()
            out.usage = ir.Usage(input_tokens=u.input_tokens + one.usage.input_tokens,
                                 output_tokens=u.output_tokens + one.usage.output_tokens)
    out.size = out.size or call.size
    return out


# Gemini's aspect ratios (imageConfig.aspectRatio)
RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")


def _ratio_value(text: str, sep: str) -> float | None:
    w, s, h = text.partition(sep)
    if not s or not w.isdigit() or not h.isdigit() or int(w) == 0 or int(h) == 0:
        return None
    return int(w) / int(h)


def ratio_of_size(size: str | None) -> str | None:
    """The Gemini aspect ratio nearest to a "WxH" size (None: "auto" or no size)."""
    value = _ratio_value(size or "", "x")
    if value is None:
        return None
    return min(RATIOS, key=lambda r: abs(math.log(value / (_ratio_value(r, ":") or 1.0))))


def size_of_ratio(ratio: str | None) -> str | None:
    """The gpt-image size of an aspect ratio: square, landscape or portrait (None: not given)."""
    value = _ratio_value(ratio or "", ":")
    if value is None:
        return None
    return "1024x1024" if value == 1 else "1536x1024" if value > 1 else "1024x1536"


def sniff_mime(data: bytes | memoryview) -> str:
    head = bytes(data[:12])
    if head.startswith(b"\x89PNG"):
        return "image/png"
    if head.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"GIF8"):
        return "image/gif"
    return "application/octet-stream"


__all__ = [
    "RATIOS",
    "Body",
    "GeneratedImage",
    "ImageCall",
    "ImageOperation",
    "ImageResult",
    "ImageSide",
    "InputImage",
    "Outgoing",
    "Tally",
    "combine",
    "ratio_of_size",
    "size_of_ratio",
    "sniff_mime",
]
