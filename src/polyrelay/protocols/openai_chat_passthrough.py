"""The OpenAI Chat fast path: client and upstream both speak Chat, so bytes pass through.

Only the top level of the request is decoded (values stay raw bytes); only `model` (and, for
streams, `stream_options`) is rewritten. Responses are tapped for usage, not re-rendered.
"""

from __future__ import annotations

import re

import msgspec

from polyrelay import ir
from polyrelay.errors import invalid_request

_Top = dict[str, msgspec.Raw]
_INCLUDE_USAGE = msgspec.Raw(b'{"include_usage":true}')


class ChatPeek:
    """What the gateway needs to know about a Chat request, read without a full parse."""

    __slots__ = ("top", "model", "stream", "include_usage", "max_output", "n")

    def __init__(self, top: _Top, model: str, stream: bool, include_usage: bool,
                 max_output: int | None, n: int) -> None:
        self.top = top
        self.model = model
        self.stream = stream
        self.include_usage = include_usage
        self.max_output = max_output
        self.n = n


class _StreamOptions(msgspec.Struct):
    include_usage: bool | None = None


def _field(top: _Top, name: str, typ: type, default: object) -> object:
    raw = top.get(name)
    if raw is None:
        return default
    try:
        return msgspec.json.decode(raw, type=typ)
    except msgspec.ValidationError as e:
        raise invalid_request(f"'{name}': {e}", param=name) from None


def peek_request(body: bytes) -> ChatPeek:
    try:
        top = msgspec.json.decode(body, type=_Top)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise invalid_request("the request body must be a JSON object") from None
    model = _field(top, "model", str, None)
    if not model:
        raise invalid_request("'model' is required", param="model")
    if "messages" not in top:
        raise invalid_request("'messages' is required", param="messages")
    stream = bool(_field(top, "stream", bool | None, False))
    options = _field(top, "stream_options", _StreamOptions | None, None)
    include_usage = bool(options and options.include_usage)
    max_output = _field(top, "max_completion_tokens", int | None, None)
    if max_output is None:
        max_output = _field(top, "max_tokens", int | None, None)
    n = _field(top, "n", int | None, None) or 1
    if n < 1:
        raise invalid_request("'n' must be at least 1", param="n")
    return ChatPeek(top, model, stream, include_usage, max_output, n)  # type: ignore[arg-type]


def upstream_body(peek: ChatPeek, upstream_model: str, force_usage: bool) -> bytes:
    """The client's body with the model renamed (and usage asked for in streams when `force_usage`)."""
    top = dict(peek.top)
    top["model"] = msgspec.Raw(msgspec.json.encode(upstream_model))
    if peek.stream and force_usage and not peek.include_usage:
        options = top.get("stream_options")
        if options is None or options == b"null":
            top["stream_options"] = _INCLUDE_USAGE
        else:
            merged = msgspec.json.decode(options)
            merged["include_usage"] = True
            top["stream_options"] = msgspec.Raw(msgspec.json.encode(merged))
    return msgspec.json.encode(top)


# ---- responses ------------------------------------------------------------------------------


class _PromptDetails(msgspec.Struct):
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None


class _CompletionDetails(msgspec.Struct):
    reasoning_tokens: int | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: _PromptDetails | None = None
    completion_tokens_details: _CompletionDetails | None = None


class _UsageHolder(msgspec.Struct):
    usage: _Usage | None = None


def _to_ir(u: _Usage) -> ir.Usage:
    p, c = u.prompt_tokens_details, u.completion_tokens_details
    return ir.Usage(
        input_tokens=u.prompt_tokens,
        output_tokens=u.completion_tokens,
        cache_read_tokens=(p.cached_tokens or 0) if p else 0,
        cache_write_tokens=(p.cache_write_tokens or 0) if p else 0,
        reasoning_tokens=(c.reasoning_tokens or 0) if c else 0,
    )


def usage_of(body: bytes) -> ir.Usage | None:
    """The usage of a Chat response or chunk, or None when it has none (or is not JSON)."""
    try:
        holder = msgspec.json.decode(body, type=_UsageHolder)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return _to_ir(holder.usage) if holder.usage else None


_MODEL_FIELD = re.compile(rb'"model"\s*:\s*"(?:[^"\\]|\\.)*"')


def rename_model(payload: bytes, model_json: bytes) -> bytes:
    """Replace the first `"model": "..."` (the top-level one in Chat bodies) by `model_json`."""
    return _MODEL_FIELD.sub(b'"model":' + model_json.replace(b"\\", b"\\\\"), payload, count=1)


_FINISHED = re.compile(rb'"finish_reason"\s*:\s*"')
_TEXT_FIELD = re.compile(rb'"(?:content|arguments|reasoning_content)"\s*:\s*"((?:[^"\\]|\\.)*)"')
_EMPTY_CHOICES = re.compile(rb'"choices"\s*:\s*\[\s*\]')


class ChatStreamTap:
    """Passes Chat SSE through event by event, noting usage, the finish and the text length.

    Holds only the bytes of one incomplete event. `feed` returns what to forward to the client:
    whole events, the model renamed, and the usage-only chunk dropped when the client did not ask.
    """

    def __init__(self, public_model: str, drop_usage_chunk: bool) -> None:
        self._model_json = msgspec.json.encode(public_model)
        self._drop_usage_chunk = drop_usage_chunk
        self._buffer = b""
        self.usage: ir.Usage | None = None
        self.finished = False     # a finish_reason was seen
        self.done = False         # [DONE] was seen
        self.text_bytes = 0       # bytes of streamed text, for an estimate when usage never comes

    def feed(self, chunk: bytes) -> bytes:
        data = self._buffer + chunk if self._buffer else chunk
        if b"\r\n" in data:
            data = data.replace(b"\r\n", b"\n")
        end = data.rfind(b"\n\n")
        if end == -1:
            self._buffer = data
            return b""
        self._buffer = data[end + 2:]
        out = []
        for event in data[:end].split(b"\n\n"):
            if event:
                kept = self._event(event)
                if kept:
                    out.append(kept)
                    out.append(b"\n\n")
        return b"".join(out)

    def close(self) -> bytes:
        """Forward a trailing event the upstream did not terminate with a blank line."""
        rest, self._buffer = self._buffer.strip(), b""
        kept = self._event(rest) if rest else b""
        return kept + b"\n\n" if kept else b""

    def _event(self, event: bytes) -> bytes:
        if not event.startswith(b"data:"):
            return event  # comments, event:/id:/retry: lines pass as they are
        payload = event[5:].lstrip()
        if payload.startswith(b"[DONE]"):
            self.done = True
            return event
        if b'"usage"' in payload:
            usage = usage_of(payload)
            if usage is not None:
                self.usage = usage
                if self._drop_usage_chunk and _EMPTY_CHOICES.search(payload):
                    return b""
        if not self.finished and _FINISHED.search(payload):
            self.finished = True
        for m in _TEXT_FIELD.finditer(payload):
            self.text_bytes += len(m.group(1))
        return b"data: " + rename_model(payload, self._model_json)
