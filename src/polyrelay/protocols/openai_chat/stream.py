"""OpenAI Chat streams <-> IR stream events (incremental; memory does not grow with the stream)."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from polyrelay import ids, ir
from polyrelay.errors import GatewayError
from polyrelay.protocols import signatures
from polyrelay.protocols._sse import data_event
from polyrelay.protocols._stream_base import EventDecoder
from polyrelay.protocols.openai_chat.errors import render_stream_error
from polyrelay.protocols.openai_chat.wire import FINISH_FROM_CHAT, usage_from_chat, usage_to_chat


class StreamDecoder(EventDecoder):
    """Chat SSE from an upstream -> IR events."""

    def __init__(self) -> None:
        super().__init__()
        self._started = False
        self._open_calls: set[tuple[int, int]] = set()

    def _event(self, raw: bytes) -> list[ir.StreamEvent]:
        if not raw.startswith(b"data:"):
            return []
        payload = raw[5:].strip()
        if payload == b"[DONE]":
            return []
        try:
            chunk = msgspec.json.decode(payload)
        except msgspec.DecodeError:
            return []
        if not isinstance(chunk, dict):
            return []
        if "error" in chunk:
            self._failed = True
            err = chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk["error"])}
            return [ir.StreamError(502, "upstream", str(err.get("message") or "upstream error"))]
        events: list[ir.StreamEvent] = []
        if not self._started:
            self._started = True
            events.append(ir.StreamStart(str(chunk.get("id") or ids.new_id("chatcmpl-")),
                                         str(chunk.get("model") or ""), int(chunk.get("created") or 0)))
        for choice in chunk.get("choices") or []:
            events.extend(self._choice(choice))
        if isinstance(chunk.get("usage"), dict):
            self.usage = usage_from_chat(chunk["usage"])
            events.append(ir.UsageEvent(self.usage))
        return events

    def _choice(self, choice: dict[str, Any]) -> list[ir.StreamEvent]:
        n = int(choice.get("index") or 0)
        delta = choice.get("delta") or {}
        events: list[ir.StreamEvent] = []
        thinking = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(thinking, str) and thinking:
            events.append(ir.ThinkingDelta(thinking, choice=n))
        for block in delta.get("thinking_blocks") or []:
            sig = block.get("signature") or block.get("data") if isinstance(block, dict) else None
            if sig:
                sig, origin = signatures.from_text_client(sig)
                events.append(ir.ThinkingDelta(signature=sig, signature_origin=origin,
                                               redacted=block.get("type") == "redacted_thinking", choice=n))
        if isinstance(delta.get("content"), str) and delta["content"]:
            events.append(ir.TextDelta(delta["content"], choice=n))
        for position, call in enumerate(delta.get("tool_calls") or []):
            index = int(call.get("index", position))
            fn = call.get("function") or {}
            if (n, index) not in self._open_calls:
                self._open_calls.add((n, index))
                sig = ((call.get("extra_content") or {}).get("google") or {}).get("thought_signature")
                events.append(ir.ToolCallStart(index, str(call.get("id") or ids.new_id("call_")),
                                               str(fn.get("name") or ""), signature=sig,
                                               signature_origin="gemini" if sig else None, choice=n))
            if fn.get("arguments"):
                events.append(ir.ToolCallDelta(index, fn["arguments"], choice=n))
        reason = choice.get("finish_reason")
        if reason:
            self._finished = True
            events.append(ir.Finish(FINISH_FROM_CHAT.get(reason, "stop"), choice=n))
        return events


class StreamEncoder:
    """IR events -> the Chat stream a client expects (role chunk, deltas, finish, usage, [DONE])."""

    def __init__(self, model: str, request: ir.Request, framing: str = "sse") -> None:  # SSE only
        self._model = model
        self._include_usage = request.include_usage
        self._id = ids.new_id("chatcmpl-")
        self._created = int(time.time())
        self._opened: set[int] = set()
        self._thinking_block: dict[int, int] = {}   # choice -> index of the current thinking block
        self._usage: ir.Usage | None = None
        self._failed = False

    def _chunk(self, choice: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        prefix = b""
        if choice not in self._opened:
            self._opened.add(choice)
            if delta.get("role") is None:
                prefix = self._chunk(choice, {"role": "assistant", "content": ""})
        return prefix + data_event({
            "id": self._id, "object": "chat.completion.chunk", "created": self._created, "model": self._model,
            "choices": [{"index": choice, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    def encode(self, event: ir.StreamEvent) -> bytes:
        if isinstance(event, ir.TextDelta):
            return self._chunk(event.choice, {"content": event.text})
        if isinstance(event, ir.ThinkingDelta):
            return self._thinking(event)
        if isinstance(event, ir.ToolCallStart):
            call: dict[str, Any] = {"index": event.index, "id": event.id, "type": "function",
                                    "function": {"name": event.name, "arguments": ""}}
            if event.signature and event.signature_origin == "gemini":
                call["extra_content"] = {"google": {"thought_signature": event.signature}}
            return self._chunk(event.choice, {"tool_calls": [call]})
        if isinstance(event, ir.ToolCallDelta):
            return self._chunk(event.choice, {"tool_calls": [
                {"index": event.index, "function": {"arguments": event.arguments}}]})
        if isinstance(event, ir.Finish):
            return self._chunk(event.choice, {}, event.reason)
        if isinstance(event, ir.UsageEvent):
            self._usage = event.usage
            return b""
        if isinstance(event, ir.StreamStart):
            if event.usage is not None:
                self._usage = event.usage
            return self._chunk(0, {"role": "assistant", "content": ""})
        if isinstance(event, ir.StreamError):
            self._failed = True
            return render_stream_error(GatewayError(event.status, event.kind, event.message))  # type: ignore[arg-type]
        return b""

    def _thinking(self, event: ir.ThinkingDelta) -> bytes:
        """Thinking text as `reasoning_content`, and LiteLLM-style `thinking_blocks` entries (indexed, so
        the openai SDK's stream helper merges them) carrying the signature for the next turn."""
        block = self._thinking_block.setdefault(event.choice, 0)
        delta: dict[str, Any] = {}
        if event.text:
            delta["reasoning_content"] = event.text
            delta["thinking_blocks"] = [{"index": block, "type": "thinking", "thinking": event.text}]
        if event.signature:
            sig = signatures.to_text_client(event.signature, event.signature_origin)
            entry = {"index": block, "type": "redacted_thinking", "data": sig} if event.redacted else {
                "index": block, "type": "thinking", "signature": sig}
            delta.setdefault("thinking_blocks", []).append(entry)
            self._thinking_block[event.choice] = block + 1
        return self._chunk(event.choice, delta) if delta else b""

    def close(self) -> bytes:
        if self._failed:
            return b""
        out = b""
        if self._include_usage and self._usage is not None:
            out = data_event({"id": self._id, "object": "chat.completion.chunk", "created": self._created,
                              "model": self._model, "choices": [], "usage": usage_to_chat(self._usage)})
        return out + b"data: [DONE]\n\n"
