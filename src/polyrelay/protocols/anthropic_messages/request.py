"""Anthropic Messages requests <-> IR."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from polyrelay import ir
from polyrelay.errors import GatewayError, invalid_request
from polyrelay.protocols import limits, signatures
from polyrelay.protocols._common import (
    MIN_THINKING_BUDGET,
    decode_json_object,
    dropped,
    dump_arguments,
    effort_to_budget,
    expect,
    lost,
    parse_arguments,
    parse_with_losses,
    render_with_losses,
    safe_tool_name,
    short_identifier,
)

DEFAULT_MAX_TOKENS = 4096
MAX_USER_ID_CHARS = 256  # metadata.user_id (API reference: maxLength 256)
# Claude 4.7 and later refuse temperature/top_p/top_k ("`temperature` is deprecated for this model")
_NO_SAMPLING = re.compile(r"claude-(?:opus|sonnet|haiku)-(?:4-[7-9]|[5-9])")
# Opus 4.1, Sonnet/Haiku 4.5 and later (up to 4.6; 4.7+ is the rule above) refuse temperature and top_p
# together (400 "temperature and top_p cannot both be specified for this model"); Opus 4 / Sonnet 4
# (claude-opus-4-20250514: the (?!\d) keeps the date from matching) accept both
_NOT_BOTH_TEMPERATURE_AND_TOP_P = re.compile(r"claude-(?:opus-4-[1-9]|(?:sonnet|haiku)-4-[5-9])(?!\d)")


def refuses_temperature_with_top_p(model: str) -> bool:
    return _NOT_BOTH_TEMPERATURE_AND_TOP_P.search(model) is not None


_IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}




def _text_blocks(value: Any, where: str) -> list[ir.TextPart]:
    if isinstance(value, str):
        return [ir.TextPart(value)] if value else []
    expect(isinstance(value, list), f"{where}: must be a string or an array of blocks")
    out = []
    for b in value:
        expect(isinstance(b, dict) and b.get("type") == "text", f"{where}: only text blocks are allowed here")
        out.append(ir.TextPart(str(b.get("text", "")), cache_control=b.get("cache_control")))
    return out


def _media(block: dict[str, Any], where: str) -> ir.MediaPart:
    source = block.get("source") or {}
    kind = "image" if block["type"] == "image" else "file"
    cache = block.get("cache_control")
    stype = source.get("type")
    if stype == "base64":
        expect(isinstance(source.get("data"), str), f"{where}.source.data is required")
        return ir.MediaPart(kind, data=source["data"], media_type=source.get("media_type"), cache_control=cache)  # type: ignore[arg-type]
    if stype == "url":
        return ir.MediaPart(kind, url=str(source.get("url")), cache_control=cache)  # type: ignore[arg-type]
    if stype == "file":
        return ir.MediaPart(kind, file_id=str(source.get("file_id")), cache_control=cache)  # type: ignore[arg-type]
    if stype == "text":
        import base64
        return ir.MediaPart("file", data=base64.b64encode(str(source.get("data", "")).encode()).decode(),
                            media_type="text/plain", cache_control=cache)
    raise GatewayError(400, "invalid_request", f"{where}.source.type {stype!r} is not supported")


def _blocks(content: Any, role: str, where: str) -> list[ir.Part]:
    if isinstance(content, str):
        return [ir.TextPart(content)] if content else []
    expect(isinstance(content, list), f"{where}.content must be a string or an array of blocks")
    parts: list[ir.Part] = []
    pending_signature: tuple[str | None, str | None] | None = None
    for j, b in enumerate(content):
        at = f"{where}.content[{j}]"
        expect(isinstance(b, dict) and isinstance(b.get("type"), str), f"{at}: must be a block with a type")
        t = b["type"]
        if t == "text":
            parts.append(ir.TextPart(str(b.get("text", "")), cache_control=b.get("cache_control")))
        elif t in ("image", "document"):
            parts.append(_media(b, at))
        elif t == "tool_use":
            expect(isinstance(b.get("name"), str) and isinstance(b.get("id"), str), f"{at}: tool_use needs id and name")
            sig, origin = pending_signature or (None, None)
            pending_signature = None
            parts.append(ir.ToolCallPart(b["id"], b["name"], dump_arguments(b.get("input")),
                                         signature=sig, signature_origin=origin))
        elif t == "tool_result":
            expect(isinstance(b.get("tool_use_id"), str), f"{at}.tool_use_id is required")
            raw = b.get("content")
            inner: list[ir.TextPart | ir.MediaPart] = []
            if isinstance(raw, str):
                inner = [ir.TextPart(raw)]
            elif isinstance(raw, list):
                for k, c in enumerate(raw):
                    if isinstance(c, dict) and c.get("type") == "text":
                        inner.append(ir.TextPart(str(c.get("text", ""))))
                    elif isinstance(c, dict) and c.get("type") in ("image", "document"):
                        inner.append(_media(c, f"{at}.content[{k}]"))
            parts.append(ir.ToolResultPart(b["tool_use_id"], inner, is_error=bool(b.get("is_error"))))
        elif t in ("thinking", "redacted_thinking"):
            raw_sig = b.get("signature") if t == "thinking" else b.get("data")
            sig, origin = signatures.from_text_client(str(raw_sig)) if raw_sig else (None, None)
            if origin == "gemini" and not b.get("thinking"):
                pending_signature = (sig, origin)  # a Gemini thought signature for the next tool_use
                continue
            parts.append(ir.ThinkingPart(str(b.get("thinking", "")), signature=sig, signature_origin=origin,
                                         redacted=t == "redacted_thinking"))
        elif t == "compaction":  # the summary of earlier turns, carried as text (null: a failed compaction)
            if b.get("content"):
                parts.append(ir.TextPart(str(b["content"])))
        else:
            dropped(f"content block of type {t!r}", "the gateway's content model")
    return parts


def _messages(raw: Any) -> tuple[list[ir.TextPart], list[ir.Message]]:
    expect(isinstance(raw, list) and len(raw) > 0, "messages: at least one message is required", "messages")
    system: list[ir.TextPart] = []
    out: list[ir.Message] = []
    for i, m in enumerate(raw):
        where = f"messages.{i}"
        expect(isinstance(m, dict) and m.get("role") in ("user", "assistant", "system"),
               f"{where}.role: must be 'user' or 'assistant'", "messages")
        if m["role"] == "system":  # Claude Code puts system messages inside messages
            system.extend(_text_blocks(m.get("content"), where))
            continue
        parts = _blocks(m.get("content"), m["role"], where)
        results = [p for p in parts if isinstance(p, ir.ToolResultPart)]
        rest: list[ir.Part] = [p for p in parts if not isinstance(p, ir.ToolResultPart)]
        if results:
            out.append(ir.Message("tool", list(results)))
        if rest or not results:
            out.append(ir.Message(m["role"], rest))
    return system, out


def _reasoning(b: dict[str, Any]) -> ir.Reasoning | None:
    thinking = b.get("thinking")
    effort = (b.get("output_config") or {}).get("effort")
    if isinstance(thinking, dict):
        t = thinking.get("type")
        if t == "disabled":
            return ir.Reasoning(enabled=False)
        if t == "enabled":
            budget = thinking.get("budget_tokens")
            expect(isinstance(budget, int), "thinking.budget_tokens: an integer is required", "thinking")
            return ir.Reasoning(effort=effort, budget_tokens=budget)
        if t == "adaptive":
            return ir.Reasoning(effort=effort or "medium")
    return ir.Reasoning(effort=effort) if effort else None


def _tool_choice(raw: Any) -> ir.ToolChoice | None:
    if not isinstance(raw, dict):
        return None
    mode = {"auto": "auto", "any": "required", "tool": "tool", "none": "none"}.get(str(raw.get("type")))
    expect(mode is not None, "tool_choice.type must be auto, any, tool or none", "tool_choice")
    parallel = False if raw.get("disable_parallel_tool_use") else None
    return ir.ToolChoice(mode, name=raw.get("name"), parallel=parallel)  # type: ignore[arg-type]


def _parse(b: dict[str, Any], need_max_tokens: bool) -> ir.Request:
    model = b.get("model")
    if not isinstance(model, str) or not model:
        raise invalid_request("model: Field required", param="model")
    max_tokens = limits.anthropic_messages(b).max_output if need_max_tokens else None
    # 0 only pre-warms Anthropic's prompt cache: other providers have no such request
    expect(max_tokens != 0, "max_tokens: 0 is possible only with Anthropic channels; give at least 1", "max_tokens")
    system = _text_blocks(b.get("system"), "system") if b.get("system") is not None else []
    lifted, messages = _messages(b.get("messages"))
    tools = []
    for i, t in enumerate(b.get("tools") or []):
        expect(isinstance(t, dict), f"tools.{i}: must be an object", "tools")
        if "input_schema" not in t:
            dropped(f"server tool {t.get('type') or t.get('name')!r}", "other providers")
            continue
        tools.append(ir.Tool(str(t.get("name")), t.get("description"), t.get("input_schema"), t.get("strict"),
                             cache_control=t.get("cache_control")))
    fmt = (b.get("output_config") or {}).get("format") or b.get("output_format")
    stop = b.get("stop_sequences")
    user = (b.get("metadata") or {}).get("user_id")
    return ir.Request(
        model=model, messages=messages, system=system + lifted, stream=bool(b.get("stream")),
        max_tokens=max_tokens,
        temperature=b.get("temperature"), top_p=b.get("top_p"), top_k=b.get("top_k"),
        stop=[stop] if isinstance(stop, str) else list(stop or []), tools=tools,
        tool_choice=_tool_choice(b.get("tool_choice")),
        response_format=ir.ResponseFormat("json_schema", schema=fmt.get("schema"))
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else None,
        reasoning=_reasoning(b), user=user if isinstance(user, str) else None, include_usage=True)


# Only converted requests are parsed (the fast path forwards Messages bodies as they are), so every
# field below is going to an OpenAI or Gemini channel. `diagnostics`, `fallback_credit_token`,
# `billing_policy`, `user_profile_id`, `workspace_id` and a top-level `cache_control` concern the
# Anthropic account or its cache and are dropped without a word (docs/conversion.md).
_ELSEWHERE = "OpenAI or Gemini channels"


def _unconvertible(b: dict[str, Any]) -> None:
    """Refuse what the client depends on and the IR cannot carry; warn about what it can do without.
    Not for count_tokens, which counts the conversation as sent."""
    tools = b.get("tools")
    for i, t in enumerate(tools if isinstance(tools, list) else []):
        if isinstance(t, dict) and "input_schema" not in t:  # web_search_*, code_execution_*, bash_*, mcp_toolset
            raise GatewayError(400, "invalid_request", f"tools.{i}: tool type {t.get('type') or t.get('name')!r} is "
                               "not supported for this model: it is served by a non-Anthropic provider, which cannot "
                               "run Anthropic's server or Anthropic-defined tools", param="tools")
    if b.get("mcp_servers"):
        raise GatewayError(400, "invalid_request", "mcp_servers is not supported for this model: it is served by a "
                           "non-Anthropic provider, which cannot call MCP servers", param="mcp_servers")
    if b.get("compaction"):  # the answer would be a `compaction` block, which other providers do not write
        raise GatewayError(400, "invalid_request", "compaction is not supported for this model: it is served by a "
                           "non-Anthropic provider", param="compaction")
    thread = b.get("thread")
    if isinstance(thread, dict) and thread.get("type") == "continue":  # the history is held by Anthropic
        raise GatewayError(400, "invalid_request", "thread continue is not supported for this model: it is served "
                           "by a non-Anthropic provider, which cannot read Anthropic's thread; send the whole "
                           "conversation in messages", param="thread")
    if thread:
        dropped("thread", _ELSEWHERE)
    for name, default in (("service_tier", "auto"), ("speed", "standard"), ("inference_geo", None),
                          ("container", None), ("context_management", None), ("fallbacks", None)):
        if b.get(name) not in (None, default):
            dropped(name, _ELSEWHERE)


@parse_with_losses
def parse_request(body: bytes) -> ir.Request:
    b = decode_json_object(body)
    _unconvertible(b)
    return _parse(b, need_max_tokens=True)


@parse_with_losses
def parse_count_tokens_request(body: bytes) -> ir.Request:
    return _parse(decode_json_object(body), need_max_tokens=False)



_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def tool_name(name: str) -> str:
    """Function names as Anthropic accepts them (`^[a-zA-Z0-9_-]{1,128}$`)."""
    return safe_tool_name(name, 128)


def safe_id(value: str) -> str:
    """Tool ids Anthropic accepts (^[a-zA-Z0-9_-]+$); the same input always gives the same id."""
    return _ID_UNSAFE.sub("_", value) or "toolu_empty"


def _media_block(p: ir.MediaPart) -> dict[str, Any]:
    if p.kind in ("video", "audio"):
        raise GatewayError(400, "invalid_request", f"{p.kind} input is not supported by Anthropic models",
                           param="messages")
    if p.file_id:
        raise GatewayError(400, "invalid_request", "file ids belong to one provider and cannot be sent to Anthropic",
                           param="messages")
    block_type = "image" if p.kind == "image" else "document"
    if p.url:
        source: dict[str, Any] = {"type": "url", "url": p.url}
    elif p.kind == "image" and p.media_type not in _IMAGE_TYPES:
        raise GatewayError(400, "invalid_request", f"image type {p.media_type!r} is not supported by Anthropic "
                           "(jpeg, png, gif, webp only)", param="messages")
    else:
        source = {"type": "base64", "media_type": p.media_type or "application/pdf", "data": p.data}
    block: dict[str, Any] = {"type": block_type, "source": source}
    if p.cache_control:
        block["cache_control"] = p.cache_control
    return block


def _text_block(p: ir.TextPart) -> dict[str, Any] | None:
    if not p.text.strip():
        return None  # "text content blocks must be non-empty"
    block: dict[str, Any] = {"type": "text", "text": p.text}
    if p.cache_control:
        block["cache_control"] = p.cache_control
    return block


def _render_parts(m: ir.Message) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for p in m.parts:
        if isinstance(p, ir.TextPart):
            block = _text_block(p)
            if block:
                blocks.append(block)
        elif isinstance(p, ir.MediaPart):
            blocks.append(_media_block(p))
        elif isinstance(p, ir.ThinkingPart) and m.role == "assistant":
            if p.signature and p.signature_origin == "anthropic":  # only signatures Anthropic can verify
                blocks.append({"type": "redacted_thinking", "data": p.signature} if p.redacted else
                              {"type": "thinking", "thinking": p.text, "signature": p.signature})
        elif isinstance(p, ir.ToolCallPart):
            blocks.append({"type": "tool_use", "id": safe_id(p.id), "name": tool_name(p.name),
                           "input": parse_arguments(p.arguments)})
        elif isinstance(p, ir.ToolResultPart):
            content: list[dict[str, Any]] = []
            for c in p.content:
                block = _text_block(c) if isinstance(c, ir.TextPart) else _media_block(c)
                if block:
                    content.append(block)
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": safe_id(p.call_id),
                                      "content": content or [{"type": "text", "text": "(empty)"}]}
            if p.is_error:
                result["is_error"] = True
            blocks.append(result)
    return blocks


def _render_messages(messages: list[ir.Message]) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    for m in messages:
        role = "assistant" if m.role == "assistant" else "user"
        blocks = _render_parts(m)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:  # tool results must open their user turn
        if turn["role"] == "user":
            turn["content"].sort(key=lambda b: b["type"] != "tool_result")
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": [{"type": "text", "text": "..."}]})
    return turns


def _tool_turn_without_thinking(turns: list[dict[str, Any]]) -> bool:
    """With thinking on, Anthropic wants the last assistant turn, when it called a tool, to start with
    its signed thinking block (400 "Expected `thinking` or `redacted_thinking`, but found ...")."""
    last: list[dict[str, Any]] = next((t["content"] for t in reversed(turns) if t["role"] == "assistant"), [])
    return any(b["type"] == "tool_use" for b in last) and last[0]["type"] not in ("thinking", "redacted_thinking")


def _thinking(req: ir.Request, max_tokens: int) -> tuple[dict[str, Any] | None, int]:
    r = req.reasoning
    if r is None or not r.enabled or r.effort == "none":
        return None, max_tokens
    budget = r.budget_tokens or effort_to_budget(r.effort) or 2048
    budget = max(MIN_THINKING_BUDGET, budget)
    if budget >= max_tokens:
        if req.max_tokens is None:
            max_tokens = budget + DEFAULT_MAX_TOKENS
        elif max_tokens <= MIN_THINKING_BUDGET:
            lost("reasoning", "dropped", f"max_tokens {max_tokens} leaves no room for thinking")
            return None, max_tokens
        else:
            budget = max_tokens - 1
    return {"type": "enabled", "budget_tokens": budget}, max_tokens


WEB_SEARCH_TOOL = "web_search_20250305"
WEB_SEARCH_NAME = "web_search"
_LOCATION_FIELDS = ("city", "region", "country", "timezone")


def web_search_tool(ws: ir.WebSearch) -> dict[str, Any]:
    """Anthropic's server-side web search, as the client described it."""
    tool: dict[str, Any] = {"type": WEB_SEARCH_TOOL, "name": WEB_SEARCH_NAME}
    if ws.max_uses:
        tool["max_uses"] = ws.max_uses
    if ws.allowed_domains:
        tool["allowed_domains"] = ws.allowed_domains
    where = {k: ws.user_location[k] for k in _LOCATION_FIELDS if ws.user_location and ws.user_location.get(k)}
    if where:
        tool["user_location"] = {"type": "approximate", **where}
    if ws.context_size:
        dropped("web_search.search_context_size", "Anthropic Messages")
    return tool


@render_with_losses
def render_request(req: ir.Request, upstream_model: str, *, count_only: bool = False) -> bytes:
    if (req.n or 1) > 1:
        raise GatewayError(400, "invalid_request", "n > 1 is not supported by Anthropic models", param="n")
    body: dict[str, Any] = {"model": upstream_model, "messages": _render_messages(req.messages)}
    system = [b for b in (_text_block(p) for p in req.system) if b]
    fmt = req.response_format
    if fmt is not None and fmt.type == "json_object":
        system.append({"type": "text", "text": "Respond only with a valid JSON object."})
    if system:
        body["system"] = system
    if req.tools:
        body["tools"] = [{k: v for k, v in (
            ("name", tool_name(t.name)), ("description", t.description),
            ("input_schema", {"type": "object", **(t.parameters or {"properties": {}})}),
            ("cache_control", t.cache_control)) if v is not None} for t in req.tools
            if req.tool_choice is None or not req.tool_choice.allowed or t.name in req.tool_choice.allowed]
    if req.web_search is not None:
        body.setdefault("tools", []).append(web_search_tool(req.web_search))
    thinking, max_tokens = _thinking(req, req.max_tokens or DEFAULT_MAX_TOKENS)
    if thinking and _tool_turn_without_thinking(body["messages"]):
        lost("reasoning", "dropped", "the last assistant turn called a tool without an Anthropic thinking block "
                                     "(history from another provider), and Anthropic refuses thinking then")
        thinking, max_tokens = None, req.max_tokens or DEFAULT_MAX_TOKENS
    if thinking:
        body["thinking"] = thinking
    choice = req.tool_choice
    if choice is not None and req.tools:
        mode = choice.mode
        if thinking and mode in ("required", "tool"):
            lost("tool_choice", "changed", "a forced tool is not allowed with thinking; auto instead")
            mode = "auto"
        tc: dict[str, Any] = {"type": {"auto": "auto", "required": "any", "tool": "tool", "none": "none"}[mode]}
        if mode == "tool":
            tc["name"] = tool_name(choice.name or "")
        if choice.parallel is False and mode != "none":
            tc["disable_parallel_tool_use"] = True
        body["tool_choice"] = tc
    if req.web_search is not None and req.web_search.forced:
        if thinking:
            lost("tool_choice", "changed", "a forced tool is not allowed with thinking; auto instead")
        else:
            body["tool_choice"] = {"type": "tool", "name": WEB_SEARCH_NAME}
    if count_only:
        return msgspec.json.encode(body)
    body["max_tokens"] = max_tokens
    if req.stream:
        body["stream"] = True
    if req.stop:
        body["stop_sequences"] = list(req.stop)
    if _NO_SAMPLING.search(upstream_model):
        if req.temperature is not None or req.top_p is not None or req.top_k is not None:
            dropped("temperature/top_p/top_k", f"{upstream_model} (it refuses sampling parameters)")
    elif not thinking:
        if req.temperature is not None:
            body["temperature"] = min(1.0, req.temperature)
        if req.top_k is not None:
            body["top_k"] = req.top_k
        if req.top_p is not None and req.temperature is not None and refuses_temperature_with_top_p(upstream_model):
            lost("top_p", "dropped", f"{upstream_model} refuses temperature and top_p together; temperature kept")
        elif req.top_p is not None:
            body["top_p"] = req.top_p
    elif req.top_p is not None:
        body["top_p"] = max(0.95, min(1.0, req.top_p))
    if fmt is not None and fmt.type == "json_schema":
        body["output_config"] = {"format": {"type": "json_schema", "schema": fmt.schema or {}}}
    if req.user:
        body["metadata"] = {"user_id": short_identifier(req.user, MAX_USER_ID_CHARS)}
    for name in ("seed", "frequency_penalty", "presence_penalty"):
        if getattr(req, name) is not None:
            dropped(name, "Anthropic Messages")
    return msgspec.json.encode(body)


def render_count_tokens_request(req: ir.Request, upstream_model: str) -> bytes:
    return render_request(req, upstream_model, count_only=True)[0]


COUNT_TOKENS_FIELD = "input_tokens"   # the count in the upstream's count_tokens answer


def count_tokens_body(req: ir.Request, upstream_model: str, same_body: bytes | None) -> bytes:
    """The upstream count_tokens body (rendered again even for a Messages client: the model is
    renamed and the -thinking alias resolved); the channel kind knows the URL."""
    return render_count_tokens_request(req, upstream_model)


def render_count_tokens_response(n: int) -> bytes:
    return msgspec.json.encode({"input_tokens": n})
