"""Images through OpenAI chat: a chat request to a model a channel marks as an image model
(`image_models`) is an image request. The prompt is the text of the last user message, the images
to edit its `image_url` parts (data URLs); the answer is an assistant message whose content holds
each image as a markdown image (`![image](data:image/png;base64,...)`) and whose `images` lists
them too (OpenRouter's convention), streamed as one content chunk when the client asked for a
stream."""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

import msgspec

from polyrelay import ids, ir
from polyrelay.errors import GatewayError
from polyrelay.protocols import RequestPeek
from polyrelay.protocols.images.call import ImageCall, ImageResult, InputImage, Outgoing, Tally
from polyrelay.protocols.images.openai import MAX_IMAGES, ImagePeek, ImageRequest


class _ImageUrl(msgspec.Struct):
    url: str = ""


class _Part(msgspec.Struct):
    type: str = "text"
    text: str | None = None
    image_url: _ImageUrl | None = None


class _Message(msgspec.Struct):
    role: str = "user"
    content: str | list[_Part] | None = None


class _ImageConfig(msgspec.Struct):
    aspect_ratio: str | None = None


class _Chat(msgspec.Struct):
    messages: list[_Message] = []
    size: str | None = None                  # an extra some clients send for image models
    image_config: _ImageConfig | None = None   # OpenRouter's


def _invalid(message: str) -> GatewayError:
    return GatewayError(400, "invalid_request", message, param="messages")


def _data_url(url: str) -> InputImage:
    head, comma, data = url.partition(",")
    if not url.startswith("data:") or not comma or not head.endswith(";base64"):
        raise _invalid("an image model takes the images to edit as data URLs (data:image/png;base64,...)")
    try:
        raw = base64.b64decode(data.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise _invalid("an image's data URL is not valid base64") from None
    return InputImage(head[5:].removesuffix(";base64") or "image/png", raw)


def chat_peek(peek: RequestPeek, prompt_tokens: int) -> ImagePeek:
    """The images peek of a chat request the route found is for an image model."""
    if peek.n > MAX_IMAGES:
        raise GatewayError(400, "invalid_request", f"'n' must be from 1 to {MAX_IMAGES} for an image model", param="n")
    image = ImagePeek(ImageRequest(model=peek.model, n=peek.n), prompt_tokens=prompt_tokens)
    image.stream, image.include_usage = peek.stream, peek.include_usage
    image.client = CHAT
    return image


class ChatImages:
    """OpenAI chat as the client side of an image request (call.ImageSide; never an upstream)."""

    def parse(self, peek: RequestPeek, body: bytes) -> ImageCall:
        try:
            chat = msgspec.json.decode(body, type=_Chat)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            raise _invalid("the request is malformed: 'messages' must be a list of chat messages") from None
        last = next((m for m in reversed(chat.messages) if m.role == "user"), None)
        if last is None or not last.content:
            raise _invalid("an image model needs a user message with the prompt")
        texts: list[str] = []
        images: list[InputImage] = []
        for part in [_Part(text=last.content)] if isinstance(last.content, str) else last.content:
            if part.type == "text" and part.text:
                texts.append(part.text)
            elif part.type == "image_url" and part.image_url is not None:
                images.append(_data_url(part.image_url.url))
        if not texts:
            raise _invalid("an image model needs a text prompt in the last user message")
        ratio = chat.image_config.aspect_ratio if chat.image_config else None
        return ImageCall(peek.model, "\n".join(texts), peek.n, chat.size, aspect_ratio=ratio, images=images,
                         with_text=True)

    def passthrough(self, peek: RequestPeek, body: bytes, upstream_model: str) -> Outgoing:
        raise AssertionError("a chat request for an image model is always converted")

    def requests(self, call: ImageCall, upstream_model: str) -> tuple[list[Outgoing], list[ir.Loss]]:
        raise AssertionError("chat is not an image upstream")

    def tally(self, data: bytes) -> Tally | None:
        raise AssertionError("chat is not an image upstream")

    def read(self, data: bytes) -> ImageResult:
        raise AssertionError("chat is not an image upstream")

    def render(self, result: ImageResult, call: ImageCall) -> bytes:
        urls = [f"data:{im.mime};base64,{im.b64}" for im in result.images]
        pieces = [result.text.strip()] if result.text.strip() else []
        content = "\n\n".join([*pieces, *(f"![image]({u})" for u in urls)])
        message = {"role": "assistant", "content": content,
                   "images": [{"type": "image_url", "image_url": {"url": u}} for u in urls]}
        created = int(time.time())
        rid = ids.new_id("chatcmpl-img")
        u = result.usage
        usage = None if u is None else {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
                                        "total_tokens": u.input_tokens + u.output_tokens}
        return msgspec.json.encode({"id": rid, "object": "chat.completion", "created": created, "model": call.model,
                                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                                    "usage": usage})

    def render_stream(self, result: ImageResult, call: ImageCall, include_usage: bool) -> bytes:
        """The same answer as chat.completion.chunk events: the role, the content with its images,
        the finish, the usage when asked for, [DONE]."""
        whole: dict[str, Any] = msgspec.json.decode(self.render(result, call))
        message = whole["choices"][0]["message"]
        base = {"id": whole["id"], "object": "chat.completion.chunk", "created": whole["created"], "model": call.model}
        events = [
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
            {**base, "choices": [{"index": 0, "delta": {"content": message["content"], "images": message["images"]},
                                  "finish_reason": None}]},
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        ]
        if include_usage:
            events.append({**base, "choices": [], "usage": whole["usage"]})
        return b"".join(b"data: " + msgspec.json.encode(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"


CHAT = ChatImages()

__all__ = ["CHAT", "ChatImages", "chat_peek"]
