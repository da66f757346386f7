"""OpenAI Chat requests <-> IR."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from polyrelay import ids, ir
from polyrelay.errors import GatewayError, invalid_request
from polyrelay.protocols import limits, signatures
from polyrelay.protocols._common import (
    budget_to_effort,
    cannot_search,
    data_url,
    decode_json_object,
    dropped,
    expect,
    lost,
    parse_with_losses,
    render_with_losses,
    safe_tool_name,
    short_identifier,
    split_data_url,
)

# `user` longer than this is refused (OpenAI API reference: "maximum length of 64 characters" for the
# identifier `safety_identifier` replaces; the openai 3.57 SDK documents 128 for safety_identifier)
MAX_USER_CHARS = 64


_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


def _text_parts(content: Any, where: str) -> list[ir.TextPart]:
    if content is None:
        return []
    if isinstance(content, str):
        return [ir.TextPart(content)] if content else []
    expect(isinstance(content, list), f"{where}.content must be a string or an array of parts", "messages")
    parts = []
    for part in content:
        expect(isinstance(part, dict), f"{where}.content parts must be objects", "messages")
        if part.get("type") in ("text", "refusal"):
            parts.append(ir.TextPart(str(part.get("text") or part.get("refusal") or ""),
                                     cache_control=part.get("cache_control")))
    return parts


def _media(kind: str, url: str, **extra: Any) -> ir.MediaPart:
    inline = split_data_url(url)
    if inline:
        return ir.MediaPart(kind, data=inline[1], media_type=inline[0], **extra)  # type: ignore[arg-type]
    return ir.MediaPart(kind, url=url, **extra)  # type: ignore[arg-type]


def _user_parts(content: Any, where: str) -> list[ir.Part]:
    if content is None or isinstance(content, str):
        return list(_text_parts(content, where))
    expect(isinstance(content, list), f"{where}.content must be a string or an array of parts", "messages")
    parts: list[ir.Part] = []
    for i, part in enumerate(content):
        expect(isinstance(part, dict), f"{where}.content[{i}] must be an object", "messages")
        kind, cache = part.get("type"), part.get("cache_control")
        if kind == "text":
            parts.append(ir.TextPart(str(part.get("text", "")), cache_control=cache))
        elif kind in ("image_url", "video_url"):
            ref = part.get(kind) or {}
            url = ref.get("url") if isinstance(ref, dict) else ref
            if not isinstance(url, str) or not url:
                raise invalid_request(f"{where}.content[{i}].{kind}.url is required", param="messages")
            detail = ref.get("detail") if isinstance(ref, dict) else None
            parts.append(_media("image" if kind == "image_url" else "video", url, detail=detail,
                                cache_control=cache))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            expect(isinstance(audio.get("data"), str), f"{where}.content[{i}].input_audio.data is required")
            parts.append(ir.MediaPart("audio", data=audio["data"], media_type=f"audio/{audio.get('format', 'wav')}"))
        elif kind == "file":
            f = part.get("file") or {}
            inline = split_data_url(f.get("file_data") or "")
            parts.append(ir.MediaPart("file", data=inline[1] if inline else None,
                                      media_type=inline[0] if inline else None,
                                      filename=f.get("filename"), file_id=f.get("file_id")))
        else:
            raise GatewayError(400, "invalid_request", f"{where}.content[{i}]: unsupported part type {kind!r}",
                               param="messages")
    return parts


def _assistant_parts(m: dict[str, Any], where: str) -> list[ir.Part]:
    parts: list[ir.Part] = []
    blocks = m.get("thinking_blocks")
    if isinstance(blocks, list) and blocks:
        for b in blocks:
            if not isinstance(b, dict):
                continue
            sig: str | None
            origin: str | None
            if b.get("type") == "redacted_thinking":
                sig, origin = signatures.from_text_client(str(b.get("data", "")))
                parts.append(ir.ThinkingPart(signature=sig, signature_origin=origin, redacted=True))
            else:
                text_sig = b.get("signature")
                sig, origin = signatures.from_text_client(text_sig) if text_sig else (None, None)
                parts.append(ir.ThinkingPart(str(b.get("thinking", "")), signature=sig, signature_origin=origin))
    elif m.get("reasoning_content") or m.get("reasoning"):
        parts.append(ir.ThinkingPart(str(m.get("reasoning_content") or m.get("reasoning"))))
    parts.extend(_text_parts(m.get("content"), where))
    for j, call in enumerate(m.get("tool_calls") or []):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise invalid_request(f"{where}.tool_calls[{j}].function.name is required", param="messages")
        google = ((call.get("extra_content") or {}).get("google") or {})
        call_sig = google.get("thought_signature")
        args = fn.get("arguments")
        parts.append(ir.ToolCallPart(str(call.get("id") or ids.new_id("call_")), fn["name"],
                                     args if isinstance(args, str) else msgspec.json.encode(args or {}).decode(),
                                     signature=call_sig, signature_origin="gemini" if call_sig else None))
    return parts


def _messages(raw: Any) -> tuple[list[ir.TextPart], list[ir.Message]]:
    expect(isinstance(raw, list) and len(raw) > 0, "'messages' must be a non-empty array", "messages")
    system: list[ir.TextPart] = []
    messages: list[ir.Message] = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        expect(isinstance(m, dict) and m.get("role") in _ROLES, f"{where}.role must be one of "
               "system, developer, user, assistant, tool", "messages")
        role = m["role"]
        if role in ("system", "developer"):
            system.extend(_text_parts(m.get("content"), where))
        elif role == "user":
            messages.append(ir.Message("user", _user_parts(m.get("content"), where)))
        elif role == "assistant":
            messages.append(ir.Message("assistant", _assistant_parts(m, where)))
        else:
            call_id = m.get("tool_call_id") or m.get("name")
            expect(isinstance(call_id, str) and bool(call_id), f"{where}.tool_call_id is required", "messages")
            content: list[ir.TextPart | ir.MediaPart] = list(_text_parts(m.get("content"), where))
            messages.append(ir.Message("tool", [ir.ToolResultPart(call_id, content, name=m.get("name"))]))
    return system, messages


def _tools(raw: Any) -> list[ir.Tool]:
    tools = []
    for i, t in enumerate(raw or []):
        expect(isinstance(t, dict), f"tools[{i}] must be an object", "tools")
        if t.get("type", "function") != "function":
            dropped(f"tools[{i}] of type {t.get('type')!r}", "the gateway's tool model")
            continue
        fn = t.get("function") or {}
        expect(isinstance(fn.get("name"), str) and bool(fn["name"]), f"tools[{i}].function.name is required", "tools")
        tools.append(ir.Tool(fn["name"], fn.get("description"), fn.get("parameters"), fn.get("strict"),
                             cache_control=t.get("cache_control")))
    return tools


def _tool_choice(raw: Any, parallel: Any) -> ir.ToolChoice | None:
    choice: ir.ToolChoice | None = None
    if isinstance(raw, str):
        expect(raw in ("auto", "none", "required"), "tool_choice must be auto, none, required or an object",
               "tool_choice")
        choice = ir.ToolChoice(raw)  # type: ignore[arg-type]
    elif isinstance(raw, dict):
        if raw.get("type") == "allowed_tools":
            allowed = raw.get("allowed_tools") or {}
            names = [(t.get("function") or {}).get("name") or t.get("name") for t in allowed.get("tools") or []]
            choice = ir.ToolChoice("required" if allowed.get("mode") == "required" else "auto",
                                   allowed=[n for n in names if n])
        else:
            name = (raw.get("function") or {}).get("name")
            expect(isinstance(name, str), "tool_choice.function.name is required", "tool_choice")
            choice = ir.ToolChoice("tool", name=name)
    if isinstance(parallel, bool):
        choice = choice or ir.ToolChoice()
        choice.parallel = parallel
    return choice


def _response_format(raw: Any) -> ir.ResponseFormat | None:
    if not isinstance(raw, dict) or raw.get("type") in (None, "text"):
        return None
    if raw["type"] == "json_object":
        return ir.ResponseFormat("json_object")
    expect(raw["type"] == "json_schema", "response_format.type must be text, json_object or json_schema",
           "response_format")
    spec = raw.get("json_schema") or {}
    return ir.ResponseFormat("json_schema", schema=spec.get("schema"), name=spec.get("name"),
                             strict=spec.get("strict"), description=spec.get("description"))


def _number(body: dict[str, Any], name: str, kind: type = float) -> Any:
    value = body.get(name)
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    expect(ok and (kind is float or float(value).is_integer()), f"'{name}' must be a number", name)
    return kind(value)


# Only converted requests are parsed (the fast path forwards Chat bodies as they are), so every
# field below is going to an Anthropic or Gemini channel. `store` and `metadata` (OpenAI's stored
# completions) have no effect on the answer and are dropped without a word (docs/conversion.md).
_ELSEWHERE = "Anthropic or Gemini channels"


def _unconvertible(b: dict[str, Any]) -> None:
    """Refuse what the client depends on and the IR cannot bring back; warn about what it can do without."""
    for name in ("logprobs", "top_logprobs"):
        if b.get(name) not in (None, False, 0):
            raise GatewayError(400, "invalid_request", f"'{name}' is not supported for this model: it is "
                               "served by a non-OpenAI provider, which returns no log probabilities", param=name)
    modalities = b.get("modalities")
    if b.get("audio") is not None or (isinstance(modalities, list) and "audio" in modalities):
        raise GatewayError(400, "invalid_request", "audio output is not supported for this model: it is served "
                           "by a non-OpenAI provider", param="audio" if b.get("audio") is not None else "modalities")
    for name in ("logit_bias", "prediction", "service_tier"):
        if b.get(name):
            dropped(name, _ELSEWHERE)
    if b.get("verbosity") not in (None, "medium"):  # medium is the default
        dropped("verbosity", _ELSEWHERE)


@parse_with_losses
def parse_request(body: bytes) -> ir.Request:
    b = decode_json_object(body)
    model = b.get("model")
    if not isinstance(model, str) or not model:
        raise invalid_request("'model' is required", param="model")
    _unconvertible(b)
    system, messages = _messages(b.get("messages"))
    stop = b.get("stop")
    options = b.get("stream_options") or {}
    effort = b.get("reasoning_effort")
    max_tokens, n = limits.openai_chat(b)
    return ir.Request(
        model=model, messages=messages, system=system, stream=bool(b.get("stream")),
        max_tokens=max_tokens,
        temperature=_number(b, "temperature"), top_p=_number(b, "top_p"),
        stop=[stop] if isinstance(stop, str) else [str(s) for s in stop or []],
        seed=_number(b, "seed", int), n=n,
        frequency_penalty=_number(b, "frequency_penalty"), presence_penalty=_number(b, "presence_penalty"),
        tools=_tools(b.get("tools")), tool_choice=_tool_choice(b.get("tool_choice"), b.get("parallel_tool_calls")),
        response_format=_response_format(b.get("response_format")),
        reasoning=ir.Reasoning(effort=effort, enabled=effort != "none") if isinstance(effort, str) else None,
        user=b.get("user") if isinstance(b.get("user"), str) else None,
        metadata=b.get("metadata") if isinstance(b.get("metadata"), dict) else None,
        include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
        web_search=_web_search(b.get("web_search_options")),
    )


def _web_search(raw: Any) -> ir.WebSearch | None:
    """`web_search_options` (OpenAI's search models) as the provider's web search, offered to the model:
    Anthropic's server tool, Gemini's grounding, an OpenAI Responses channel's web_search."""
    if raw is None:
        return None
    expect(isinstance(raw, dict), "web_search_options must be an object", "web_search_options")
    where = raw.get("user_location")
    approximate = where.get("approximate") if isinstance(where, dict) else None
    size = raw.get("search_context_size")
    return ir.WebSearch(user_location={"type": "approximate", **approximate} if isinstance(approximate, dict) else None,
                        context_size=size if isinstance(size, str) else None)




def _render_user(parts: Sequence[ir.Part]) -> str | list[dict[str, Any]]:
    if all(isinstance(p, ir.TextPart) and not p.cache_control for p in parts):
        return "".join(p.text for p in parts)  # type: ignore[union-attr]
    out: list[dict[str, Any]] = []
    for p in parts:
        if isinstance(p, ir.TextPart):
            out.append({"type": "text", "text": p.text})
        elif isinstance(p, ir.MediaPart):
            url = p.url or data_url(p.media_type, p.data or "")
            if p.kind == "image":
                image: dict[str, Any] = {"url": url}
                if p.detail:
                    image["detail"] = p.detail
                out.append({"type": "image_url", "image_url": image})
            elif p.kind == "video":
                out.append({"type": "video_url", "video_url": {"url": url}})
            elif p.kind == "audio":
                out.append({"type": "input_audio", "input_audio": {
                    "data": p.data, "format": (p.media_type or "audio/wav").split("/")[-1].replace("mpeg", "mp3")}})
            else:
                f: dict[str, Any] = {"file_id": p.file_id} if p.file_id else {"file_data": url}
                if p.filename:
                    f["filename"] = p.filename
                out.append({"type": "file", "file": f})
    return out


def _render_tool_results(parts: list[ir.Part]) -> list[dict[str, Any]]:
    out = []
    for p in parts:
        if isinstance(p, ir.ToolResultPart):
            text = "".join(c.text for c in p.content if isinstance(c, ir.TextPart))
            out.append({"role": "tool", "tool_call_id": p.call_id, "content": text})
    return out


def _render_assistant(parts: list[ir.Part]) -> dict[str, Any]:
    text = "".join(p.text for p in parts if isinstance(p, ir.TextPart))
    thinking = "".join(p.text for p in parts if isinstance(p, ir.ThinkingPart))
    calls = [{"id": p.id, "type": "function", "function": {"name": tool_name(p.name), "arguments": p.arguments}}
             for p in parts if isinstance(p, ir.ToolCallPart)]
    message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    if thinking:  # OpenAI-compatible reasoning models want their reasoning back (DeepSeek, Kimi)
        message["reasoning_content"] = thinking
    return message


def tool_name(name: str) -> str:
    """Function names as OpenAI accepts them (`^[a-zA-Z0-9_-]{1,64}$`)."""
    return safe_tool_name(name, 64)


@render_with_losses
def render_request(req: ir.Request, upstream_model: str) -> bytes:
    cannot_search(req, "OpenAI Chat")
    messages: list[dict[str, Any]] = []
    if req.system:
        messages.append({"role": "system", "content": "\n\n".join(p.text for p in req.system)})
    for m in req.messages:
        if m.role == "assistant":
            messages.append(_render_assistant(m.parts))
            continue
        messages.extend(_render_tool_results(m.parts))
        rest = [p for p in m.parts if not isinstance(p, ir.ToolResultPart)]
        if rest or (m.role == "user" and not any(isinstance(p, ir.ToolResultPart) for p in m.parts)):
            messages.append({"role": "system" if m.role == "system" else "user", "content": _render_user(rest)})
    body: dict[str, Any] = {"model": upstream_model, "messages": messages}
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if req.max_tokens is not None:
        body["max_completion_tokens" if req.reasoning else "max_tokens"] = req.max_tokens
    for name in ("temperature", "top_p", "seed", "n", "frequency_penalty", "presence_penalty"):
        value = getattr(req, name)
        if value is not None:
            body[name] = value
    if req.user is not None:  # OpenAI refuses a longer `user` (Claude Code's user_id is ~180 characters)
        body["user"] = short_identifier(req.user, MAX_USER_CHARS)
    if req.top_k is not None:
        dropped("top_k", "OpenAI Chat")
    if req.stop:
        if len(req.stop) > 4:
            lost("stop", "dropped", f"OpenAI Chat takes at most 4 sequences; dropped {len(req.stop) - 4} "
                                    f"({req.stop[4:]!r:.200})")
        body["stop"] = req.stop[:4]
    if req.tools:
        body["tools"] = [{"type": "function", "function": {
            k: v for k, v in (("name", tool_name(t.name)), ("description", t.description),
                              ("parameters", t.parameters or {"type": "object", "properties": {}}),
                              ("strict", t.strict)) if v is not None}} for t in req.tools]
    choice = req.tool_choice
    if choice is not None and (req.tools or choice.mode == "none"):
        if choice.allowed:
            body["tool_choice"] = {"type": "allowed_tools", "allowed_tools": {
                "mode": "required" if choice.mode in ("required", "tool") else "auto",
                "tools": [{"type": "function", "function": {"name": tool_name(n)}} for n in choice.allowed]}}
        elif choice.mode == "tool":
            body["tool_choice"] = {"type": "function", "function": {"name": tool_name(choice.name or "")}}
        else:
            body["tool_choice"] = choice.mode
        if choice.parallel is not None and req.tools:
            body["parallel_tool_calls"] = choice.parallel
    fmt = req.response_format
    if fmt is not None and fmt.type != "text":
        body["response_format"] = {"type": "json_object"} if fmt.type == "json_object" else {
            "type": "json_schema", "json_schema": {k: v for k, v in (
                ("name", fmt.name or "response"), ("schema", fmt.schema or {}), ("strict", fmt.strict),
                ("description", fmt.description)) if v is not None}}
    r = req.reasoning
    if r is not None:
        if not r.enabled:
            body["reasoning_effort"] = "none"
        elif r.effort or r.budget_tokens:
            body["reasoning_effort"] = r.effort or budget_to_effort(r.budget_tokens or 0)
    return msgspec.json.encode(body)


# OpenAI Chat has no token counting endpoint: no route serves these and no channel is asked
COUNT_TOKENS_FIELD = ""
count_tokens_body = None


def parse_count_tokens_request(body: bytes) -> ir.Request:
    raise GatewayError(404, "not_found", "the OpenAI Chat API has no token counting endpoint")


def render_count_tokens_response(n: int) -> bytes:
    raise GatewayError(404, "not_found", "the OpenAI Chat API has no token counting endpoint")
