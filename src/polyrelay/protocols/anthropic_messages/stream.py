"""Anthropic Messages streams <-> IR stream events (incremental; bounded memory)."""

from __future__ import annotations

import contextlib
from typing import Any

import msgspec

from polyrelay import ids, ir
from polyrelay.errors import GatewayError
from polyrelay.protocols import signatures
from polyrelay.protocols._sse import event_fields, named_event
from polyrelay.protocols._stream_base import EventDecoder
from polyrelay.protocols.anthropic_messages.errors import render_stream_error
from polyrelay.protocols.anthropic_messages.response import search_failed, search_query, search_sources
from polyrelay.protocols.anthropic_messages.wire import FINISH_FROM, FINISH_TO, usage_from, usage_to


class StreamDecoder(EventDecoder):
    """Anthropic SSE from an upstream -> IR events. Usage in message_delta is cumulative: overwrite."""

    def __init__(self) -> None:
        super().__init__()
        self._blocks: dict[int, tuple[str, int]] = {}   # block index -> (kind, tool index)
        self._tool_has_input: dict[int, bool] = {}
        self._tools = 0
        self.usage: ir.Usage | None = None
        # web search: the open server_tool_use's input, the searches by id (their queries), the text
        # streamed so far in UTF-8 bytes, and the open text block's start and citations
        self._server_input = bytearray()
        self._searches: dict[str, list[str]] = {}
        self._text_bytes = 0
        self._text_start = 0
        self._cited: list[ir.Citation] = []

    def _merge_usage(self, u: dict[str, Any] | None) -> ir.Usage:
        self.usage = usage_from(u, self.usage)
        return self.usage

    def _event(self, raw: bytes) -> list[ir.StreamEvent]:
        name, data = event_fields(raw)
        if not data:
            return []
        try:
            e = msgspec.json.decode(data)
        except msgspec.DecodeError:
            return []
        kind = e.get("type") or name.decode()
        if kind == "message_start":
            m = e.get("message") or {}
            return [ir.StreamStart(str(m.get("id") or ids.new_id("msg_")), str(m.get("model") or ""),
                                   usage=self._merge_usage(m.get("usage")))]
        if kind == "content_block_start":
            return self._block_start(int(e.get("index") or 0), e.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(int(e.get("index") or 0), e.get("delta") or {})
        if kind == "content_block_stop":
            index = int(e.get("index") or 0)
            block_kind, tool = self._blocks.get(index, ("", 0))
            if block_kind == "tool_use" and not self._tool_has_input.get(tool):
                return [ir.ToolCallDelta(tool, "{}")]  # a tool without parameters streams no input
            if block_kind == "text" and self._cited:
                cited = [ir.CitationEvent(ir.Citation(c.url, c.title, self._text_start, self._text_bytes))
                         for c in self._cited]
                self._cited = []
                return list(cited)
            if block_kind == "server_tool_use":
                self._server_stop()
            return []
        if kind == "message_delta":
            events: list[ir.StreamEvent] = []
            delta = e.get("delta") or {}
            if delta.get("stop_reason"):
                self._finished = True
                events.append(ir.Finish(FINISH_FROM.get(delta["stop_reason"], "stop"),
                                        stop_sequence=delta.get("stop_sequence")))
            if e.get("usage"):
                events.append(ir.UsageEvent(self._merge_usage(e["usage"])))
            return events
        if kind == "error":
            self._failed = True
            err = e.get("error") or {}
            return [ir.StreamError(503 if err.get("type") == "overloaded_error" else 502, "upstream",
                                   str(err.get("message") or "upstream error"))]
        return []

    def _server_stop(self) -> None:
        """The end of a server_tool_use block: its input (the query) is whole."""
        server_id = next(reversed(self._searches), None)
        if server_id is not None and self._server_input:
            with contextlib.suppress(msgspec.DecodeError):
                self._searches[server_id] = search_query(msgspec.json.decode(self._server_input))
        self._server_input.clear()

    def _text(self, text: str) -> list[ir.StreamEvent]:
        self._text_bytes += len(text) if text.isascii() else len(text.encode())
        return [ir.TextDelta(text)]

    def _block_start(self, index: int, block: dict[str, Any]) -> list[ir.StreamEvent]:
        t = block.get("type")
        if t == "server_tool_use":
            self._blocks[index] = ("server_tool_use", 0)
            server_id, name = str(block.get("id")), str(block.get("name") or "web_search")
            self._searches[server_id] = search_query(block.get("input"))
            return [ir.ServerToolEvent(server_id, name)]
        if t == "web_search_tool_result":
            self._blocks[index] = ("web_search_tool_result", 0)
            server_id = str(block.get("tool_use_id"))
            content = block.get("content")
            return [ir.ServerToolEvent(server_id, "web_search", self._searches.pop(server_id, []),
                                       search_sources(content), done=True, failed=search_failed(content))]
        if t == "tool_use":
            tool = self._tools
            self._tools += 1
            self._blocks[index] = ("tool_use", tool)
            events: list[ir.StreamEvent] = [ir.ToolCallStart(tool, str(block.get("id")), str(block.get("name")))]
            if block.get("input"):
                self._tool_has_input[tool] = True
                events.append(ir.ToolCallDelta(tool, msgspec.json.encode(block["input"]).decode()))
            return events
        self._blocks[index] = (str(t), 0)
        if t == "text":
            self._text_start = self._text_bytes
            self._cited = [ir.Citation(str(c["url"]), c.get("title")) for c in block.get("citations") or []
                           if isinstance(c, dict) and isinstance(c.get("url"), str)]
            return self._text(block["text"]) if block.get("text") else []
        if t == "thinking" and block.get("thinking"):
            return [ir.ThinkingDelta(block["thinking"])]
        if t == "redacted_thinking":
            return [ir.ThinkingDelta(signature=block.get("data"), signature_origin="anthropic", redacted=True)]
        return []

    def _block_delta(self, index: int, delta: dict[str, Any]) -> list[ir.StreamEvent]:
        t = delta.get("type")
        if t == "text_delta":
            return self._text(str(delta.get("text", "")))
        if t == "citations_delta":
            c = delta.get("citation") or {}
            if c.get("type") == "web_search_result_location" and isinstance(c.get("url"), str):
                self._cited.append(ir.Citation(c["url"], c.get("title")))
            return []
        if t == "thinking_delta":
            return [ir.ThinkingDelta(str(delta.get("thinking", "")))]
        if t == "signature_delta":
            return [ir.ThinkingDelta(signature=delta.get("signature"), signature_origin="anthropic")]
        if t == "input_json_delta" and self._blocks.get(index, ("", 0))[0] == "server_tool_use":
            self._server_input += str(delta.get("partial_json") or "").encode()
            return []
        if t == "input_json_delta" and delta.get("partial_json"):
            tool = self._blocks.get(index, ("", 0))[1]
            self._tool_has_input[tool] = True
            return [ir.ToolCallDelta(tool, delta["partial_json"])]
        return []


class StreamEncoder:
    """IR events -> the Anthropic event sequence (message_start, blocks in order, message_delta, message_stop)."""

    def __init__(self, model: str, request: ir.Request, framing: str = "sse") -> None:  # SSE only
        self._model = model
        self._id = ids.new_id("msg_")
        self._started = False
        self._index = -1
        self._open: str | None = None          # kind of the open block
        self._open_tool: int | None = None
        self._usage = ir.Usage()
        self._stop: str | None = None
        self._stop_sequence: str | None = None
        self._failed = False

    def _start(self, usage: ir.Usage | None = None) -> bytes:
        if self._started:
            return b""
        self._started = True
        if usage is not None:
            self._usage = usage
        return named_event("message_start", {"type": "message_start", "message": {
            "id": self._id, "type": "message", "role": "assistant", "model": self._model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {**usage_to(self._usage), "output_tokens": 0}}})

    def _close_block(self) -> bytes:
        if self._open is None:
            return b""
        self._open, self._open_tool = None, None
        return named_event("content_block_stop", {"type": "content_block_stop", "index": self._index})

    def _open_block(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close_block()
        self._index += 1
        self._open = kind
        return out + named_event("content_block_start",
                                 {"type": "content_block_start", "index": self._index, "content_block": block})

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return named_event("content_block_delta", {"type": "content_block_delta", "index": self._index,
                                                   "delta": delta})

    def encode(self, event: ir.StreamEvent) -> bytes:
        if isinstance(event, ir.StreamStart):
            return self._start(event.usage)
        out = self._start()
        if isinstance(event, ir.TextDelta):
            if self._open != "text":
                out += self._open_block("text", {"type": "text", "text": ""})
            return out + self._delta({"type": "text_delta", "text": event.text})
        if isinstance(event, ir.ThinkingDelta):
            return out + self._thinking(event)
        if isinstance(event, ir.ToolCallStart):
            if event.signature and event.signature_origin == "gemini":
                out += self._open_block("thinking", {"type": "thinking", "thinking": "", "signature": ""})
                out += self._delta({"type": "signature_delta",
                                    "signature": signatures.to_text_client(event.signature, "gemini")})
            out += self._open_block("tool_use", {"type": "tool_use", "id": event.id, "name": event.name, "input": {}})
            self._open_tool = event.index
            return out
        if isinstance(event, ir.ToolCallDelta):
            if self._open != "tool_use" or self._open_tool != event.index:
                return out  # interleaved fragments of another call cannot be expressed: never seen in practice
            return out + self._delta({"type": "input_json_delta", "partial_json": event.arguments})
        if isinstance(event, ir.Finish):
            self._stop = FINISH_TO.get(event.reason, "end_turn")
            self._stop_sequence = event.stop_sequence
            if event.stop_sequence and self._stop == "end_turn":
                self._stop = "stop_sequence"
            return out + self._close_block()
        if isinstance(event, ir.UsageEvent):
            self._usage = event.usage
            return out
        if isinstance(event, ir.StreamError):
            self._failed = True
            return out + render_stream_error(GatewayError(event.status, event.kind, event.message))  # type: ignore[arg-type]
        return out

    def _thinking(self, event: ir.ThinkingDelta) -> bytes:
        out = b""
        if event.redacted:
            data = signatures.to_text_client(event.signature or "", event.signature_origin)
            out += self._open_block("redacted_thinking", {"type": "redacted_thinking", "data": data})
            return out + self._close_block()
        if self._open != "thinking":
            out += self._open_block("thinking", {"type": "thinking", "thinking": "", "signature": ""})
        if event.text:
            out += self._delta({"type": "thinking_delta", "thinking": event.text})
        if event.signature:  # a signature ends its thinking block
            out += self._delta({"type": "signature_delta",
                                "signature": signatures.to_text_client(event.signature, event.signature_origin)})
            out += self._close_block()
        return out

    def close(self) -> bytes:
        if self._failed:
            return b""
        out = self._start() + self._close_block()
        out += named_event("message_delta", {
            "type": "message_delta", "delta": {"stop_reason": self._stop or "end_turn",
                                               "stop_sequence": self._stop_sequence},
            "usage": usage_to(self._usage)})
        return out + named_event("message_stop", {"type": "message_stop"})
