"""Simulated Anthropic Messages upstream. It checks requests as strictly as the real API does where
converters go wrong: block shapes, tool_use/tool_result pairing, thinking rules and signatures."""

from __future__ import annotations

import base64
import binascii
import re
import time
from typing import Any, cast

import msgspec

from polyrelay.sim import search
from polyrelay.sim.plan import THINKING_TEXT, plan, sign, verify
from polyrelay.sim.replies import SimReply, SimStream
from polyrelay.sim.script import Script, fit, split_words
from polyrelay.tokens import estimate_text_tokens

_IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


class Invalid(Exception):
    pass


def error_reply(status: int, message: str) -> SimReply:
    kind = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
            429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
    return SimReply(status, msgspec.json.encode({"type": "error", "error": {"type": kind, "message": message}}))


def _unknown_model(req: Any) -> SimReply | None:
    """Like the real API: `...-thinking` is a gateway convention, no model has that name."""
    model = req.get("model") if isinstance(req, dict) else None
    if isinstance(model, str) and model.endswith("-thinking"):
        return error_reply(404, f"model: {model}")
    return None


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise Invalid(message)


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        _check(bool(content), f"{where}: text content blocks must be non-empty")
        return [{"type": "text", "text": content}]
    _check(isinstance(content, list) and len(content) > 0, f"{where}: content must be a non-empty list")
    for j, b in enumerate(content):
        at = f"{where}.content.{j}"
        _check(isinstance(b, dict), f"{at}: must be an object")
        t = b.get("type")
        if t == "text":
            _check(isinstance(b.get("text"), str) and b["text"].strip() != "",
                   f"{at}: text content blocks must be non-empty")
        elif t == "image":
            source = b.get("source") or {}
            if source.get("type") == "base64":
                _check(source.get("media_type") in _IMAGE_TYPES, f"{at}.source.media_type: unsupported image type")
                try:
                    base64.b64decode(source.get("data", ""), validate=True)
                except (binascii.Error, ValueError):
                    raise Invalid(f"{at}.source.data: invalid base64") from None
            else:
                _check(source.get("type") == "url" and isinstance(source.get("url"), str), f"{at}.source: invalid")
        elif t == "tool_use":
            _check(isinstance(b.get("id"), str) and bool(_ID.match(b["id"])),
                   f"{at}.id: String should match pattern '^[a-zA-Z0-9_-]+$'")
            _check(isinstance(b.get("name"), str) and isinstance(b.get("input"), dict),
                   f"{at}: tool_use needs name and input")
        elif t == "tool_result":
            _check(isinstance(b.get("tool_use_id"), str), f"{at}.tool_use_id: Field required")
        elif t == "document":
            source = b.get("source") or {}
            if source.get("type") == "base64":
                try:  # like the API: the standard alphabet only, padded
                    base64.b64decode(source.get("data", ""), validate=True)
                except (binascii.Error, ValueError):
                    raise Invalid(f"{at}.source.data: invalid base64") from None
        elif t in ("thinking", "redacted_thinking"):
            pass
        else:
            raise Invalid(f"{at}.type: unknown block type {t!r}")
    return cast("list[dict[str, Any]]", content)   # checked: a list of objects


_SEARCH_FIELDS = {"type", "name", "max_uses", "allowed_domains", "blocked_domains", "user_location", "cache_control"}
_LOCATION_FIELDS = {"type", "city", "region", "country", "timezone"}


def _check_web_search(t: dict[str, Any], i: int) -> None:
    """The server-side web search tool, as strictly as the API reads it."""
    _check(t["type"] == "web_search_20250305", f"tools.{i}.type: unknown tool type {t['type']!r}")
    _check(t.get("name") == "web_search", f"tools.{i}.name: Input should be 'web_search'")
    extra = sorted(set(t) - _SEARCH_FIELDS)
    _check(not extra, f"tools.{i}.{extra[:1]}: Extra inputs are not permitted")
    _check(not (t.get("allowed_domains") and t.get("blocked_domains")),
           f"tools.{i}: cannot specify both allowed_domains and blocked_domains")
    uses = t.get("max_uses")
    _check(uses is None or (isinstance(uses, int) and uses >= 1), f"tools.{i}.max_uses: must be at least 1")
    where = t.get("user_location")
    if where is not None:
        _check(isinstance(where, dict) and where.get("type") == "approximate" and set(where) <= _LOCATION_FIELDS,
               f"tools.{i}.user_location: invalid")


def _searches(req: dict[str, Any], script: Script) -> bool:
    offered = any(t.get("type") == "web_search_20250305" for t in req.get("tools") or [])
    forced = (req.get("tool_choice") or {}).get("name") == "web_search"
    return offered and (script.search or forced)


def _search_blocks(user_text: str, failed: bool) -> list[dict[str, Any]]:
    """server_tool_use, its web_search_tool_result, and the answer's text blocks with citations (a
    failed search: its error result, and an answer without citations)."""
    tool_id = f"srvtoolu_sim{time.time_ns() % 10**9}"
    if failed:
        return [{"type": "server_tool_use", "id": tool_id, "name": "web_search",
                 "input": {"query": search.query_of(user_text)}},
                {"type": "web_search_tool_result", "tool_use_id": tool_id,
                 "content": {"type": "web_search_tool_result_error", "error_code": "too_many_requests"}},
                {"type": "text", "text": "The search failed; from what I know: coffee is dear in Zürich."}]
    blocks: list[dict[str, Any]] = [
        {"type": "server_tool_use", "id": tool_id, "name": "web_search",
         "input": {"query": search.query_of(user_text)}},
        {"type": "web_search_tool_result", "tool_use_id": tool_id, "content": [
            {"type": "web_search_result", "url": r.url, "title": r.title, "encrypted_content": sign(r.url),
             "page_age": "April 1, 2026"} for r in search.RESULTS]}]
    for text, cited in search.SEGMENTS:
        block: dict[str, Any] = {"type": "text", "text": text}
        if cited >= 0:
            r = search.RESULTS[cited]
            block["citations"] = [{"type": "web_search_result_location", "url": r.url, "title": r.title,
                                   "encrypted_index": sign(text), "cited_text": text.strip()}]
        blocks.append(block)
    return blocks


def _validate(req: Any) -> dict[str, Any]:
    _check(isinstance(req, dict), "body must be a JSON object")
    _check(isinstance(req.get("model"), str), "model: Field required")
    max_tokens = req.get("max_tokens")
    _check(isinstance(max_tokens, int) and max_tokens >= 1, "max_tokens: Field required")
    messages = req.get("messages")
    _check(isinstance(messages, list) and len(messages) > 0, "messages: Field required")
    turns = []
    for i, m in enumerate(messages):
        _check(isinstance(m, dict) and m.get("role") in ("user", "assistant"),
               f"messages.{i}.role: Input should be 'user' or 'assistant'")
        turns.append((m["role"], _blocks(m.get("content"), f"messages.{i}")))
    for i, (role, blocks) in enumerate(turns):
        calls = [b["id"] for b in blocks if b["type"] == "tool_use"]
        results = [b for b in blocks if b["type"] == "tool_result"]
        if results:
            _check(role == "user", f"messages.{i}: tool_result blocks belong in user turns")
            first_other = next((k for k, b in enumerate(blocks) if b["type"] != "tool_result"), len(blocks))
            _check(all(b["type"] != "tool_result" for b in blocks[first_other:]),
                   f"messages.{i}: tool_result blocks must come first in the user turn")
            previous = turns[i - 1][1] if i > 0 and turns[i - 1][0] == "assistant" else []
            known = {b["id"] for b in previous if b["type"] == "tool_use"}
            for r in results:
                _check(r["tool_use_id"] in known, f"messages.{i}: unexpected `tool_use_id` found in `tool_result` "
                       "blocks: each tool_result must have a corresponding tool_use block in the previous message")
        if calls:
            _check(i + 1 < len(turns), f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                   "immediately after")
            answered = {b["tool_use_id"] for b in turns[i + 1][1] if b["type"] == "tool_result"}
            _check(set(calls) <= answered, f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                   "immediately after")
    stop = req.get("stop_sequences")
    _check(stop is None or isinstance(stop, list), "stop_sequences: Input should be a valid list")
    temperature = req.get("temperature")
    _check(temperature is None or 0 <= temperature <= 1, "temperature: must be between 0 and 1")
    for i, t in enumerate(req.get("tools") or []):
        if str(t.get("type", "")).startswith("web_search"):
            _check_web_search(t, i)
            continue
        _check(isinstance(t.get("name"), str) and bool(_NAME.match(t["name"])), f"tools.{i}.name: invalid")
        _check((t.get("input_schema") or {}).get("type") == "object", f"tools.{i}.input_schema.type: must be 'object'")
    thinking = req.get("thinking") or {}
    if thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        _check(isinstance(budget, int) and budget >= 1024, "thinking.budget_tokens: must be at least 1024")
        _check(budget < max_tokens, "`max_tokens` must be greater than `thinking.budget_tokens`")
        _check((req.get("tool_choice") or {}).get("type") not in ("any", "tool"),
               "Thinking may not be enabled when tool_choice forces tool use.")
        _check(temperature in (None, 1), "`temperature` may only be set to 1 when thinking is enabled")
        _check(req.get("top_k") is None, "`top_k` may not be set when thinking is enabled")
        last_assistant = next((b for r, b in reversed(turns) if r == "assistant"), None)
        if last_assistant and any(b["type"] == "tool_use" for b in last_assistant):
            head = last_assistant[0]
            _check(head["type"] in ("thinking", "redacted_thinking") and (
                head["type"] == "redacted_thinking" or verify(head.get("thinking", ""), head.get("signature"))),
                "messages: Expected `thinking` or `redacted_thinking`, but found another block: when thinking is "
                "enabled, a final assistant message must start with a thinking block (with its signature)")
    return cast("dict[str, Any]", req)   # checked to be an object above


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    out = []
    for b in content or []:
        if b.get("type") == "text":
            out.append(b["text"])
        elif b.get("type") == "tool_result":
            c = b.get("content")
            out.append(c if isinstance(c, str) else _text(c))
    return " ".join(out)


_CHOICE_TYPES: dict[Any, str] = {"none": "none", "any": "any"}   # (any JSON value may come as the type)


def _answer(req: dict[str, Any], script: Script) -> tuple[list[dict[str, Any]], str, dict[str, Any]]:
    last = req["messages"][-1]
    last_is_result = isinstance(last["content"], list) and any(b.get("type") == "tool_result" for b in last["content"])
    choice: dict[str, Any] = req.get("tool_choice") or {}
    fmt = (req.get("output_config") or {}).get("format") or {}
    answer = plan(script, [(t["name"], t.get("input_schema")) for t in req.get("tools") or [] if "input_schema" in t],
                  choice.get("name") or _CHOICE_TYPES.get(choice.get("type"), "auto"),
                  last_is_result, _text(last["content"]), _text(last["content"]),
                  schema=fmt.get("schema") if fmt.get("type") == "json_schema" else None)
    blocks: list[dict[str, Any]] = []
    if (req.get("thinking") or {}).get("type") in ("enabled", "adaptive"):
        blocks.append({"type": "thinking", "thinking": THINKING_TEXT, "signature": sign(THINKING_TEXT)})
    searched = _searches(req, script)
    if searched:
        blocks += _search_blocks(_text(last["content"]), script.search_error)
        answer.calls = []
    elif answer.text is not None:
        blocks.append({"type": "text", "text": answer.text})
    for k, (name, args) in enumerate(answer.calls):
        blocks.append({"type": "tool_use", "id": f"toolu_sim{k}{time.time_ns() % 10**9}", "name": name, "input": args})
    prompt = estimate_text_tokens(str(req.get("system") or "")) + sum(
        estimate_text_tokens(_text(m["content"])) + 3 for m in req["messages"])
    cached = min(script.cached, prompt)
    written = min(script.cache_write, prompt - cached)
    output = sum(_tokens(b) for b in blocks) + script.reasoning
    stop = "tool_use" if answer.calls else "end_turn"
    if output > req["max_tokens"]:   # honoured strictly, as the real API does
        blocks, output = _cut(blocks, min(script.reasoning, req["max_tokens"]), req["max_tokens"])
        stop = "max_tokens"
    usage: dict[str, Any] = {"input_tokens": prompt - cached - written, "cache_creation_input_tokens": written,
                             "cache_read_input_tokens": cached, "output_tokens": output}
    if searched:
        usage["server_tool_use"] = {"web_search_requests": 0 if script.search_error else 1}
    return blocks, stop, usage


def _tokens(block: dict[str, Any]) -> int:
    if block["type"] == "web_search_tool_result":
        return 0   # results are read as input, not written
    return estimate_text_tokens(block.get("text") or block.get("thinking") or msgspec.json.encode(
        block.get("input")).decode())


def _cut(blocks: list[dict[str, Any]], reasoning: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """The blocks that fit in `limit` output tokens (text cut at a word; tool calls dropped), and their tokens."""
    kept, used = [], reasoning
    for block in blocks:
        if block["type"] == "tool_use":
            continue
        if block["type"] == "text":
            text, _ = fit(block["text"], limit - used, estimate_text_tokens)
            if text:
                kept.append({**block, "text": text})
                used += estimate_text_tokens(text)
            break
        if used + _tokens(block) <= limit:
            kept.append(block)
            used += _tokens(block)
    return kept, used


def handle(body: bytes, headers: dict[str, str], script: Script) -> SimReply | SimStream:
    if "anthropic-version" not in headers:
        return error_reply(400, "anthropic-version: header is required")
    try:
        req = msgspec.json.decode(body)
        refused = _unknown_model(req)
        if refused is not None:
            return refused
        req = _validate(req)
    except msgspec.DecodeError:
        return error_reply(400, "There was an issue with your request body: not valid JSON")
    except Invalid as e:
        return error_reply(400, str(e))
    if script.status >= 400:
        return error_reply(script.status, f"simulated error {script.status}")
    blocks, stop, usage = _answer(req, script)
    message = {"id": f"msg_sim{time.time_ns() % 10**12}", "type": "message", "role": "assistant",
               "model": req["model"], "content": blocks, "stop_reason": stop, "stop_sequence": None, "usage": usage}
    if not req.get("stream"):
        return SimReply(200, msgspec.json.encode(message))
    return SimStream(_events(message), script.delay_ms / 1000, script.cut)


def count_tokens(body: bytes) -> SimReply:
    try:
        req = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return error_reply(400, "not valid JSON")
    if not isinstance(req, dict) or not isinstance(req.get("messages"), list):
        return error_reply(400, "messages: Field required")
    refused = _unknown_model(req)
    if refused is not None:
        return refused
    n = sum(estimate_text_tokens(_text(m.get("content"))) + 3 for m in req["messages"])
    return SimReply(200, msgspec.json.encode({"input_tokens": n}))


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + msgspec.json.encode({"type": name, **data}) + b"\n\n"


def _events(message: dict[str, Any]) -> list[bytes]:
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    out = [_event("message_start", {"message": start}), _event("ping", {})]
    for i, block in enumerate(message["content"]):
        t = block["type"]
        if t == "web_search_tool_result":   # whole, in its start event
            out.append(_event("content_block_start", {"index": i, "content_block": block}))
            out.append(_event("content_block_stop", {"index": i}))
            continue
        empty: dict[str, Any] = ({"text": ""} if t == "text" else {"thinking": "", "signature": ""} if t == "thinking"
                                 else {"input": {}})
        hidden = ("text", "thinking", "signature", "input", "citations")
        out.append(_event("content_block_start", {"index": i, "content_block": {
            **{k: v for k, v in block.items() if k not in hidden}, **empty,
            **({"citations": []} if "citations" in block else {})}}))
        for citation in block.get("citations") or []:
            out.append(_event("content_block_delta", {"index": i, "delta": {"type": "citations_delta",
                                                                               "citation": citation}}))
        if t == "text":
            out += [_event("content_block_delta", {"index": i, "delta": {"type": "text_delta", "text": w}})
                    for w in split_words(block["text"])]
        elif t == "thinking":
            out.append(_event("content_block_delta", {"index": i, "delta": {"type": "thinking_delta",
                                                                               "thinking": block["thinking"]}}))
            out.append(_event("content_block_delta", {"index": i, "delta": {"type": "signature_delta",
                                                                               "signature": block["signature"]}}))
        else:
            args = msgspec.json.encode(block["input"]).decode()
            for part in (args[: len(args) // 2], args[len(args) // 2:]):
                if part:
                    out.append(_event("content_block_delta", {"index": i, "delta": {"type": "input_json_delta",
                                                                                       "partial_json": part}}))
        out.append(_event("content_block_stop", {"index": i}))
    out.append(_event("message_delta", {"delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                                        "usage": usage}))
    out.append(_event("message_stop", {}))
    return out
