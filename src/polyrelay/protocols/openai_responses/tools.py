"""OpenAI Responses tools -> IR function tools, and how each comes back.

Tools the IR has no kind for are carried as function tools and their calls given back in their own
shape: a `custom` tool (Codex's `apply_patch`, `exec`) becomes a function taking one string `input`
and its calls come back as `custom_tool_call` items; `tool_search` (client-executed) a function
whose calls come back as `tool_search_call`; a `namespace` tool's members `<namespace>__<name>`.
Hosted tools (web search, file search, ...) run only on OpenAI: left out and reported, and a
`tool_choice` that forces one is refused.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, NamedTuple

from polyrelay import ir
from polyrelay.errors import GatewayError
from polyrelay.protocols._common import expect, lost

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
_CLIENT_TOOLS: ContextVar[dict[str, ClientTool]] = ContextVar("polyrelay_responses_tools", default={})


def client_tools() -> dict[str, ClientTool]:
    return _CLIENT_TOOLS.get()


def remember(kinds: dict[str, ClientTool]) -> None:
    """Keep the parsed request's non-function tools for its answer (see above)."""
    _CLIENT_TOOLS.set(kinds)


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


def _tool(t: Any, where: str, tools: list[ir.Tool], kinds: dict[str, ClientTool], namespace: str | None = None) -> None:
    expect(isinstance(t, dict) and isinstance(t.get("type"), str), f"{where} must be an object with a type", "tools")
    kind = t["type"]
    if kind == "namespace" and namespace is None:
        expect(isinstance(t.get("name"), str) and isinstance(t.get("tools"), list),
               f"{where}: a namespace tool needs a name and tools", "tools")
        for j, member in enumerate(t["tools"]):
            _tool(member, f"{where}.tools[{j}]", tools, kinds, t["name"])
        return
    if kind in ("function", "custom"):
        expect(isinstance(t.get("name"), str) and bool(t["name"]), f"{where}.name is required", "tools")
        name = ir_name(t["name"], namespace)
        tool = _custom_tool(t, where) if kind == "custom" else ir.Tool(
            t["name"], t.get("description"), t.get("parameters"), t.get("strict"))
        tool.name = name
        tools.append(tool)
        if kind == "custom" or namespace:
            kinds[name] = ClientTool(kind, t["name"], namespace)
        return
    if kind == "tool_search" and t.get("execution", "server") == "client":
        tools.append(ir.Tool("tool_search", t.get("description") or "Search for more tools by what they do.",
                             t.get("parameters") if isinstance(t.get("parameters"), dict) else _SEARCH_PARAMS))
        kinds["tool_search"] = ClientTool("tool_search", "tool_search")
        return
    why = ("no channel of this model searches the web" if kind in WEB_SEARCH_TYPES
           else f"OpenAI's hosted {kind} tool runs only on OpenAI Responses channels")
    lost(f"{where} ({kind})", "dropped", why)


def tools_of(raw: Any, tools: list[ir.Tool], kinds: dict[str, ClientTool], where: str = "tools") -> None:
    if raw is None:
        return
    expect(isinstance(raw, list), f"'{where}' must be an array", "tools")
    for i, t in enumerate(raw):
        _tool(t, f"{where}[{i}]", tools, kinds)


def ir_name(name: str, namespace: Any) -> str:
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}" if isinstance(namespace, str) and namespace else name


def tool_choice(raw: Any, parallel: Any, tools: list[ir.Tool]) -> ir.ToolChoice | None:
    choice: ir.ToolChoice | None = None
    if isinstance(raw, str):
        expect(raw in ("auto", "none", "required"), "tool_choice must be auto, none, required or an object",
               "tool_choice")
        choice = ir.ToolChoice(raw)  # type: ignore[arg-type]
    elif isinstance(raw, dict):
        kind = raw.get("type")
        if kind in ("function", "custom"):
            expect(isinstance(raw.get("name"), str), "tool_choice.name is required", "tool_choice")
            choice = ir.ToolChoice("tool", name=ir_name(raw["name"], raw.get("namespace")))
        elif kind == "allowed_tools":
            names = [ir_name(t["name"], t.get("namespace")) for t in raw.get("tools") or []
                     if isinstance(t, dict) and isinstance(t.get("name"), str)]
            choice = ir.ToolChoice("required" if raw.get("mode") == "required" else "auto", allowed=names)
        elif kind == "tool_search" and any(t.name == "tool_search" for t in tools):
            choice = ir.ToolChoice("tool", name="tool_search")
        else:   # the client requires a hosted tool (web search, file search, ...) the target cannot run
            raise GatewayError(400, "invalid_request", f"tool_choice requires the hosted tool {kind!r}, which this "
                               "model's channel cannot run: it is not an OpenAI Responses channel", param="tool_choice")
    elif raw is not None:
        raise GatewayError(400, "invalid_request", "tool_choice must be a string or an object", param="tool_choice")
    if isinstance(parallel, bool):
        choice = choice or ir.ToolChoice()
        choice.parallel = parallel
    return choice
