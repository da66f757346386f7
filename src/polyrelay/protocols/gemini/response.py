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


def grounding(meta: Any, search_id: str = "") -> tuple[ir.ServerToolPart | None, list[ir.Citation]]:
    """Google Search grounding as the IR's search and citations. Gemini's segment offsets are UTF-8
    bytes of the candidate's text (absent when 0, as proto3 writes defaults)."""
    queries = [q for q in get(meta, "webSearchQueries", []) if isinstance(q, str)]
    sources: dict[int, ir.Source] = {}
    for i, chunk in enumerate(get(meta, "groundingChunks", [])):
        web = get(chunk, "web")
        if isinstance(web, dict) and isinstance(web.get("uri"), str):
            sources[i] = ir.Source(web["uri"], web.get("title"))
    if not queries and not sources:
        return None, []
    cites: list[ir.Citation] = []
    for support in get(meta, "groundingSupports", []):
        seg = get(support, "segment", {})
        start, end = int(get(seg, "startIndex", 0)), int(get(seg, "endIndex", 0))
        for i in get(support, "groundingChunkIndices", []):
            src = sources.get(i) if isinstance(i, int) else None
            if src is not None and end > start:
                cites.append(ir.Citation(src.url, src.title, start, end))
    return ir.ServerToolPart(search_id, "web_search", queries, list(sources.values())), cites


def _cite(parts: list[ir.Part], cites: list[ir.Citation]) -> None:
    """Citations (offsets in the candidate's whole text) onto the text part each starts in."""
    base = 0
    for p in parts:
        if not isinstance(p, ir.TextPart):
            continue
        size = len(p.text.encode())
        mine = [ir.Citation(c.url, c.title, c.start - base, min(c.end, base + size) - base)
                for c in cites if base <= c.start < base + size]
        if mine:
            p.citations = mine
        base += size


def parse_response(body: bytes) -> ir.Response:
    b = decode_json_object(body, "upstream response")
    choices = []
    searched = False
    for i, cand in enumerate(b.get("candidates") or []):
        parts = response_parts(get(get(cand, "content", {}), "parts", []))
        search, cites = grounding(get(cand, "groundingMetadata"))
        _cite(parts, cites)
        if search is not None and search.queries:   # grounding without a query (URL context) is no search
            search.id = ids.new_id("ws_", 48)
            parts.insert(0, search)
            searched = True
        saw_calls = any(isinstance(p, ir.ToolCallPart) for p in parts)
        choices.append(ir.Choice(int(cand.get("index") or i), parts, finish_from(get(cand, "finishReason"), saw_calls)))
    if not choices and get(get(b, "promptFeedback", {}), "blockReason"):
        choices.append(ir.Choice(0, [], "content_filter"))
    usage = usage_from(get(b, "usageMetadata"))
    usage.web_searches = int(searched)   # Google bills a grounded prompt once, however many queries it ran
    return ir.Response(id=str(get(b, "responseId") or ids.new_id("resp_")), model=str(get(b, "modelVersion") or ""),
                       choices=choices, usage=usage)


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
