"""OpenAI Responses requests <-> IR.

Parsed only when converted (a Responses channel takes the client's body as it is), so everything
below is going to a Chat, Anthropic or Gemini channel: what those can express is carried, the rest
is reported as an `ir.Loss`; only what the real API itself would refuse (or what the answer would
silently be wrong without: a forced hosted tool, background mode, state kept upstream) is a 400.

Tools the IR has no kind for are carried as function tools and their calls given back in their own
shape: a `custom` tool (Codex's `apply_patch`, `exec`) becomes a function taking one string `input`
and its calls come back as `custom_tool_call` items; `tool_search` (client-executed) a function
whose calls come back as `tool_search_call`; a `namespace` tool's members `<namespace>__<name>`.
Which name is which kind is request state: `client_tools()` (see the note there).
"""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any, NamedTuple

import msgspec

from polyrelay import ir
from polyrelay.errors import GatewayError
from polyrelay.protocols import limits, signatures
from polyrelay.protocols._common import (
    budget_to_effort,
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

_ELSEWHERE = "Chat, Anthropic or Gemini channels"
MAX_USER_CHARS = 64
MIN_OUTPUT_TOKENS = limits.RESPONSES_MIN_OUTPUT   # the Responses API refuses a smaller max_output_tokens
CUSTOM_INPUT = "input"   # the one string argument a custom tool takes as a function
NAMESPACE_SEPARATOR = "__"
WEB_SEARCH_TYPES = frozenset({"web_search", "web_search_preview", "web_search_2025_08_26",
                              "web_search_preview_2025_03_11"})


class ClientTool(NamedTuple):
    """How a tool the client declared travels as an IR function tool, and comes back."""

    kind: str                  # "function" | "custom" | "tool_search"
    name: str                  # the client's name (without its namespace)
    namespace: str | None = None


# The client's non-function tools of the request being converted, by IR name. `render_response`
# has no request argument (registry.WireProtocol), so the parse leaves them here: the relay parses
# and renders one request in one task, whose context holds this value (asyncio copies the context
# per task, so requests never see each other's). The stream encoder is given the request and reads
# the same map through `client_tools(request)` at construction.
_CLIENT_TOOLS: ContextVar[dict[str, ClientTool]] = ContextVar("polyrelay_responses_tools")


def client_tools() -> dict[str, ClientTool]:
    return _CLIENT_TOOLS.get({})


# The request's fields a Response object repeats (as the real API does), the client's own values,
# left by the parse in the same task context as `_CLIENT_TOOLS`; absent ones take the API's defaults.
ECHO_DEFAULTS: dict[str, Any] = {
    "instructions": None, "max_output_tokens": None, "parallel_tool_calls": True, "previous_response_id": None,
    "reasoning": {"effort": None, "summary": None}, "store": True, "temperature": 1.0,
    "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": 1.0,
    "truncation": "disabled", "metadata": {}}
_ECHO: ContextVar[dict[str, Any]] = ContextVar("polyrelay_responses_echo")
# the client's `previous_response_id` when the gateway put that conversation into `input` (which the
# parse then sees without it): relay/stored_responses.expand's caller leaves it here
_PREVIOUS: ContextVar[str | None] = ContextVar("polyrelay_responses_previous", default=None)


def expanded_from(previous_response_id: str) -> None:
    _PREVIOUS.set(previous_response_id)


def request_echo() -> dict[str, Any]:
    """The echoed fields of the request being converted (the defaults outside a converted request)."""
    return _ECHO.get(ECHO_DEFAULTS)


def _echo(b: dict[str, Any]) -> dict[str, Any]:
    out = {name: default if b.get(name) is None else b[name] for name, default in ECHO_DEFAULTS.items()}
    if out["previous_response_id"] is None:
        out["previous_response_id"] = _PREVIOUS.get()
    text, reasoning = b.get("text"), b.get("reasoning")
    if isinstance(text, dict) and "format" not in text:   # text: {verbosity} keeps the default format
        out["text"] = {**text, "format": {"type": "text"}}
    if isinstance(reasoning, dict):
        out["reasoning"] = {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")}
    return out


def _custom_tool(t: dict[str, Any], where: str) -> ir.Tool:
    fmt: dict[str, Any] = t["format"] if isinstance(t.get("format"), dict) else {}
    doc = str(t.get("description") or "")
    if fmt.get("type") == "grammar" and fmt.get("definition"):
        doc += (f"\n\nThe `{CUSTOM_INPUT}` argument is raw text (not JSON) that follows this "
                f"{fmt.get('syntax') or ''} grammar:\n{fmt['definition']}")
        lost(where, "changed", "a custom tool goes as a function tool taking one string argument "
                               f"'{CUSTOM_INPUT}'; its grammar is in the description, not enforced")
    params = {"type": "object", "properties": {CUSTOM_INPUT: {"type": "string", "description": "the tool's input"}},
              "required": [CUSTOM_INPUT], "additionalProperties": False}
    return ir.Tool(str(t["name"]), doc.strip() or None, params)


_SEARCH_PARAMS = {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}


def _web_search(t: dict[str, Any], where: str) -> ir.WebSearch | None:
    """The client's web_search tool as the IR carries it to Anthropic / Gemini (a Chat target reports
    or refuses it when it renders). Codex's `external_web_access: false` asks for OpenAI's cached index
    only, which no other provider can promise: the tool is left out."""
    if t.get("external_web_access") is False:
        lost(f"{where} ({t['type']})", "dropped", "external_web_access: false (cached results only) has no "
                                                   "equivalent on Anthropic or Gemini, which search live")
        return None
    filters = t.get("filters")
    domains = filters.get("allowed_domains") if isinstance(filters, dict) else None
    location = t.get("user_location")
    size = t.get("search_context_size")
    return ir.WebSearch(
        allowed_domains=[str(d) for d in domains] if isinstance(domains, list) and domains else None,
        user_location=location if isinstance(location, dict) else None,
        context_size=size if isinstance(size, str) else None)


def _tool(t: Any, where: str, tools: list[ir.Tool], kinds: dict[str, ClientTool], namespace: str | None = None,
          search: list[ir.WebSearch] | None = None) -> None:
    expect(isinstance(t, dict) and isinstance(t.get("type"), str), f"{where} must be an object with a type", "tools")
    kind = t["type"]
    if kind == "namespace" and namespace is None:
        expect(isinstance(t.get("name"), str) and isinstance(t.get("tools"), list),
               f"{where}: a namespace tool needs a name and tools", "tools")
        for j, member in enumerate(t["tools"]):
            _tool(member, f"{where}.tools[{j}]", tools, kinds, t["name"], search)
        return
    if kind in ("function", "custom"):
        expect(isinstance(t.get("name"), str) and bool(t["name"]), f"{where}.name is required", "tools")
        ir_name = f"{namespace}{NAMESPACE_SEPARATOR}{t['name']}" if namespace else t["name"]
        tool = _custom_tool(t, where) if kind == "custom" else ir.Tool(
            t["name"], t.get("description"), t.get("parameters"), t.get("strict"))
        tool.name = ir_name
        tools.append(tool)
        if kind == "custom" or namespace:
            kinds[ir_name] = ClientTool(kind, t["name"], namespace)
        return
    if kind == "tool_search" and t.get("execution", "server") == "client":
        tools.append(ir.Tool("tool_search", t.get("description") or "Search for more tools by what they do.",
                             t.get("parameters") if isinstance(t.get("parameters"), dict) else _SEARCH_PARAMS))
        kinds["tool_search"] = ClientTool("tool_search", "tool_search")
        return
    if kind in WEB_SEARCH_TYPES and search is not None:
        found = _web_search(t, where)
        if found is not None:
            search.append(found)
        return
    lost(f"{where} ({kind})", "dropped", f"OpenAI's hosted {kind} tool runs only on OpenAI Responses channels")


def _tools(raw: Any, tools: list[ir.Tool], kinds: dict[str, ClientTool], where: str = "tools",
           search: list[ir.WebSearch] | None = None) -> None:
    if raw is None:
        return
    expect(isinstance(raw, list), f"'{where}' must be an array", "tools")
    for i, t in enumerate(raw):
        _tool(t, f"{where}[{i}]", tools, kinds, search=search)


def _ir_name(name: str, namespace: Any) -> str:
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}" if isinstance(namespace, str) and namespace else name


def _tool_choice(raw: Any, parallel: Any, tools: list[ir.Tool], search: ir.WebSearch | None) -> ir.ToolChoice | None:
    choice: ir.ToolChoice | None = None
    if isinstance(raw, str):
        expect(raw in ("auto", "none", "required"), "tool_choice must be auto, none, required or an object",
               "tool_choice")
        choice = ir.ToolChoice(raw)  # type: ignore[arg-type]
    elif isinstance(raw, dict):
        kind = raw.get("type")
        if kind in ("function", "custom"):
            expect(isinstance(raw.get("name"), str), "tool_choice.name is required", "tool_choice")
            choice = ir.ToolChoice("tool", name=_ir_name(raw["name"], raw.get("namespace")))
        elif kind == "allowed_tools":
            names = [_ir_name(t["name"], t.get("namespace")) for t in raw.get("tools") or []
                     if isinstance(t, dict) and isinstance(t.get("name"), str)]
            choice = ir.ToolChoice("required" if raw.get("mode") == "required" else "auto", allowed=names)
        elif kind == "tool_search" and any(t.name == "tool_search" for t in tools):
            choice = ir.ToolChoice("tool", name="tool_search")
        elif kind in WEB_SEARCH_TYPES and search is not None:   # the target's renderer searches or refuses
            search.forced = True
        else:   # the client requires a hosted tool (web search, file search, ...) the target cannot run
            raise GatewayError(400, "invalid_request", f"tool_choice requires the hosted tool {kind!r}, which this "
                               "model's channel cannot run: it is not an OpenAI Responses channel", param="tool_choice")
    elif raw is not None:
        raise GatewayError(400, "invalid_request", "tool_choice must be a string or an object", param="tool_choice")
    if isinstance(parallel, bool):
        choice = choice or ir.ToolChoice()
        choice.parallel = parallel
    return choice


# ---- input items --------------------------------------------------------------------------------


def _media_type(filename: Any) -> str | None:
    return mimetypes.guess_type(filename)[0] if isinstance(filename, str) else None


def _content_part(p: Any, where: str) -> ir.TextPart | ir.MediaPart | None:
    expect(isinstance(p, dict), f"{where} must be an object", "input")
    kind = p.get("type")
    if kind in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
        return ir.TextPart(str(p.get("text") or ""))
    if kind == "refusal":
        return ir.TextPart(str(p.get("refusal") or ""))
    if kind == "input_image":
        url, file_id = p.get("image_url"), p.get("file_id")
        expect((isinstance(url, str) and bool(url)) or isinstance(file_id, str),
               f"{where}: input_image needs image_url or file_id", "input")
        if isinstance(url, str) and url:
            inline = split_data_url(url)
            if inline:
                return ir.MediaPart("image", data=inline[1], media_type=inline[0], detail=p.get("detail"))
            return ir.MediaPart("image", url=url, detail=p.get("detail"))
        return ir.MediaPart("image", file_id=file_id, detail=p.get("detail"))
    if kind == "input_file":
        name = p.get("filename")
        data, url = p.get("file_data"), p.get("file_url")
        if isinstance(data, str) and data:
            inline = split_data_url(data)
            if inline:
                return ir.MediaPart("file", data=inline[1], media_type=inline[0], filename=name)
            return ir.MediaPart("file", data=data, media_type=_media_type(name) or "application/pdf", filename=name)
        if isinstance(url, str) and url:
            return ir.MediaPart("file", url=url, filename=name, media_type=_media_type(name))
        expect(isinstance(p.get("file_id"), str), f"{where}: input_file needs file_data, file_url or file_id", "input")
        return ir.MediaPart("file", file_id=p["file_id"], filename=name)
    if kind == "input_audio":
        audio = p.get("input_audio") or {}
        expect(isinstance(audio.get("data"), str), f"{where}.input_audio.data is required", "input")
        return ir.MediaPart("audio", data=audio["data"], media_type=f"audio/{audio.get('format', 'wav')}")
    raise GatewayError(400, "invalid_request", f"{where}: unsupported content type {kind!r}", param="input")


def _content(content: Any, where: str) -> list[ir.TextPart | ir.MediaPart]:
    if isinstance(content, str):
        return [ir.TextPart(content)] if content else []
    expect(isinstance(content, list), f"{where}.content must be a string or an array", "input")
    return [part for i, p in enumerate(content) if (part := _content_part(p, f"{where}.content[{i}]")) is not None]


class _Input:
    """Input items -> system text and IR messages: consecutive assistant items (reasoning, messages,
    calls) make one assistant turn, as the targets want them."""

    def __init__(self, tools: list[ir.Tool], kinds: dict[str, ClientTool]) -> None:
        self.system: list[ir.TextPart] = []
        self.messages: list[ir.Message] = []
        self.tools, self.kinds = tools, kinds
        self.search: list[ir.WebSearch] = []
        self.call_names: dict[str, str] = {}
        self.pending_signature: tuple[str, str] | None = None   # a Gemini signature for the next call

    def _assistant(self) -> list[ir.Part]:
        if not self.messages or self.messages[-1].role != "assistant":
            self.messages.append(ir.Message("assistant"))
        return self.messages[-1].parts

    def _call(self, call_id: Any, name: str, arguments: str, where: str) -> None:
        expect(isinstance(call_id, str) and bool(call_id), f"{where}.call_id is required", "input")
        sig, origin = self.pending_signature or (None, None)
        self.pending_signature = None
        self.call_names[call_id] = name
        self._assistant().append(ir.ToolCallPart(call_id, name, arguments, signature=sig, signature_origin=origin))

    def _result(self, item: dict[str, Any], where: str) -> None:
        call_id = item.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise GatewayError(400, "invalid_request", f"{where}.call_id is required", param="input")
        output = item.get("output")
        if output is None and item.get("type") == "tool_search_output":
            output = msgspec.json.encode(item.get("tools") or []).decode()
            _tools(item.get("tools"), self.tools, self.kinds, f"{where}.tools", self.search)   # offered now
        content = _content(output if output is not None else "", where + ".output")
        part = ir.ToolResultPart(call_id, content, name=self.call_names.get(call_id))
        self.messages.append(ir.Message("tool", [part]))

    def _reasoning(self, item: dict[str, Any]) -> None:
        text = "\n\n".join(str(s.get("text") or "") for s in item.get("summary") or [] if isinstance(s, dict))
        if not text and isinstance(item.get("content"), list):
            text = "".join(str(c.get("text") or "") for c in item["content"] if isinstance(c, dict))
        encrypted = item.get("encrypted_content")
        if not isinstance(encrypted, str) or not encrypted:
            self._assistant().append(ir.ThinkingPart(text))
            return
        sig, origin, redacted = signatures.from_responses_client(encrypted)
        if origin == "openai":   # an OpenAI upstream's own: its item id must come back with it
            sig = f"{item.get('id') or ''}:{sig}" if not sig.startswith("rs_") else sig
        if origin == "gemini" and not text:
            self.pending_signature = (sig, origin)
            return
        self._assistant().append(ir.ThinkingPart(text, signature=sig, signature_origin=origin, redacted=redacted))

    def item(self, item: Any, where: str) -> None:
        expect(isinstance(item, dict), f"{where} must be an object", "input")
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            expect(role in ("user", "assistant", "system", "developer"),
                   f"{where}.role must be user, assistant, system or developer", "input")
            content = _content(item.get("content"), where)
            if role in ("system", "developer"):
                self.system.extend(p for p in content if isinstance(p, ir.TextPart))
            elif role == "assistant":
                self._assistant().extend(content)
            else:
                self.messages.append(ir.Message("user", list(content)))
        elif kind == "function_call":
            expect(isinstance(item.get("name"), str), f"{where}.name is required", "input")
            args = item.get("arguments")
            self._call(item.get("call_id"), _ir_name(item["name"], item.get("namespace")),
                       args if isinstance(args, str) else msgspec.json.encode(args or {}).decode(), where)
        elif kind == "custom_tool_call":
            expect(isinstance(item.get("name"), str), f"{where}.name is required", "input")
            self._call(item.get("call_id"), _ir_name(item["name"], item.get("namespace")),
                       msgspec.json.encode({CUSTOM_INPUT: str(item.get("input") or "")}).decode(), where)
        elif kind == "tool_search_call":
            args = item.get("arguments")
            self._call(item.get("call_id") or item.get("id"), "tool_search",
                       args if isinstance(args, str) else msgspec.json.encode(args or {}).decode(), where)
        elif kind in ("function_call_output", "custom_tool_call_output", "tool_search_output"):
            self._result(item, where)
        elif kind == "reasoning":
            self._reasoning(item)
        elif kind == "additional_tools":   # Codex with some models: the tools travel in the input
            _tools(item.get("tools"), self.tools, self.kinds, f"{where}.tools", self.search)
        elif kind == "item_reference":
            raise GatewayError(400, "invalid_request", f"{where}: item_reference needs the item stored upstream; "
                               "send the item itself", param="input")
        elif kind == "web_search_call":   # a search of an earlier turn: the answer after it says what it found
            return
        else:   # hosted tools' calls and outputs (file_search_call, ...): only their own upstream reads them
            lost(f"{where} ({kind})", "dropped", "a hosted tool's item only OpenAI Responses channels read")


def _input(raw: Any, tools: list[ir.Tool], kinds: dict[str, ClientTool]) -> _Input:
    items = _Input(tools, kinds)
    if isinstance(raw, str):
        items.messages.append(ir.Message("user", [ir.TextPart(raw)]))
        return items
    expect(isinstance(raw, list), "'input' must be a string or an array of items", "input")
    for i, item in enumerate(raw):
        items.item(item, f"input[{i}]")
    return items


# ---- the rest of the body -----------------------------------------------------------------------


def _response_format(text: Any) -> ir.ResponseFormat | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt["type"] == "json_object":
        return ir.ResponseFormat("json_object")
    expect(fmt["type"] == "json_schema", "text.format.type must be text, json_object or json_schema", "text.format")
    expect(isinstance(fmt.get("schema"), dict), "text.format.schema is required for json_schema", "text.format.schema")
    return ir.ResponseFormat("json_schema", schema=fmt["schema"], name=fmt.get("name"), strict=fmt.get("strict"),
                             description=fmt.get("description"))


def _reasoning(raw: Any) -> ir.Reasoning | None:
    if not isinstance(raw, dict):
        return None
    effort, summary = raw.get("effort"), raw.get("summary") or raw.get("generate_summary")
    if effort is None and summary is None:
        return None
    if effort == "none":
        return ir.Reasoning(effort="none", enabled=False)
    return ir.Reasoning(effort=effort if isinstance(effort, str) else "medium")


def _number(b: dict[str, Any], name: str) -> float | None:
    value = b.get(name)
    if value is None:
        return None
    expect(isinstance(value, (int, float)) and not isinstance(value, bool), f"'{name}' must be a number", name)
    return float(value)


# fields with no effect on the answer (bookkeeping, or what the gateway does anyway)
_QUIET = frozenset({"model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "text",
                    "reasoning", "max_output_tokens", "temperature", "top_p", "stream", "stream_options", "store",
                    "metadata", "user", "safety_identifier", "include", "client_metadata", "prompt_cache_key",
                    "top_logprobs", "truncation", "service_tier", "background", "previous_response_id",
                    "conversation", "prompt"})


def _unconvertible(b: dict[str, Any]) -> None:
    """Refuse what the answer would be wrong without; report the rest."""
    if b.get("background"):
        raise GatewayError(400, "invalid_request", "background responses are not supported for this model: its "
                           "channel is not an OpenAI Responses channel; send the request without background",
                           param="background")
    for name in ("previous_response_id", "conversation"):
        if b.get(name):
            raise GatewayError(400, "invalid_request", f"'{name}' refers to a conversation this gateway does not "
                               "hold; send the earlier items in 'input'", param=name)
    if b.get("prompt"):
        raise GatewayError(400, "invalid_request", "'prompt' (a stored prompt template) is held by OpenAI and "
                           "this model's channel is not an OpenAI Responses channel", param="prompt")
    if b.get("top_logprobs") or "message.output_text.logprobs" in (b.get("include") or []):
        dropped("top_logprobs", _ELSEWHERE)
    if b.get("truncation") == "auto":
        lost("truncation", "dropped", "the target does not drop earlier items; an input too long is refused")
    if b.get("service_tier") not in (None, "auto", "default"):
        dropped("service_tier", _ELSEWHERE)
    text = b.get("text")
    if isinstance(text, dict) and text.get("verbosity") not in (None, "medium"):
        dropped("text.verbosity", _ELSEWHERE)
    if b.get("prompt_cache_key"):
        lost("prompt_cache_key", "changed", "a cache breakpoint on the instructions (Anthropic); "
                                            "OpenAI Chat and Gemini channels cache on their own")
    for name, value in b.items():
        if name not in _QUIET and value not in (None, False, [], {}):
            dropped(name, _ELSEWHERE)


def _parse(b: dict[str, Any], count_only: bool = False) -> ir.Request:
    model = b.get("model")
    if not isinstance(model, str) or not model:
        raise GatewayError(400, "invalid_request", "'model' is required", param="model")
    expect("input" in b or count_only, "'input' is required", "input")
    if not count_only:
        _unconvertible(b)
    tools: list[ir.Tool] = []
    kinds: dict[str, ClientTool] = {}
    search: list[ir.WebSearch] = []
    _tools(b.get("tools"), tools, kinds, search=search)
    items = _input(b.get("input", []), tools, kinds)
    search += items.search
    web_search = search[0] if search else None
    _CLIENT_TOOLS.set(kinds)
    if not count_only:
        _ECHO.set(_echo(b))
    system = items.system
    instructions = b.get("instructions")
    if isinstance(instructions, str) and instructions:
        system = [ir.TextPart(instructions), *system]
    if system and b.get("prompt_cache_key"):
        system[-1] = ir.TextPart(system[-1].text, cache_control={"type": "ephemeral"})
    user = b.get("safety_identifier") or b.get("user")
    max_output, _ = limits.openai_responses(b)
    return ir.Request(
        model=model, messages=items.messages, system=system, stream=bool(b.get("stream")), max_tokens=max_output,
        temperature=_number(b, "temperature"), top_p=_number(b, "top_p"), tools=tools,
        tool_choice=_tool_choice(b.get("tool_choice"), b.get("parallel_tool_calls"), tools, web_search),
        web_search=web_search,
        response_format=_response_format(b.get("text")), reasoning=_reasoning(b.get("reasoning")),
        user=user if isinstance(user, str) else None,
        metadata=b.get("metadata") if isinstance(b.get("metadata"), dict) else None)


@parse_with_losses
def parse_request(body: bytes) -> ir.Request:
    return _parse(decode_json_object(body))


@parse_with_losses
def parse_count_tokens_request(body: bytes) -> ir.Request:
    return _parse(decode_json_object(body), count_only=True)


# ---- IR -> a Responses upstream ---------------------------------------------------------------


def tool_name(name: str) -> str:
    """Function names as OpenAI accepts them (`^[a-zA-Z0-9_-]{1,64}$`)."""
    return safe_tool_name(name, 64)


def _user_content(parts: Sequence[ir.Part]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in parts:
        if isinstance(p, ir.TextPart):
            out.append({"type": "input_text", "text": p.text})
        elif isinstance(p, ir.MediaPart):
            out.append(_media(p))
    return out


def _media(p: ir.MediaPart) -> dict[str, Any]:
    if p.kind == "image":
        image: dict[str, Any] = {"type": "input_image", "detail": p.detail or "auto"}
        if p.file_id:
            image["file_id"] = p.file_id
        else:
            image["image_url"] = p.url or data_url(p.media_type, p.data or "")
        return image
    if p.kind == "audio":
        return {"type": "input_audio", "input_audio": {
            "data": p.data, "format": (p.media_type or "audio/wav").split("/")[-1].replace("mpeg", "mp3")}}
    f: dict[str, Any] = {"type": "input_file"}
    if p.file_id:
        f["file_id"] = p.file_id
    elif p.url:
        f["file_url"] = p.url
    else:
        f["file_data"] = data_url(p.media_type, p.data or "")
        f["filename"] = p.filename or "file" + (mimetypes.guess_extension(p.media_type or "") or "")
    if p.filename:
        f["filename"] = p.filename
    return f


def _reasoning_item(p: ir.ThinkingPart) -> dict[str, Any] | None:
    """Only an OpenAI upstream's own reasoning goes back (it cannot read another's)."""
    if p.signature_origin != "openai" or not p.signature:
        return None
    item_id, _, encrypted = p.signature.partition(":")
    summary = [{"type": "summary_text", "text": p.text}] if p.text else []
    return {"type": "reasoning", "id": item_id, "summary": summary, "encrypted_content": encrypted}


def _assistant_items(parts: list[ir.Part]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    text: list[str] = []

    def flush() -> None:
        if text:
            items.append({"type": "message", "role": "assistant",
                          "content": [{"type": "output_text", "text": "".join(text), "annotations": []}]})
            text.clear()

    for p in parts:
        if isinstance(p, ir.TextPart):
            text.append(p.text)
            continue
        flush()
        if isinstance(p, ir.ThinkingPart):
            item = _reasoning_item(p)
            if item:
                items.append(item)
        elif isinstance(p, ir.ToolCallPart):
            items.append({"type": "function_call", "call_id": p.id, "name": tool_name(p.name),
                          "arguments": p.arguments})
    flush()
    return items


def _result_item(p: ir.ToolResultPart) -> dict[str, Any]:
    if all(isinstance(c, ir.TextPart) for c in p.content):
        output: Any = "".join(c.text for c in p.content if isinstance(c, ir.TextPart))
    else:
        output = _user_content(list(p.content))
    return {"type": "function_call_output", "call_id": p.call_id, "output": output}


def _input_items(req: ir.Request) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for m in req.messages:
        if m.role == "assistant":
            items.extend(_assistant_items(m.parts))
            continue
        items.extend(_result_item(p) for p in m.parts if isinstance(p, ir.ToolResultPart))
        rest = [p for p in m.parts if not isinstance(p, ir.ToolResultPart)]
        if rest:
            role = "developer" if m.role == "system" else "user"
            items.append({"type": "message", "role": role, "content": _user_content(rest)})
    return items


def _render_tool_choice(choice: ir.ToolChoice) -> Any:
    if choice.allowed:
        return {"type": "allowed_tools", "mode": "required" if choice.mode in ("required", "tool") else "auto",
                "tools": [{"type": "function", "name": tool_name(n)} for n in choice.allowed]}
    if choice.mode == "tool":
        return {"type": "function", "name": tool_name(choice.name or "")}
    return choice.mode


def _web_search_tool(ws: ir.WebSearch) -> dict[str, Any]:
    tool: dict[str, Any] = {"type": "web_search"}
    if ws.allowed_domains:
        tool["filters"] = {"allowed_domains": ws.allowed_domains}
    if ws.user_location:
        tool["user_location"] = {"type": "approximate", **{k: v for k, v in ws.user_location.items() if k != "type"}}
    if ws.context_size:
        tool["search_context_size"] = ws.context_size
    return tool


@render_with_losses
def render_request(req: ir.Request, upstream_model: str, *, count_only: bool = False) -> bytes:
    body: dict[str, Any] = {"model": upstream_model, "input": _input_items(req)}
    if req.system:
        body["instructions"] = "\n\n".join(p.text for p in req.system)
    if req.tools:
        body["tools"] = [{k: v for k, v in (
            ("type", "function"), ("name", tool_name(t.name)), ("description", t.description),
            ("parameters", t.parameters or {"type": "object", "properties": {}}),
            ("strict", bool(t.strict))) if v is not None} for t in req.tools]
    choice = req.tool_choice
    if choice is not None and (req.tools or choice.mode == "none"):
        body["tool_choice"] = _render_tool_choice(choice)
        if choice.parallel is not None and req.tools:
            body["parallel_tool_calls"] = choice.parallel
    ws = req.web_search
    if ws is not None:
        body.setdefault("tools", []).append(_web_search_tool(ws))
        if ws.forced:
            body["tool_choice"] = {"type": "web_search"}
    fmt = req.response_format
    if fmt is not None and fmt.type != "text":
        body["text"] = {"format": {"type": "json_object"} if fmt.type == "json_object" else {
            k: v for k, v in (("type", "json_schema"), ("name", fmt.name or "response"), ("schema", fmt.schema or {}),
                              ("strict", fmt.strict), ("description", fmt.description)) if v is not None}}
    r = req.reasoning
    if r is not None:
        if not r.enabled:
            body["reasoning"] = {"effort": "none"}
        else:
            effort = r.effort or (budget_to_effort(r.budget_tokens) if r.budget_tokens else "medium")
            body["reasoning"] = {"effort": effort, **({"summary": "auto"} if r.include_thoughts else {})}
    if count_only:
        return msgspec.json.encode(body)
    if req.stream:
        body["stream"] = True
    # stateless: the upstream keeps nothing, and its reasoning comes back to be handed back next turn
    body["store"] = False
    if r is not None and r.enabled:
        body["include"] = ["reasoning.encrypted_content"]
    if req.max_tokens is not None:
        if req.max_tokens < MIN_OUTPUT_TOKENS:
            lost("max_tokens", "changed", f"raised to {MIN_OUTPUT_TOKENS}, the least OpenAI Responses takes")
        body["max_output_tokens"] = max(req.max_tokens, MIN_OUTPUT_TOKENS)
    for name in ("temperature", "top_p"):
        value = getattr(req, name)
        if value is not None:
            body[name] = value
    if req.user is not None:
        body["safety_identifier"] = short_identifier(req.user, MAX_USER_CHARS)
    if req.n is not None and req.n > 1:
        raise GatewayError(400, "invalid_request", "'n' greater than 1 is not supported for this model: it is "
                           "served by an OpenAI Responses channel, which writes one answer", param="n")
    for name in ("stop", "seed", "top_k", "frequency_penalty", "presence_penalty"):
        if getattr(req, name) not in (None, []):
            dropped(name, "OpenAI Responses")
    return msgspec.json.encode(body)


# POST /v1/responses/input_tokens: what the counter reads (the create body's other fields are refused)
COUNT_TOKENS_FIELD = "input_tokens"
_COUNT_FIELDS = ("model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "text",
                 "reasoning", "truncation", "conversation", "previous_response_id")


def count_tokens_body(req: ir.Request, upstream_model: str, same_body: bytes | None) -> bytes:
    if same_body is not None:
        b = decode_json_object(same_body)
        b["model"] = upstream_model
        return msgspec.json.encode({k: v for k, v in b.items() if k in _COUNT_FIELDS})
    return render_request(req, upstream_model, count_only=True)[0]


def render_count_tokens_response(n: int) -> bytes:
    return msgspec.json.encode({"object": "response.input_tokens", "input_tokens": n})
