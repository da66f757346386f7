"""OpenAI Responses answers <-> IR: output items, status and usage."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from polyrelay import ids, ir
from polyrelay.protocols import signatures
from polyrelay.protocols._common import char_span, decode_json_object, parse_arguments
from polyrelay.protocols.openai_responses.request import CUSTOM_INPUT, ClientTool, client_tools, request_echo
from polyrelay.protocols.openai_responses.wire import finish_of, status_of, usage_from, usage_to


def _thinking(item: dict[str, Any]) -> ir.ThinkingPart:
    text = "\n\n".join(str(s.get("text") or "") for s in item.get("summary") or [] if isinstance(s, dict))
    if not text and isinstance(item.get("content"), list):
        text = "".join(str(c.get("text") or "") for c in item["content"] if isinstance(c, dict))
    encrypted = item.get("encrypted_content")
    if isinstance(encrypted, str) and encrypted:   # the item id and its content go back together
        return ir.ThinkingPart(text, signature=f"{item.get('id') or ''}:{encrypted}", signature_origin="openai")
    return ir.ThinkingPart(text)


def _text_part(c: dict[str, Any]) -> ir.TextPart:
    """An output_text (its url_citation annotations, in characters, as IR byte offsets) or a refusal."""
    if c.get("type") != "output_text":
        return ir.TextPart(str(c.get("refusal") or ""))
    text = str(c.get("text") or "")
    cites = [ir.Citation(str(a["url"]), a.get("title"), len(text[:int(a.get("start_index") or 0)].encode()),
                         len(text[:int(a.get("end_index") or 0)].encode()))
             for a in c.get("annotations") or [] if isinstance(a, dict) and a.get("type") == "url_citation"
             and isinstance(a.get("url"), str)]
    return ir.TextPart(text, citations=cites or None)


def parts_of_item(item: dict[str, Any]) -> list[ir.Part]:
    """IR parts of one output item of an upstream's answer (hosted tools' items have none)."""
    kind = item.get("type")
    if kind == "message":
        return [_text_part(c) for c in item.get("content") or [] if isinstance(c, dict)]
    if kind == "web_search_call":
        raw = item.get("action")
        action: dict[str, Any] = raw if isinstance(raw, dict) else {}
        queries = action.get("queries") or ([action["query"]] if isinstance(action.get("query"), str) else [])
        sources = [ir.Source(str(s["url"])) for s in action.get("sources") or []
                   if isinstance(s, dict) and isinstance(s.get("url"), str)]
        return [ir.ServerToolPart(str(item.get("id") or ids.new_id("ws_")), "web_search",
                                  [str(q) for q in queries], sources, failed=item.get("status") == "failed")]
    if kind == "reasoning":
        return [_thinking(item)]
    if kind == "function_call":
        return [ir.ToolCallPart(str(item.get("call_id") or item.get("id") or ids.new_id("call_")),
                                str(item.get("name") or ""), str(item.get("arguments") or "{}"))]
    return []


def parse_response(body: bytes) -> ir.Response:
    b = decode_json_object(body, "upstream response")
    parts = [p for item in b.get("output") or [] if isinstance(item, dict) for p in parts_of_item(item)]
    reason = finish_of(b.get("status"), b.get("incomplete_details"),
                       any(isinstance(p, ir.ToolCallPart) for p in parts))
    usage = usage_from(b.get("usage"))
    usage.web_searches = sum(isinstance(p, ir.ServerToolPart) for p in parts)   # OpenAI bills each call
    return ir.Response(id=str(b.get("id") or ids.new_id("resp_")), model=str(b.get("model") or ""),
                       choices=[ir.Choice(0, parts, reason)], usage=usage,
                       created=int(b.get("created_at") or 0))


# ---- IR -> a Responses client ---------------------------------------------------------------


def reasoning_item(item_id: str, text: str, signature: str | None, origin: str | None,
                   redacted: bool = False) -> dict[str, Any]:
    item: dict[str, Any] = {"id": item_id, "type": "reasoning",
                            "summary": [{"type": "summary_text", "text": text}] if text else []}
    if signature:
        item["encrypted_content"] = signatures.to_responses_client(signature, origin, redacted)
    return item


def message_item(item_id: str, text: str, status: str = "completed",
                 annotations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": annotations or [], "logprobs": []}]}


def url_citation(c: ir.Citation, text: bytes, base: int = 0) -> dict[str, Any] | None:
    """An IR citation (UTF-8 byte offsets, `base` bytes before `text`) as a `url_citation` annotation
    of `text`, in characters as OpenAI counts them; None when it lies outside `text`."""
    span = char_span(c, text, base)
    if span is None:
        return None
    return {"type": "url_citation", "url": c.url, "title": c.title or c.url, "start_index": span[0],
            "end_index": span[1]}


def web_search_item(item_id: str, queries: list[str], sources: list[ir.Source],
                    status: str = "completed") -> dict[str, Any]:
    action: dict[str, Any] = {"type": "search"}
    if queries:
        action["query"] = queries[0]
        action["queries"] = queries
    if sources:
        action["sources"] = [{"type": "url", "url": s.url} for s in sources]
    return {"id": item_id, "type": "web_search_call", "status": status, "action": action}


def call_item(item_id: str, call_id: str, name: str, arguments: str, tools: dict[str, ClientTool],
              status: str = "completed") -> dict[str, Any]:
    """A call in the shape of the tool the client declared: function, custom or tool search."""
    tool = tools.get(name)
    item: dict[str, Any]
    if tool is None or tool.kind == "function":
        item = {"id": item_id, "type": "function_call", "status": status, "call_id": call_id,
                "name": tool.name if tool else name, "arguments": arguments}
    elif tool.kind == "custom":
        value = parse_arguments(arguments).get(CUSTOM_INPUT) if arguments else ""
        item = {"id": "ctc_" + item_id.removeprefix("fc_").removeprefix("ctc_"), "type": "custom_tool_call",
                "status": status, "call_id": call_id,
                "name": tool.name, "input": value if isinstance(value, str) else msgspec.json.encode(value).decode()}
    else:
        item = {"id": item_id, "type": "tool_search_call", "status": status, "call_id": call_id,
                "execution": "client", "arguments": parse_arguments(arguments) if arguments else {}}
    if tool is not None and tool.namespace:
        item["namespace"] = tool.namespace
    return item


def item_id(kind: str) -> str:
    return ids.new_id({"reasoning": "rs_", "message": "msg_", "function_call": "fc_",
                       "web_search_call": "ws_"}.get(kind, "ctc_"), 48)


def _message(texts: list[ir.TextPart]) -> dict[str, Any]:
    """One message item of consecutive text parts, their citations as annotations of the whole."""
    whole = "".join(p.text for p in texts)
    annotations: list[dict[str, Any]] = []
    if any(p.citations for p in texts):
        data, base = whole.encode(), 0
        for p in texts:
            for c in p.citations or []:
                a = url_citation(ir.Citation(c.url, c.title, c.start + base, c.end + base), data)
                if a is not None:
                    annotations.append(a)
            base += len(p.text.encode())
    return message_item(item_id("message"), whole, annotations=annotations)


def output_items(parts: list[ir.Part], tools: dict[str, ClientTool]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    text: list[ir.TextPart] = []
    for p in parts:
        if isinstance(p, ir.TextPart):
            text.append(p)
            continue
        if text:
            items.append(_message(text))
            text = []
        if isinstance(p, ir.ServerToolPart):
            items.append(web_search_item(item_id("web_search_call"), p.queries, p.sources,
                                         "failed" if p.failed else "completed"))
        elif isinstance(p, ir.ThinkingPart):
            items.append(reasoning_item(item_id("reasoning"), p.text, p.signature, p.signature_origin, p.redacted))
        elif isinstance(p, ir.ToolCallPart):
            if p.signature:   # a Gemini thought signature: a reasoning item carries it to the next turn
                items.append(reasoning_item(item_id("reasoning"), "", p.signature, p.signature_origin))
            items.append(call_item(item_id("function_call"), p.id, p.name, p.arguments, tools))
    if text:
        items.append(_message(text))
    return items


def response_object(response_id: str, model: str, created: int, status: str, output: list[dict[str, Any]],
                    usage: dict[str, Any] | None, incomplete: dict[str, str] | None = None,
                    error: dict[str, Any] | None = None, echo: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Response object; the request's fields it repeats are `echo`, by default `request_echo()`."""
    echo = request_echo() if echo is None else echo
    return {"id": response_id, "object": "response", "created_at": created, "status": status,
            "background": False, "error": error, "incomplete_details": incomplete,
            "instructions": echo["instructions"], "max_output_tokens": echo["max_output_tokens"], "model": model,
            "output": output, "parallel_tool_calls": echo["parallel_tool_calls"],
            "previous_response_id": echo["previous_response_id"], "reasoning": echo["reasoning"],
            "store": echo["store"], "temperature": echo["temperature"], "text": echo["text"],
            "tool_choice": echo["tool_choice"], "tools": echo["tools"], "top_p": echo["top_p"],
            "truncation": echo["truncation"], "usage": usage, "metadata": echo["metadata"]}


def response_id(upstream_id: str) -> str:
    return upstream_id if upstream_id.startswith("resp_") else "resp_" + upstream_id.replace("-", "")[-48:]


def render_response(resp: ir.Response, model: str) -> bytes:
    choice = resp.choices[0] if resp.choices else ir.Choice()
    status, incomplete = status_of(choice.finish_reason)
    return msgspec.json.encode(response_object(
        response_id(resp.id), model, resp.created or int(time.time()), status,
        output_items(choice.parts, client_tools()), usage_to(resp.usage), incomplete))
