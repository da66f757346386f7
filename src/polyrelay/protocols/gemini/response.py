"""Gemini responses <-> IR."""

from __future__ import annotations

from typing import Any

import msgspec

from polyrelay import ids, ir
from polyrelay.protocols import signatures
from polyrelay.protocols._common import decode_json_object, dump_arguments, parse_arguments
from polyrelay.protocols.gemini.wire import FINISH_TO, client_signature, finish_from, get, usage_from, usage_to


def response_parts(raw: list[Any]) -> list[ir.Part]:
    """IR parts of one upstream candidate's parts (signatures minted by Gemini itself)."""
    out: list[ir.Part] = []
    for p in raw:
        sig = get(p, "thoughtSignature")
        fcall = get(p, "functionCall")
        if fcall is not None:
            out.append(ir.ToolCallPart(str(fcall.get("id") or ids.new_id("call_")), str(fcall.get("name")),
                                       dump_arguments(fcall.get("args")), signature=sig,
                                       signature_origin="gemini" if sig else None))
        elif p.get("thought"):
            out.append(ir.ThinkingPart(str(p.get("text", "")), signature=sig,
                                       signature_origin="gemini" if sig else None))
        elif p.get("text"):
            out.append(ir.TextPart(str(p["text"])))
    return out


def parse_response(body: bytes) -> ir.Response:
    b = decode_json_object(body, "upstream response")
    choices = []
    for i, cand in enumerate(b.get("candidates") or []):
        parts = response_parts(get(get(cand, "content", {}), "parts", []))
        saw_calls = any(isinstance(p, ir.ToolCallPart) for p in parts)
        choices.append(ir.Choice(int(cand.get("index") or i), parts, finish_from(get(cand, "finishReason"), saw_calls)))
    if not choices and get(get(b, "promptFeedback", {}), "blockReason"):
        choices.append(ir.Choice(0, [], "content_filter"))
    return ir.Response(id=str(get(b, "responseId") or ids.new_id("resp_")), model=str(get(b, "modelVersion") or ""),
                       choices=choices, usage=usage_from(get(b, "usageMetadata")))


def render_parts(parts: list[ir.Part]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in parts:
        if isinstance(p, ir.TextPart):
            out.append({"text": p.text})
        elif isinstance(p, ir.ThinkingPart):
            part: dict[str, Any] = {"text": p.text, "thought": True}
            if p.signature:
                part["thoughtSignature"] = client_signature(p.signature, p.signature_origin, p.redacted)
            out.append(part)
        elif isinstance(p, ir.ToolCallPart):
            part = {"functionCall": {"id": p.id, "name": p.name, "args": parse_arguments(p.arguments)}}
            if p.signature:
                part["thoughtSignature"] = signatures.to_gemini_client(p.signature, p.signature_origin)
            out.append(part)
    return out


def render_response(resp: ir.Response, model: str) -> bytes:
    return msgspec.json.encode({
        "candidates": [{"content": {"role": "model", "parts": render_parts(c.parts)},
                        "finishReason": FINISH_TO.get(c.finish_reason or "stop", "STOP"), "index": c.index}
                       for c in resp.choices],
        "usageMetadata": usage_to(resp.usage), "modelVersion": model, "responseId": resp.id})
