"""Gemini streams <-> IR stream events. Gemini sends whole function calls; Chat and Anthropic stream
their arguments, so the encoder holds only the current call's arguments until it is complete."""

from __future__ import annotations

from typing import Any

import msgspec

from polyrelay import ids, ir
from polyrelay.protocols import signatures
from polyrelay.protocols._common import parse_arguments
from polyrelay.protocols._stream_base import EventDecoder
from polyrelay.protocols.gemini.response import grounding, response_parts
from polyrelay.protocols.gemini.wire import FINISH_TO, client_signature, finish_from, get, usage_from, usage_to


class StreamDecoder(EventDecoder):
    """`data: <GenerateContentResponse>` events -> IR events."""

    def __init__(self) -> None:
        super().__init__()
        self._started = False
        self._id = ""
        self._tools: dict[int, int] = {}          # candidate -> calls so far
        self._searched: set[int] = set()           # candidates whose search was reported
        self._cited: set[tuple[int, int, int, str]] = set()   # (candidate, start, end, url) reported

    def _event(self, raw: bytes) -> list[ir.StreamEvent]:
        if not raw.startswith(b"data:"):
            return []
        try:
            chunk = msgspec.json.decode(raw[5:].strip())
        except msgspec.DecodeError:
            return []
        if not isinstance(chunk, dict):
            return []
        if "error" in chunk:
            self._failed = True
            error = chunk["error"] if isinstance(chunk["error"], dict) else {}
            return [ir.StreamError(502, "upstream", str(error.get("message") or "upstream error"))]
        events: list[ir.StreamEvent] = []
        if not self._started:
            self._started = True
            self._id = str(get(chunk, "responseId") or ids.new_id("resp_"))
            events.append(ir.StreamStart(self._id, str(get(chunk, "modelVersion") or "")))
        for i, cand in enumerate(chunk.get("candidates") or []):
            n = int(cand.get("index") or i)
            for part in response_parts(get(get(cand, "content", {}), "parts", [])):
                if isinstance(part, ir.TextPart):
                    events.append(ir.TextDelta(part.text, choice=n))
                elif isinstance(part, ir.ThinkingPart):
                    events.append(ir.ThinkingDelta(part.text, signature=part.signature,
                                                   signature_origin=part.signature_origin, choice=n))
                elif isinstance(part, ir.ToolCallPart):
                    index = self._tools.get(n, 0)
                    self._tools[n] = index + 1
                    events.append(ir.ToolCallStart(index, part.id, part.name, signature=part.signature,
                                                   signature_origin=part.signature_origin, choice=n))
                    events.append(ir.ToolCallDelta(index, part.arguments, choice=n))
            meta = get(cand, "groundingMetadata")
            if meta is not None:
                events += self._grounding(n, meta)
            reason = get(cand, "finishReason")
            if reason:
                self._finished = True
                events.append(ir.Finish(finish_from(reason, self._tools.get(n, 0) > 0), choice=n))
        usage = get(chunk, "usageMetadata")
        if usage:
            self.usage = usage_from(usage)
            self.usage.web_searches = int(bool(self._searched))
            events.append(ir.UsageEvent(self.usage))
        elif self._searched and self.usage is not None and self.usage.input_tokens and not self.usage.web_searches:
            self.usage.web_searches = 1   # grounding after the usage: the count again, with the search
            events.append(ir.UsageEvent(self.usage))
        if not chunk.get("candidates") and get(get(chunk, "promptFeedback", {}), "blockReason"):
            self._finished = True
            events.append(ir.Finish("content_filter"))
        return events


    def _grounding(self, n: int, meta: Any) -> list[ir.StreamEvent]:
        """Citations first (the client's message is still open), then the search, once per candidate.
        Offsets are bytes of the candidate's whole text, as the IR's stream citations are."""
        search, cites = grounding(meta, f"ws_{self._id}_{n}")
        events: list[ir.StreamEvent] = []
        for c in cites:
            key = (n, c.start, c.end, c.url)
            if key not in self._cited:
                self._cited.add(key)
                events.append(ir.CitationEvent(c, choice=n))
        if search is not None and search.queries and n not in self._searched:
            self._searched.add(n)
            events.append(ir.ServerToolEvent(search.id, search.name, search.queries, search.sources, choice=n))
            events.append(ir.ServerToolEvent(search.id, search.name, search.queries, search.sources, done=True,
                                             choice=n))
        return events


class StreamEncoder:
    """IR events -> Gemini chunks, as SSE (`?alt=sse`) or as one JSON array (no `alt`)."""

    def __init__(self, model: str, request: ir.Request, framing: str = "sse") -> None:
        self._model = model
        self._id = ids.new_id("resp_")
        self._sse = framing == "sse"
        self._sent_any = False
        self._call: dict[str, Any] | None = None   # the call being assembled
        self._call_choice = 0
        self._finish: dict[int, str] = {}
        self._usage: ir.Usage | None = None
        self._failed = False

    def _write(self, payload: dict[str, Any]) -> bytes:
        body = msgspec.json.encode(payload)
        if self._sse:
            return b"data: " + body + b"\n\n"
        prefix = b"," if self._sent_any else b"["
        self._sent_any = True
        return prefix + body

    def _parts(self, parts: list[dict[str, Any]], choice: int = 0) -> bytes:
        return self._write({"candidates": [{"content": {"role": "model", "parts": parts}, "index": choice}],
                            "modelVersion": self._model, "responseId": self._id})

    def _flush_call(self) -> bytes:
        call, self._call = self._call, None
        if call is None:
            return b""
        part: dict[str, Any] = {"functionCall": {"id": call["id"], "name": call["name"],
                                                 "args": parse_arguments("".join(call["args"]))}}
        if call["signature"]:
            part["thoughtSignature"] = call["signature"]
        return self._parts([part], self._call_choice)

    def encode(self, event: ir.StreamEvent) -> bytes:
        if isinstance(event, ir.ToolCallDelta):
            if self._call is not None:
                self._call["args"].append(event.arguments)
            return b""
        out = self._flush_call()
        if isinstance(event, ir.TextDelta):
            return out + self._parts([{"text": event.text}], event.choice)
        if isinstance(event, ir.ThinkingDelta):
            part: dict[str, Any] = {"text": event.text, "thought": True}
            if event.signature:
                part["thoughtSignature"] = client_signature(event.signature, event.signature_origin, event.redacted)
            return out + self._parts([part], event.choice)
        if isinstance(event, ir.ToolCallStart):
            sig = signatures.to_gemini_client(event.signature, event.signature_origin) if event.signature else None
            self._call = {"id": event.id, "name": event.name, "args": [], "signature": sig}
            self._call_choice = event.choice
            return out
        if isinstance(event, ir.Finish):
            self._finish[event.choice] = FINISH_TO.get(event.reason, "STOP")
            return out
        if isinstance(event, ir.UsageEvent):
            self._usage = event.usage
            return out
        if isinstance(event, ir.StreamError):
            self._failed = True
            return out + self._write({"error": {"code": event.status, "message": event.message,
                                                "status": "UNAVAILABLE"}})
        return out

    def close(self) -> bytes:
        out = self._flush_call()
        if not self._failed:
            final: dict[str, Any] = {
                "candidates": [{"content": {"role": "model", "parts": []}, "finishReason": reason, "index": n}
                               for n, reason in sorted(self._finish.items())] or [
                    {"content": {"role": "model", "parts": []}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": usage_to(self._usage or ir.Usage()),
                "modelVersion": self._model, "responseId": self._id}
            out += self._write(final)
        if not self._sse:
            out += b"]" if self._sent_any else b"[]"
        return out
