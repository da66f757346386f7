"""The OpenAI images API's fields the gateway reads: the request (JSON for generations, a form for
edits) and the answer (how many images, at what size and quality, the token usage if reported)."""

from __future__ import annotations

import time

import msgspec

from polyrelay import ids, ir
from polyrelay.errors import GatewayError
from polyrelay.protocols import RequestPeek
from polyrelay.protocols.images import multipart
from polyrelay.protocols.images.call import (
    GeneratedImage,
    ImageCall,
    ImageResult,
    ImageSide,
    InputImage,
    Outgoing,
    Tally,
    size_of_ratio,
    sniff_mime,
)
from polyrelay.protocols.images.multipart import Form

MAX_IMAGES = 10   # n, as the API allows


class ImageRequest(msgspec.Struct, kw_only=True):
    """What the gateway needs of an images request (the upstream validates the rest)."""

    model: str = ""
    prompt: str = ""
    n: int = 1
    size: str | None = None
    quality: str | None = None
    response_format: str | None = None
    output_format: str | None = None
    background: str | None = None
    stream: bool = False


IMAGE_INPUT_TOKENS = 1_500   # reserved per image to edit, where the price has token rates


class ImagePeek(RequestPeek):
    """The pipeline's peek of an images request, with the request's image fields and, for an edit,
    its form (the files stay spans of the body)."""

    __slots__ = ("image", "form", "content_type", "prompt_tokens", "call", "client")

    def __init__(self, image: ImageRequest, form: Form | None = None, content_type: str | None = None,
                 prompt_tokens: int | None = None) -> None:
        super().__init__({}, image.model, False, False, None, image.n)
        self.image = image
        self.form = form
        self.content_type = content_type
        self.call: ImageCall | None = None   # the request in neutral form, once a conversion parsed it
        # the client's side when it is not the surface's own images API (chat to an image model)
        self.client: ImageSide | None = None
        files = len(form.files) if form is not None else 0
        # for the reservation: the prompt at ~3 bytes a token, and an allowance per image in
        self.prompt_tokens = (prompt_tokens if prompt_tokens is not None
                              else len(image.prompt.encode()) // 3 + 1 + files * IMAGE_INPUT_TOKENS)


def _invalid(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, "invalid_request", message, param=param)


def _checked(req: ImageRequest) -> ImageRequest:
    if not req.model:
        raise _invalid("'model' is required (the gateway routes by it)", "model")
    if not req.prompt:
        raise _invalid("'prompt' is required", "prompt")
    if not 1 <= req.n <= MAX_IMAGES:
        raise _invalid(f"'n' must be from 1 to {MAX_IMAGES}", "n")
    if req.response_format not in (None, "b64_json", "url"):
        raise _invalid("'response_format' must be 'b64_json' or 'url'", "response_format")
    if req.stream:
        raise _invalid("streamed image generation is not supported by this gateway; leave 'stream' unset", "stream")
    return req


def peek_json(body: bytes) -> ImagePeek:
    """A generations request (JSON)."""
    try:
        req = msgspec.json.decode(body, type=ImageRequest)
    except msgspec.ValidationError as e:
        raise _invalid(f"the request is malformed: {e}") from None
    except (msgspec.DecodeError, RecursionError):
        raise _invalid("the request body must be a JSON object") from None
    return ImagePeek(_checked(req))


def peek_form(form: Form, content_type: str) -> ImagePeek:
    """An edits request (multipart): its text fields, and at least one image."""
    fields = form.fields
    n = fields.get("n", "1").strip()
    if not n.isdigit():
        raise _invalid("'n' must be an integer", "n")
    stream = fields.get("stream", "false").strip().lower() == "true"
    req = ImageRequest(model=fields.get("model", ""), prompt=fields.get("prompt", ""), n=int(n),
                       size=fields.get("size"), quality=fields.get("quality"),
                       response_format=fields.get("response_format"), output_format=fields.get("output_format"),
                       background=fields.get("background"), stream=stream)
    if not any(p.name in ("image", "image[]") for p in form.files):
        raise _invalid("'image' is required: one or more image files ('image' or 'image[]')", "image")
    return ImagePeek(_checked(req), form, content_type)


class _Details(msgspec.Struct):
    image_tokens: int = 0
    text_tokens: int = 0


class _Usage(msgspec.Struct):
    input_tokens: int = 0
    output_tokens: int = 0
    input_tokens_details: _Details | None = None


class Answer(msgspec.Struct):
    """An images answer; `data` items stay raw (their base64 is not copied to be counted)."""

    data: list[msgspec.Raw] = []
    size: str | None = None
    quality: str | None = None
    usage: _Usage | None = None


class Item(msgspec.Struct):
    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str | None = None


class FullAnswer(msgspec.Struct):
    """An images answer read whole (for a conversion)."""

    data: list[Item] = []
    created: int = 0
    size: str | None = None
    quality: str | None = None
    usage: _Usage | None = None


def read_answer(data: bytes) -> Answer | None:
    try:
        return msgspec.json.decode(data, type=Answer)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None


def usage_of(usage: _Usage | None) -> ir.Usage | None:
    if usage is None:
        return None
    return ir.Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)


_IMAGE_FIELDS = ("image", "image[]")
_EXACT_RATIOS = ("1:1", "3:2", "2:3")   # the gpt-image sizes' own ratios
_ANSWER_FIELDS = ("b64_json", "url")


class OpenAIImages:
    """The OpenAI images API as a side of a conversion (protocols/images/call.ImageSide)."""

    def parse(self, peek: RequestPeek, body: bytes) -> ImageCall:
        assert isinstance(peek, ImagePeek)
        req, form = peek.image, peek.form
        call = ImageCall(req.model, req.prompt, req.n, req.size, req.quality, response_format=req.response_format,
                         background=req.background, output_format=req.output_format)
        if form is not None:
            view = memoryview(body)
            for part in form.files:
                image = InputImage("", view[part.start:part.end])
                image.mime = part.content_type if part.content_type and part.content_type.startswith("image/") \
                    else sniff_mime(image.data)
                if part.name in _IMAGE_FIELDS:
                    call.images.append(image)
                elif part.name == "mask":
                    call.mask = image
        return call

    def passthrough(self, peek: RequestPeek, body: bytes, upstream_model: str) -> Outgoing:
        assert isinstance(peek, ImagePeek)
        if peek.form is not None:
            out: bytes | tuple[bytes | memoryview, ...] = body if upstream_model == peek.model else \
                multipart.with_field(body, peek.form, "model", upstream_model)
            return Outgoing("image_edits", out, peek.content_type)
        if upstream_model != peek.model:
            whole = msgspec.json.decode(body)
            whole["model"] = upstream_model
            body = msgspec.json.encode(whole)
        return Outgoing("images", body)

    def requests(self, call: ImageCall, upstream_model: str) -> tuple[list[Outgoing], list[ir.Loss]]:
        size = call.size or size_of_ratio(call.aspect_ratio)
        losses = []
        if call.aspect_ratio and not call.size and call.aspect_ratio not in _EXACT_RATIOS:
            losses.append(ir.Loss("aspectRatio", "changed", f"sent as size {size}: the images API's nearest"))
        if call.with_text:
            losses.append(ir.Loss("responseModalities", "changed", "TEXT dropped: the images API answers images"))
        fields = [("model", upstream_model), ("prompt", call.prompt), ("n", str(call.n))]
        if size:
            fields.append(("size", size))
        if call.quality:
            fields.append(("quality", call.quality))
        if not call.images:
            return [Outgoing("images", msgspec.json.encode({k: int(v) if k == "n" else v for k, v in fields}))], losses
        boundary = ids.new_id("polyrelay-").encode()
        files = [("image[]", f"image{i}.{_extension(im.mime)}", im.mime, bytes(im.data))
                 for i, im in enumerate(call.images)]
        if call.mask is not None:
            files.append(("mask", f"mask.{_extension(call.mask.mime)}", call.mask.mime, bytes(call.mask.data)))
        return [Outgoing("image_edits", multipart.render(boundary, fields, files),
                         "multipart/form-data; boundary=" + boundary.decode())], losses

    def tally(self, data: bytes) -> Tally | None:
        answer = read_answer(data)
        if answer is None:
            return None
        return Tally(len(answer.data), answer.size, answer.quality, usage_of(answer.usage))

    def read(self, data: bytes) -> ImageResult:
        answer = msgspec.json.decode(data, type=FullAnswer)
        images = []
        for item in answer.data:
            if item.b64_json is None:
                raise GatewayError(502, "upstream", "the upstream answered with image URLs; the conversion needs "
                                   "base64 images (b64_json)")
            images.append(GeneratedImage("image/png", item.b64_json))
        return ImageResult(images, usage_of(answer.usage), answer.size, answer.quality,
                           " ".join(i.revised_prompt for i in answer.data if i.revised_prompt))

    def render(self, result: ImageResult, call: ImageCall) -> bytes:
        as_url = call.response_format == "url"
        data = [{"url": f"data:{im.mime};base64,{im.b64}"} if as_url else {"b64_json": im.b64}
                for im in result.images]
        out: dict[str, object] = {"created": int(time.time()), "data": data}
        if result.size:
            out["size"] = result.size
        if result.usage is not None:
            u = result.usage
            out["usage"] = {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
                            "total_tokens": u.input_tokens + u.output_tokens}
        return msgspec.json.encode(out)


def _extension(mime: str) -> str:
    return {"image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}.get(mime, "png")


OPENAI = OpenAIImages()

__all__ = [
    "OPENAI",
    "Answer",
    "FullAnswer",
    "ImagePeek",
    "ImageRequest",
    "Item",
    "OpenAIImages",
    "peek_form",
    "peek_json",
    "read_answer",
    "usage_of",
]
