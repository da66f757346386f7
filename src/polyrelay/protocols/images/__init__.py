"""Image generation and editing: not a chat-like wire protocol on the IR but an operation with its
own wire formats (the OpenAI images API, Gemini image models), converted through the neutral form in
call.py. `SIDES` holds each protocol's side, by the protocol name a surface or channel speaks."""

from __future__ import annotations

from polyrelay.protocols.images import multipart
from polyrelay.protocols.images.call import (
    GeneratedImage,
    ImageCall,
    ImageResult,
    ImageSide,
    InputImage,
    Outgoing,
    Tally,
)
from polyrelay.protocols.images.chat import CHAT, chat_peek
from polyrelay.protocols.images.gemini import GEMINI, wants_image
from polyrelay.protocols.images.openai import OPENAI, ImagePeek, ImageRequest, peek_form, peek_json

SIDES: dict[str, ImageSide] = {"openai_chat": OPENAI, "gemini": GEMINI}

__all__ = [
    "CHAT",
    "SIDES",
    "GeneratedImage",
    "ImageCall",
    "ImagePeek",
    "ImageRequest",
    "ImageResult",
    "ImageSide",
    "InputImage",
    "Outgoing",
    "Tally",
    "chat_peek",
    "multipart",
    "peek_form",
    "peek_json",
    "wants_image",
]
