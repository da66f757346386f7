"""The canonical request / response / stream-event types every protocol maps to and from.

Conversions go wire -> IR -> wire (never pairwise). Each protocol module exposes:

    parse_request(body: bytes) -> Request                     # client wire -> IR
    render_request(req: Request, upstream_model: str) -> bytes  # IR -> upstream wire
    parse_response(body: bytes) -> Response                   # upstream wire -> IR
    render_response(resp: Response, model: str) -> bytes       # IR -> client wire
    class StreamDecoder: feed(chunk: bytes) -> list[StreamEvent]; close() -> list[StreamEvent]
    class StreamEncoder: encode(event: StreamEvent) -> bytes; close() -> bytes
    parse_error(status: int, body: bytes) -> GatewayError
    render_error(err: GatewayError) -> tuple[int, bytes]

Conventions:
- Token counts follow OpenAI's totals: `Usage.input_tokens` includes cache reads and writes,
  `Usage.output_tokens` includes reasoning tokens.
- Tool-call arguments are always a JSON *string* in the IR (Chat's form); object-based protocols
  (Anthropic, Gemini) encode/decode at their edge.
- Web search: what the provider searched travels as ServerToolPart / ServerToolEvent, its citations
  as Citation on text, offsets in UTF-8 bytes (renderers convert to their client's unit).
- Opaque provider state (Anthropic thinking signatures, Gemini thought signatures) travels in the
  `signature` fields; `signature_origin` tells which provider minted it ("anthropic" | "gemini"), so
  a renderer only replays signatures its upstream can verify.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


# ---------------------------------------------------------------------------------------------
# Content parts


class Citation(msgspec.Struct, omit_defaults=True):
    """A source the model cites for a stretch of its text. `start` / `end` are UTF-8 byte offsets
    (Gemini's own unit; renderers turn them into their client's unit): of the TextPart's text in a
    Response, of the choice's text streamed so far (all its TextDeltas) in a stream."""

    url: str
    title: str | None = None
    start: int = 0
    end: int = 0


class TextPart(msgspec.Struct, tag="text", omit_defaults=True):
    text: str
    cache_control: dict[str, Any] | None = None  # Anthropic-style {"type":"ephemeral","ttl":...}
    citations: list[Citation] | None = None      # web search sources (answers only)


class MediaPart(msgspec.Struct, tag="media", omit_defaults=True):
    """Image, video, audio or document input. Exactly one of `url` / `data` is set.

    `data` is standard base64 (no `data:` prefix); `media_type` is the MIME type when known
    (always known when `data` is set). `kind` says what the client declared.
    """

    kind: Literal["image", "video", "audio", "file"]
    url: str | None = None
    data: str | None = None
    media_type: str | None = None
    detail: str | None = None      # OpenAI image detail
    filename: str | None = None
    file_id: str | None = None     # provider-scoped file id (not portable across providers)
    cache_control: dict[str, Any] | None = None


class ThinkingPart(msgspec.Struct, tag="thinking", omit_defaults=True):
    """Reasoning text. `redacted` blocks carry only opaque `signature` data (Anthropic redacted_thinking)."""

    text: str = ""
    signature: str | None = None
    signature_origin: str | None = None
    redacted: bool = False


class ToolCallPart(msgspec.Struct, tag="tool_call", omit_defaults=True):
    id: str
    name: str
    arguments: str = "{}"            # JSON string
    signature: str | None = None     # Gemini thoughtSignature attached to this call
    signature_origin: str | None = None


class ToolResultPart(msgspec.Struct, tag="tool_result", omit_defaults=True):
    call_id: str
    content: list[TextPart | MediaPart] = msgspec.field(default_factory=list)
    name: str | None = None          # the called function's name, when known (Gemini needs it)
    is_error: bool = False


class Source(msgspec.Struct, omit_defaults=True):
    url: str
    title: str | None = None


class ServerToolPart(msgspec.Struct, tag="server_tool", omit_defaults=True):
    """A tool the provider ran itself while answering (web search): what it searched for and found.
    Answers only: no provider takes another's server tool calls back as history."""

    id: str
    name: str = "web_search"
    queries: list[str] = msgspec.field(default_factory=list)
    sources: list[Source] = msgspec.field(default_factory=list)
    failed: bool = False          # the provider's search failed (the model answered without it)


Part = TextPart | MediaPart | ThinkingPart | ToolCallPart | ToolResultPart | ServerToolPart


class Message(msgspec.Struct, omit_defaults=True):
    role: Role
    parts: list[Part] = msgspec.field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Request


class Tool(msgspec.Struct, omit_defaults=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None   # JSON Schema
    strict: bool | None = None
    cache_control: dict[str, Any] | None = None


class WebSearch(msgspec.Struct, omit_defaults=True):
    """The provider's own web search offered to the model (OpenAI Responses `web_search`, Anthropic
    `web_search_20250305`, Gemini `googleSearch`). `forced`: the client's tool_choice requires it."""

    forced: bool = False
    max_uses: int | None = None
    allowed_domains: list[str] | None = None
    user_location: dict[str, Any] | None = None   # {"type": "approximate", city, region, country, timezone}
    context_size: str | None = None               # OpenAI's search_context_size: low | medium | high


class ToolChoice(msgspec.Struct, omit_defaults=True):
    mode: Literal["auto", "none", "required", "tool"] = "auto"
    name: str | None = None               # with mode="tool"
    allowed: list[str] | None = None      # restrict to these tool names
    parallel: bool | None = None          # False = at most one call per turn


class ResponseFormat(msgspec.Struct, omit_defaults=True):
    type: Literal["text", "json_object", "json_schema"] = "text"
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None
    description: str | None = None


class Reasoning(msgspec.Struct, omit_defaults=True):
    """Either an effort level or a token budget (or both); renderers map to their target."""

    effort: str | None = None            # none|minimal|low|medium|high|xhigh|max
    budget_tokens: int | None = None
    include_thoughts: bool = True
    enabled: bool = True


class Loss(msgspec.Struct, frozen=True):
    """A request field a conversion could not carry as it was: `what` happened to it ("dropped",
    "changed") and why. Sent to the client (`x-polyrelay-dropped`) and kept in the request log."""

    field: str
    what: str
    why: str


class Request(msgspec.Struct, omit_defaults=True):
    model: str
    messages: list[Message] = msgspec.field(default_factory=list)
    system: list[TextPart] = msgspec.field(default_factory=list)
    stream: bool = False
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = msgspec.field(default_factory=list)
    seed: int | None = None
    n: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    tools: list[Tool] = msgspec.field(default_factory=list)
    tool_choice: ToolChoice | None = None
    web_search: WebSearch | None = None
    response_format: ResponseFormat | None = None
    reasoning: Reasoning | None = None
    user: str | None = None
    metadata: dict[str, Any] | None = None
    include_usage: bool = False          # client asked for usage in its stream (Chat)
    losses: list[Loss] = msgspec.field(default_factory=list)   # what parsing the client's body lost


# ---------------------------------------------------------------------------------------------
# Response


class Usage(msgspec.Struct, omit_defaults=True):
    input_tokens: int = 0        # total prompt tokens, including cache_read and cache_write
    output_tokens: int = 0       # total completion tokens, including reasoning
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    web_searches: int = 0        # server-side searches the upstream ran (billed per search)
    estimated: bool = False      # counted locally, not reported by the upstream


class Choice(msgspec.Struct, omit_defaults=True):
    index: int = 0
    parts: list[Part] = msgspec.field(default_factory=list)
    finish_reason: FinishReason | None = None
    stop_sequence: str | None = None


class Response(msgspec.Struct, omit_defaults=True):
    id: str
    model: str
    choices: list[Choice] = msgspec.field(default_factory=list)
    usage: Usage = msgspec.field(default_factory=Usage)
    created: int = 0


# ---------------------------------------------------------------------------------------------
# Stream events (what decoders yield and encoders consume). `choice` is the choice index (n>1).


class StreamStart(msgspec.Struct, tag="start", omit_defaults=True):
    id: str
    model: str
    created: int = 0
    usage: Usage | None = None   # early usage (Anthropic message_start input tokens)


class TextDelta(msgspec.Struct, tag="text", omit_defaults=True):
    text: str
    choice: int = 0


class ThinkingDelta(msgspec.Struct, tag="thinking", omit_defaults=True):
    text: str = ""
    signature: str | None = None        # set on the event that closes a signed thinking block
    signature_origin: str | None = None
    redacted: bool = False
    choice: int = 0


class ToolCallStart(msgspec.Struct, tag="tool_start", omit_defaults=True):
    index: int                   # position of this call within the choice (0, 1, ...)
    id: str
    name: str
    signature: str | None = None
    signature_origin: str | None = None
    choice: int = 0


class ToolCallDelta(msgspec.Struct, tag="tool_delta", omit_defaults=True):
    index: int
    arguments: str               # a fragment of the JSON argument string
    choice: int = 0


class ServerToolEvent(msgspec.Struct, tag="server_tool", omit_defaults=True):
    """A provider-run tool call (web search). The first event of an id opens it; the one with
    `done` closes it with what is known by then (queries, sources)."""

    id: str
    name: str = "web_search"
    queries: list[str] = msgspec.field(default_factory=list)
    sources: list[Source] = msgspec.field(default_factory=list)
    done: bool = False
    failed: bool = False
    choice: int = 0


class CitationEvent(msgspec.Struct, tag="citation", omit_defaults=True):
    citation: Citation           # offsets in UTF-8 bytes of the choice's text streamed so far
    choice: int = 0


class Finish(msgspec.Struct, tag="finish", omit_defaults=True):
    reason: FinishReason
    stop_sequence: str | None = None
    choice: int = 0


class UsageEvent(msgspec.Struct, tag="usage", omit_defaults=True):
    usage: Usage                 # cumulative: the latest one wins


class StreamError(msgspec.Struct, tag="error", omit_defaults=True):
    status: int
    kind: str
    message: str


StreamEvent = (
    StreamStart | TextDelta | ThinkingDelta | ToolCallStart | ToolCallDelta | ServerToolEvent | CitationEvent
    | Finish | UsageEvent | StreamError
)
