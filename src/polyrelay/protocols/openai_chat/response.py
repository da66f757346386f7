"""OpenAI Chat responses <-> IR."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from polyrelay import ids, ir
from polyrelay.protocols import signatures
from polyrelay.protocols._common import char_span, decode_json_object
from polyrelay.protocols.openai_chat.request import _assistant_parts
from polyrelay.protocols.openai_chat.wire import FINISH_FROM_CHAT, usage_from_chat, usage_to_chat


def parse_response(body: bytes) -> ir.Response:
    b = decode_json_object(body, "upstream response")
    choices = []
    for c in b.get("choices") or []:
        m = c.get("message") or {}
        reason = FINISH_FROM_CHAT.get(c.get("finish_reason") or "stop", "stop")
        choices.append(ir.Choice(int(c.get("index") or 0), _assistant_parts(m, "choices"), reason))
    return ir.Response(id=str(b.get("id") or ids.new_id("chatcmpl-")), model=str(b.get("model") or ""),
                       choices=choices, usage=usage_from_chat(b.get("usage")), created=int(b.get("created") or 0))


def thinking_blocks(parts: list[ir.Part]) -> list[dict[str, Any]]:
    """LiteLLM-style signed thinking blocks, so a Chat client can hand them back next turn."""
    blocks = []
    for p in parts:
        if isinstance(p, ir.ThinkingPart) and p.signature:
            sig = signatures.to_text_client(p.signature, p.signature_origin)
            blocks.append({"type": "redacted_thinking", "data": sig} if p.redacted
                          else {"type": "thinking", "thinking": p.text, "signature": sig})
    return blocks


def tool_call_json(p: ir.ToolCallPart) -> dict[str, Any]:
    call: dict[str, Any] = {"id": p.id, "type": "function", "function": {"name": p.name, "arguments": p.arguments}}
    if p.signature and p.signature_origin == "gemini":  # Google's own OpenAI-compatible shape
        call["extra_content"] = {"google": {"thought_signature": p.signature}}
    return call


def url_annotations(parts: list[ir.Part]) -> list[dict[str, Any]]:
    """Web search citations as OpenAI's search models give them: `url_citation` annotations of the
    message's content, in characters."""
    texts = [p for p in parts if isinstance(p, ir.TextPart)]
    if not any(p.citations for p in texts):
        return []
    data = "".join(p.text for p in texts).encode()
    out, base = [], 0
    for p in texts:
        for c in p.citations or []:
            span = char_span(ir.Citation(c.url, c.title, c.start + base, c.end + base), data)
            if span is not None:
                out.append({"type": "url_citation", "url_citation": {
                    "url": c.url, "title": c.title or c.url, "start_index": span[0], "end_index": span[1]}})
        base += len(p.text.encode())
    return out


def render_response(resp: ir.Response, model: str) -> bytes:
    choices = []
    for c in resp.choices:
        text = "".join(p.text for p in c.parts if isinstance(p, ir.TextPart))
        calls = [tool_call_json(p) for p in c.parts if isinstance(p, ir.ToolCallPart)]
        message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None,
                                   "refusal": None}
        if calls:
            message["tool_calls"] = calls
        thinking = "".join(p.text for p in c.parts if isinstance(p, ir.ThinkingPart))
        if thinking:
            message["reasoning_content"] = thinking
        blocks = thinking_blocks(c.parts)
        if blocks:
            message["thinking_blocks"] = blocks
        cited = url_annotations(c.parts)
        if cited:
            message["annotations"] = cited
        choices.append({"index": c.index, "message": message, "logprobs": None,
                        "finish_reason": c.finish_reason or "stop"})
    return msgspec.json.encode({
        "id": resp.id if resp.id.startswith("chatcmpl") else "chatcmpl-" + resp.id,
        "object": "chat.completion", "created": resp.created or int(time.time()), "model": model,
        "choices": choices, "usage": usage_to_chat(resp.usage)})
