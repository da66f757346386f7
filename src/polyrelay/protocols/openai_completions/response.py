"""An IR answer as a legacy `text_completion` (the answer of a chat model a completion was converted
for): each choice's text; thinking and anything else that is not text is no part of a completion."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from polyrelay import ids, ir
from polyrelay.protocols.openai_chat.wire import usage_to_chat

# a chat answer's finish as a completion's: a completion has no tool calls
FINISH: dict[str | None, str] = {"length": "length", "content_filter": "content_filter"}


def completion_id(upstream_id: str) -> str:
    return upstream_id if upstream_id.startswith("cmpl-") else ids.new_id("cmpl-")


def choice(index: int, text: str, finish: str | None) -> dict[str, Any]:
    return {"text": text, "index": index, "logprobs": None, "finish_reason": finish}


def render_response(resp: ir.Response, model: str) -> bytes:
    choices = [choice(c.index, "".join(p.text for p in c.parts if isinstance(p, ir.TextPart)),
                      FINISH.get(c.finish_reason, "stop")) for c in resp.choices]
    return msgspec.json.encode({
        "id": completion_id(resp.id), "object": "text_completion", "created": resp.created or int(time.time()),
        "model": model, "choices": choices, "usage": usage_to_chat(resp.usage)})


__all__ = ["FINISH", "choice", "completion_id", "render_response"]
