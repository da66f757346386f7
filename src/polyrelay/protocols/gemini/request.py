"""Gemini requests <-> IR."""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any

import msgspec

from polyrelay import ids, ir
from polyrelay.errors import GatewayError, invalid_request
from polyrelay.protocols import limits
from polyrelay.protocols._common import (
    decode_json_object,
    dropped,
    dump_arguments,
    effort_to_budget,
    expect,
    lost,
    parse_arguments,
    parse_with_losses,
    render_with_losses,
    standard_base64,
)
from polyrelay.protocols.gemini.wire import SKIP_SIGNATURE, _signature_from_client, get

_LEVEL_EFFORT = {"MINIMAL": "minimal", "LOW": "low", "MEDIUM": "medium", "HIGH": "high", "XHIGH": "xhigh"}




def _media_kind(mime: str) -> str:
    head = mime.split("/", 1)[0]
    return head if head in ("image", "video", "audio") else "file"


def _text_parts(value: Any) -> list[ir.TextPart]:
    if isinstance(value, str):
        return [ir.TextPart(value)]
    parts = get(value, "parts", []) if isinstance(value, dict) else value or []
    return [ir.TextPart(str(p["text"])) for p in parts if isinstance(p, dict) and p.get("text")]


class _CallIds:
    """Gemini calls often have no id: mint one, and pair each functionResponse with its call by name."""

    def __init__(self) -> None:
        self._pending: dict[str, deque[str]] = defaultdict(deque)

    def call(self, name: str, given: str | None) -> str:
        call_id = given or ids.new_id("call_")
        self._pending[name].append(call_id)
        return call_id

    def response(self, name: str, given: str | None) -> str:
        queue = self._pending[name]
        if given:
            if given in queue:
                queue.remove(given)
            return given
        return queue.popleft() if queue else ids.new_id("call_")


def _parts(raw: Any, role: str, where: str, calls: _CallIds) -> list[ir.Part]:
    expect(isinstance(raw, list), f"{where}.parts must be an array", "contents")
    out: list[ir.Part] = []
    for j, p in enumerate(raw):
        expect(isinstance(p, dict), f"{where}.parts[{j}] must be an object", "contents")
        sig_raw = get(p, "thoughtSignature")
        sig, origin, redacted = _signature_from_client(sig_raw) if sig_raw else (None, None, False)
        inline, file, fcall, fresp = (get(p, "inlineData"), get(p, "fileData"), get(p, "functionCall"),
                                      get(p, "functionResponse"))
        if p.get("thought") and "text" in p:
            previous = out[-1] if out else None
            if isinstance(previous, ir.ThinkingPart) and previous.signature is None and not redacted:
                # a streamed thought arrives in pieces, its signature on the last: one thought again
                out[-1] = ir.ThinkingPart(previous.text + str(p["text"]), signature=sig, signature_origin=origin)
            else:
                out.append(ir.ThinkingPart(str(p["text"]), signature=sig, signature_origin=origin, redacted=redacted))
        elif "text" in p:
            if p["text"]:
                out.append(ir.TextPart(str(p["text"])))
        elif inline is not None:
            mime, data = get(inline, "mimeType"), inline.get("data")
            expect(isinstance(mime, str) and isinstance(data, str), f"{where}.parts[{j}].inlineData needs mimeType "
                   "and data", "contents")
            data = standard_base64(data)  # google-genai sends URL-safe base64; the IR carries standard
            expect(not data.endswith("==="), f"{where}.parts[{j}].inlineData.data is "
                   "not valid base64", "contents")
            out.append(ir.MediaPart(_media_kind(mime), data=data, media_type=mime))  # type: ignore[arg-type]
        elif file is not None:
            uri, mime = get(file, "fileUri"), get(file, "mimeType") or "application/octet-stream"
            expect(isinstance(uri, str), f"{where}.parts[{j}].fileData.fileUri is required", "contents")
            out.append(ir.MediaPart(_media_kind(mime), url=uri, media_type=mime))  # type: ignore[arg-type]
        elif fcall is not None:
            name = fcall.get("name")
            expect(isinstance(name, str), f"{where}.parts[{j}].functionCall.name is required", "contents")
            out.append(ir.ToolCallPart(calls.call(name, fcall.get("id")), name, dump_arguments(fcall.get("args")),
                                       signature=sig, signature_origin=origin))
        elif fresp is not None:
            name = fresp.get("name")
            expect(isinstance(name, str), f"{where}.parts[{j}].functionResponse.name is required", "contents")
            response = fresp.get("response")
            output = response.get("output") if isinstance(response, dict) and len(response) == 1 else None
            text = output if isinstance(output, str) else dump_arguments(response)
            out.append(ir.ToolResultPart(calls.response(name, fresp.get("id")), [ir.TextPart(text)], name=name,
                                         is_error=isinstance(response, dict) and "error" in response))
        else:
            dropped(f"{where}.parts[{j}] ({', '.join(p)})", "the gateway's content model")
    return out


_SCHEMA_KEYS = {"any_of": "anyOf", "min_items": "minItems", "max_items": "maxItems", "min_length": "minLength",
                "max_length": "maxLength", "min_properties": "minProperties", "max_properties": "maxProperties"}
_SCHEMA_COUNTS = {"minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"}
_SCHEMA_DROP = {"nullable", "propertyOrdering", "property_ordering", "example"}


def json_schema(s: Any) -> Any:
    """Gemini's OpenAPI-subset Schema (`parameters`, `responseSchema`) as JSON Schema, which is what
    the IR carries: google-genai sends upper-case types ("OBJECT"), `nullable`, `property_ordering`
    and snake_case keys, which OpenAI and Anthropic refuse."""
    if isinstance(s, list):
        return [json_schema(x) for x in s]
    if not isinstance(s, dict):
        return s
    out: dict[str, Any] = {}
    for key, value in s.items():
        key = _SCHEMA_KEYS.get(key, key)
        if key in _SCHEMA_DROP or (key == "type" and value == "TYPE_UNSPECIFIED"):
            continue
        if key == "type" and isinstance(value, str):
            value = value.lower()
        elif key == "properties" and isinstance(value, dict):
            value = {name: json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "anyOf"):
            value = json_schema(value)
        elif key in _SCHEMA_COUNTS and isinstance(value, str) and value.isdigit():
            value = int(value)  # int64 fields in proto JSON are strings
        out[key] = value
    if s.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        elif isinstance(out.get("anyOf"), list):
            out["anyOf"] = [*out["anyOf"], {"type": "null"}]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


def _reasoning(cfg: dict[str, Any]) -> ir.Reasoning | None:
    thinking = get(cfg, "thinkingConfig")
    if not isinstance(thinking, dict):
        return None
    budget = get(thinking, "thinkingBudget")
    level = get(thinking, "thinkingLevel")
    include = bool(get(thinking, "includeThoughts", False))
    if budget == 0:
        return ir.Reasoning(enabled=False, include_thoughts=include)
    if isinstance(budget, int) and budget > 0:
        return ir.Reasoning(budget_tokens=budget, include_thoughts=include)
    return ir.Reasoning(effort=_LEVEL_EFFORT.get(str(level).upper(), "medium"), include_thoughts=include)


def _tool_choice(tool_config: Any) -> ir.ToolChoice | None:
    fc = get(tool_config, "functionCallingConfig")
    if not isinstance(fc, dict):
        return None
    mode = str(get(fc, "mode", "AUTO")).upper()
    allowed = get(fc, "allowedFunctionNames")
    if mode == "NONE":
        return ir.ToolChoice("none")
    if mode in ("ANY", "VALIDATED") and isinstance(allowed, list) and len(allowed) == 1:
        return ir.ToolChoice("tool", name=allowed[0])
    return ir.ToolChoice("required" if mode == "ANY" else "auto", allowed=allowed or None)


@parse_with_losses
def parse_request(body: bytes) -> ir.Request:
    """The model lives in the URL: the relay sets `model` and `stream`."""
    b = decode_json_object(body)
    _unconvertible(b)
    return _parse(b)


def _unconvertible(b: dict[str, Any]) -> None:
    """Only converted requests come here (the fast path forwards Gemini bodies as they are): refuse what
    the client depends on and the IR cannot carry, warn about what it can do without. Not for
    countTokens, which a Gemini channel answers from the client's own body."""
    cfg = get(b, "generationConfig", {})
    for name in ("responseLogprobs", "logprobs"):
        if get(cfg, name) not in (None, False):
            raise GatewayError(400, "invalid_request", f"generationConfig.{name} is not supported for this model: "
                               "it is served by a non-Gemini provider, which returns no log probabilities",
                               param=f"generationConfig.{name}")
    modalities = get(cfg, "responseModalities")
    audio = isinstance(modalities, list) and "AUDIO" in [str(m).upper() for m in modalities]
    if get(cfg, "speechConfig") or audio:  # the client expects spoken audio back: the IR carries text only
        raise GatewayError(400, "invalid_request", "audio output is not supported for this model: it is served by a "
                           "non-Gemini provider", param="generationConfig.responseModalities" if audio
                           else "generationConfig.speechConfig")
    if get(b, "cachedContent"):  # the cached part of the prompt lives on Gemini: the model would not see it
        raise GatewayError(400, "invalid_request", "cachedContent is not supported for this model: it is served "
                           "by a non-Gemini provider, which cannot read Gemini's cached content; send the "
                           "contents inline", param="cachedContent")
    if get(b, "safetySettings"):
        dropped("safetySettings", "non-Gemini channels")


def _parse(b: dict[str, Any]) -> ir.Request:
    try:
        return _parse_fields(b)
    except (TypeError, AttributeError, KeyError, ValueError, IndexError) as exc:
        # a value of an unexpected type (`tools: 3`, `functionCall: "x"`) is the client's mistake
        raise invalid_request(f"the request has a value of an unexpected type: {type(exc).__name__}: {exc}") from None


def _parse_fields(b: dict[str, Any]) -> ir.Request:
    contents = b.get("contents")
    if not isinstance(contents, list) or not contents:
        raise invalid_request("contents must be a non-empty array", param="contents")
    calls = _CallIds()
    messages: list[ir.Message] = []
    for i, c in enumerate(contents):
        expect(isinstance(c, dict), f"contents[{i}] must be an object", "contents")
        role = c.get("role") or "user"
        expect(role in ("user", "model"), f"contents[{i}].role must be 'user' or 'model'", "contents")
        parts = _parts(c.get("parts") or [], role, f"contents[{i}]", calls)
        results = [p for p in parts if isinstance(p, ir.ToolResultPart)]
        rest: list[ir.Part] = [p for p in parts if not isinstance(p, ir.ToolResultPart)]
        if results:
            messages.append(ir.Message("tool", list(results)))
        if rest or not results:
            messages.append(ir.Message("assistant" if role == "model" else "user", rest))
    tools = []
    for t in b.get("tools") or []:
        declarations = get(t, "functionDeclarations")
        if not declarations:
            dropped(f"tool {', '.join(t) if isinstance(t, dict) else t}", "other providers")
            continue
        for d in declarations:
            tools.append(ir.Tool(str(d.get("name")), d.get("description"),
                                 get(d, "parametersJsonSchema") or json_schema(d.get("parameters"))))
    cfg = get(b, "generationConfig", {})
    schema = get(cfg, "responseJsonSchema") or json_schema(get(cfg, "responseSchema"))
    fmt = None
    if get(cfg, "responseMimeType") == "application/json":
        fmt = ir.ResponseFormat("json_schema", schema=schema) if schema else ir.ResponseFormat("json_object")
    if get(cfg, "responseModalities") or get(cfg, "imageConfig"):
        dropped("generationConfig.responseModalities/imageConfig", "non-Gemini channels")
    stop = get(cfg, "stopSequences")
    max_tokens, n = limits.gemini(b)
    return ir.Request(
        model="", messages=messages, system=_text_parts(get(b, "systemInstruction")), tools=tools,
        tool_choice=_tool_choice(get(b, "toolConfig")), response_format=fmt, reasoning=_reasoning(cfg),
        max_tokens=max_tokens, temperature=get(cfg, "temperature"), top_p=get(cfg, "topP"),
        top_k=get(cfg, "topK"), stop=list(stop or []), seed=get(cfg, "seed"), n=n,
        presence_penalty=get(cfg, "presencePenalty"), frequency_penalty=get(cfg, "frequencyPenalty"),
        include_usage=True)


@parse_with_losses
def parse_count_tokens_request(body: bytes) -> ir.Request:
    b = decode_json_object(body)
    inner = get(b, "generateContentRequest")
    return _parse(inner if isinstance(inner, dict) else b)


COUNT_TOKENS_FIELD = "totalTokens"   # the count in the upstream's countTokens answer


def count_tokens_body(req: ir.Request, upstream_model: str, same_body: bytes | None) -> bytes:
    """The upstream countTokens body (`same_body`: the client's, when it speaks Gemini too); the
    channel kind knows the URL."""
    if same_body is not None:
        return same_body  # the model lives in the URL: the client's body goes as it is
    inner = msgspec.json.decode(render_request(req, upstream_model)[0])
    # countTokens takes `contents` alone at the top; system, tools and config only inside this
    return msgspec.json.encode({"generateContentRequest": {"model": f"models/{upstream_model}", **inner}})


def render_count_tokens_response(n: int) -> bytes:
    return msgspec.json.encode({"totalTokens": n})




def _media_part(p: ir.MediaPart) -> dict[str, Any]:
    if p.data is not None:
        return {"inlineData": {"mimeType": p.media_type or "application/octet-stream", "data": p.data}}
    uri = p.url or p.file_id or ""
    if uri.startswith(("gs://", "files/", "https://generativelanguage.googleapis.com/")):
        return {"fileData": {"mimeType": p.media_type or "application/octet-stream", "fileUri": uri}}
    raise GatewayError(400, "invalid_request", f"Gemini needs the bytes of {uri.split('?')[0]!r}; "
                       "it could not be fetched", param="messages")


def _render_content(m: ir.Message, names: dict[str, str]) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    signed_first_call = False
    for p in m.parts:
        if isinstance(p, ir.TextPart):
            if p.text:
                parts.append({"text": p.text})
        elif isinstance(p, ir.MediaPart):
            parts.append(_media_part(p))
        elif isinstance(p, ir.ThinkingPart):
            if p.signature_origin == "gemini" and p.signature:
                parts.append({"text": p.text, "thought": True, "thoughtSignature": p.signature})
        elif isinstance(p, ir.ToolCallPart):
            names[p.id] = p.name
            part: dict[str, Any] = {"functionCall": {"name": p.name, "args": parse_arguments(p.arguments)}}
            if p.signature and p.signature_origin == "gemini":
                part["thoughtSignature"] = p.signature
            elif not signed_first_call:  # history from another provider: Gemini 3 wants a signature
                part["thoughtSignature"] = SKIP_SIGNATURE
            signed_first_call = True
            parts.append(part)
        elif isinstance(p, ir.ToolResultPart):
            text = "".join(c.text for c in p.content if isinstance(c, ir.TextPart))
            parts.append({"functionResponse": {"name": p.name or names.get(p.call_id, "function"),
                                               "response": {"error" if p.is_error else "output": text}}})
    return {"role": "model" if m.role == "assistant" else "user", "parts": parts}


def tool_name(name: str) -> str:
    """Gemini takes the client's function names as they are (nothing to restore in the answer)."""
    return name


def _google_search(req: ir.Request) -> bool:
    """Whether the request goes with Google Search grounding. Gemini refuses it beside function
    declarations ("Built-in tools and Function Calling cannot be combined"): the functions win
    unless the client forces the search."""
    ws = req.web_search
    if ws is None:
        return False
    if req.tools and not ws.forced:
        lost("web_search", "dropped", "Gemini cannot combine Google Search with function tools in one request; "
                                      "the function tools were kept")
        return False
    if req.tools:
        lost("tools", "dropped", "Gemini cannot combine Google Search with function tools in one request, "
                                 "and the request forces web search")
    if ws.forced:
        lost("tool_choice", "changed", "Gemini cannot force a search: the model decides when to search")
    for name, value in (("allowed_domains", ws.allowed_domains), ("user_location", ws.user_location),
                        ("search_context_size", ws.context_size)):
        if value:
            dropped(f"web_search.{name}", "Gemini's Google Search")
    return True


@render_with_losses
def render_request(req: ir.Request, upstream_model: str) -> bytes:
    names: dict[str, str] = {}
    contents: list[dict[str, Any]] = []
    for m in req.messages:
        content = _render_content(m, names)
        if not content["parts"]:
            continue
        if contents and contents[-1]["role"] == content["role"]:
            contents[-1]["parts"].extend(content["parts"])
        else:
            contents.append(content)
    body: dict[str, Any] = {"contents": contents}
    if req.system:
        body["systemInstruction"] = {"parts": [{"text": "\n\n".join(p.text for p in req.system)}]}
    if _google_search(req):
        body["tools"] = [{"googleSearch": {}}]
    elif req.tools:
        body["tools"] = [{"functionDeclarations": [{k: v for k, v in (
            ("name", t.name), ("description", t.description), ("parametersJsonSchema", t.parameters))
            if v is not None} for t in req.tools]}]
        choice = req.tool_choice
        if choice is not None:
            if choice.parallel is False and choice.mode != "none":
                dropped("parallel_tool_calls=false / disable_parallel_tool_use", "Gemini")
            mode = {"auto": "AUTO", "none": "NONE", "required": "ANY", "tool": "ANY"}[choice.mode]
            fc: dict[str, Any] = {"mode": mode}
            allowed = [choice.name] if choice.mode == "tool" and choice.name else choice.allowed
            if allowed and mode != "NONE":
                fc["allowedFunctionNames"] = allowed
            body["toolConfig"] = {"functionCallingConfig": fc}
    cfg: dict[str, Any] = {}
    for name, key in (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"),
                      ("max_tokens", "maxOutputTokens"), ("seed", "seed"), ("n", "candidateCount"),
                      ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty")):
        value = getattr(req, name)
        if value is not None:
            cfg[key] = value
    if req.stop:
        if len(req.stop) > 5:
            lost("stop", "dropped", f"Gemini takes at most 5 sequences; dropped {len(req.stop) - 5} "
                                    f"({req.stop[5:]!r:.200})")
        cfg["stopSequences"] = req.stop[:5]
    fmt = req.response_format
    if fmt is not None and fmt.type != "text":
        cfg["responseMimeType"] = "application/json"
        if fmt.schema:
            cfg["responseJsonSchema"] = fmt.schema
    r = req.reasoning
    if r is not None:
        if not r.enabled or r.effort == "none":  # 2.5 Pro cannot think less than 128 tokens
            cfg["thinkingConfig"] = {"thinkingBudget": 128 if "2.5-pro" in upstream_model else 0}
        else:
            cfg["thinkingConfig"] = {"thinkingBudget": r.budget_tokens or effort_to_budget(r.effort) or -1,
                                     "includeThoughts": r.include_thoughts}
    if cfg:
        body["generationConfig"] = cfg
    return msgspec.json.encode(body)
