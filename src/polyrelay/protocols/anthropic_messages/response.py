"""Anthropic Messages responses <-> IR."""

from __future__ import annotations

from typing import Any

import msgspec

from polyrelay import ids, ir
from polyrelay.protocols import signatures
from polyrelay.protocols._common import decode_json_object, dump_arguments, parse_arguments
from polyrelay.protocols.anthropic_messages.wire import FINISH_FROM, FINISH_TO, usage_from, usage_to


def citations(raw: Any, end: int) -> list[ir.Citation] | None:
    """A text block's web search citations: each cites the whole block (`end` its UTF-8 length)."""
    if not isinstance(raw, list):
        return None
    found = [ir.Citation(str(c["url"]), c.get("title"), 0, end) for c in raw
             if isinstance(c, dict) and c.get("type") == "web_search_result_location" and isinstance(c.get("url"), str)]
    return found or None


def search_query(value: Any) -> list[str]:
    query = value.get("query") if isinstance(value, dict) else None
    return [query] if isinstance(query, str) and query else []


def search_failed(content: Any) -> bool:
    """A web_search_tool_result that is an error (max_uses_exceeded, too_many_requests, ...)."""
    return isinstance(content, dict) and content.get("type") == "web_search_tool_result_error"


def search_sources(content: Any) -> list[ir.Source]:
    """The results of a web_search_tool_result (an error result has none)."""
    if not isinstance(content, list):
        return []
    return [ir.Source(str(r["url"]), r.get("title")) for r in content
            if isinstance(r, dict) and r.get("type") == "web_search_result" and isinstance(r.get("url"), str)]


def parse_response(body: bytes) -> ir.Response:
    b = decode_json_object(body, "upstream response")
    parts: list[ir.Part] = []
    searches: dict[str, ir.ServerToolPart] = {}
    for block in b.get("content") or []:
        t = block.get("type")
        if t == "text":
            text = str(block.get("text", ""))
            parts.append(ir.TextPart(text, citations=citations(block.get("citations"), len(text.encode()))))
        elif t == "server_tool_use":
            part = searches[str(block.get("id"))] = ir.ServerToolPart(
                str(block.get("id")), str(block.get("name") or "web_search"), search_query(block.get("input")))
            parts.append(part)
        elif t == "web_search_tool_result":
            found = searches.get(str(block.get("tool_use_id")))
            if found is not None:
                found.sources = search_sources(block.get("content"))
                found.failed = search_failed(block.get("content"))
        elif t == "thinking":
            parts.append(ir.ThinkingPart(str(block.get("thinking", "")), signature=block.get("signature") or None,
                                         signature_origin="anthropic"))
        elif t == "redacted_thinking":
            parts.append(ir.ThinkingPart(signature=block.get("data"), signature_origin="anthropic", redacted=True))
        elif t == "tool_use":
            parts.append(ir.ToolCallPart(str(block.get("id")), str(block.get("name")),
                                         dump_arguments(block.get("input"))))
    reason = FINISH_FROM.get(str(b.get("stop_reason") or "end_turn"), "stop")
    choice = ir.Choice(0, parts, reason, stop_sequence=b.get("stop_sequence"))
    return ir.Response(id=str(b.get("id") or ids.new_id("msg_")), model=str(b.get("model") or ""),
                       choices=[choice], usage=usage_from(b.get("usage")))


def content_blocks(parts: list[ir.Part]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for p in parts:
        if isinstance(p, ir.TextPart):
            blocks.append({"type": "text", "text": p.text})
        elif isinstance(p, ir.ThinkingPart):
            sig = signatures.to_text_client(p.signature, p.signature_origin) if p.signature else ""
            blocks.append({"type": "redacted_thinking", "data": sig} if p.redacted else
                          {"type": "thinking", "thinking": p.text, "signature": sig})
        elif isinstance(p, ir.ToolCallPart):
            if p.signature and p.signature_origin == "gemini":  # no slot on tool_use: an empty signed block
                blocks.append({"type": "thinking", "thinking": "",
                               "signature": signatures.to_text_client(p.signature, "gemini")})
            blocks.append({"type": "tool_use", "id": p.id, "name": p.name, "input": parse_arguments(p.arguments)})
    return blocks


def render_response(resp: ir.Response, model: str) -> bytes:
    choice = resp.choices[0] if resp.choices else ir.Choice()
    stop = FINISH_TO.get(choice.finish_reason or "stop", "end_turn")
    if choice.stop_sequence and stop == "end_turn":
        stop = "stop_sequence"
    return msgspec.json.encode({
        "id": resp.id if resp.id.startswith("msg_") else "msg_" + resp.id, "type": "message",
        "role": "assistant", "model": model, "content": content_blocks(choice.parts), "stop_reason": stop,
        "stop_sequence": choice.stop_sequence, "usage": usage_to(resp.usage)})
