"""OpenAI Responses streams <-> IR stream events.

The decoder keeps only which output index is which call. The encoder cannot be flat in the answer's
size, by the protocol: `output_text.done`, `output_item.done` and `response.completed` repeat the
whole text of each item (Codex builds its answer from `output_item.done`), so it holds the items'
text (UTF-8, one bytearray for the open item) but nothing per event beyond that.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from polyrelay import ids, ir
from polyrelay.errors import GatewayError
from polyrelay.protocols._sse import event_fields, named_event
from polyrelay.protocols._stream_base import EventDecoder
from polyrelay.protocols.openai_responses.errors import error_event
from polyrelay.protocols.openai_responses.request import client_tools, request_echo
from polyrelay.protocols.openai_responses.response import (
    call_item,
    message_item,
    parts_of_item,
    reasoning_item,
    response_id,
    response_object,
    url_citation,
    web_search_item,
)
from polyrelay.protocols.openai_responses.wire import finish_of, status_of, usage_from, usage_to

_PREFIX = {"message": "msg_", "reasoning": "rs_", "function_call": "fc_", "web_search_call": "ws_"}
_TERMINAL = ("response.completed", "response.incomplete", "response.failed")


def _search_done(item: dict[str, Any]) -> list[ir.StreamEvent]:
    """An upstream's finished web_search_call: opened and closed at once in the IR."""
    part = parts_of_item(item)[0]
    assert isinstance(part, ir.ServerToolPart)
    return [ir.ServerToolEvent(part.id, part.name), ir.ServerToolEvent(part.id, part.name, part.queries,
                                                                       part.sources, done=True, failed=part.failed)]


class StreamDecoder(EventDecoder):
    """Responses SSE from an upstream -> IR events."""

    def __init__(self) -> None:
        super().__init__()
        self._calls: dict[int, int] = {}   # output_index -> call index
        self._started = False

    def _event(self, raw: bytes) -> list[ir.StreamEvent]:
        _, data = event_fields(raw)
        if not data or data == b"[DONE]":
            return []
        try:
            e = msgspec.json.decode(data)
        except msgspec.DecodeError:
            return []
        if not isinstance(e, dict):
            return []
        kind = e.get("type")
        events: list[ir.StreamEvent] = []
        if not self._started and kind not in ("error",):
            self._started = True
            r: dict[str, Any] = e["response"] if isinstance(e.get("response"), dict) else {}
            events.append(ir.StreamStart(str(r.get("id") or ids.new_id("resp_")), str(r.get("model") or ""),
                                         int(r.get("created_at") or 0)))
        if kind == "response.output_text.delta" or kind == "response.refusal.delta":
            events.append(ir.TextDelta(str(e.get("delta") or "")))
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            events.append(ir.ThinkingDelta(str(e.get("delta") or "")))
        elif kind == "response.output_item.added":
            item = e.get("item") or {}
            if item.get("type") == "function_call":
                index = self._calls[int(e.get("output_index") or 0)] = len(self._calls)
                events.append(ir.ToolCallStart(index, str(item.get("call_id") or ids.new_id("call_")),
                                               str(item.get("name") or "")))
                if item.get("arguments"):
                    events.append(ir.ToolCallDelta(index, str(item["arguments"])))
        elif kind == "response.function_call_arguments.delta":
            call = self._calls.get(int(e.get("output_index") or 0))
            if call is not None and e.get("delta"):
                events.append(ir.ToolCallDelta(call, str(e["delta"])))
        elif kind == "response.output_item.done":
            item = e.get("item") or {}
            if item.get("type") == "web_search_call":
                events.extend(_search_done(item))
            elif item.get("type") == "reasoning" and item.get("encrypted_content"):
                events.append(ir.ThinkingDelta(signature=f"{item.get('id') or ''}:{item['encrypted_content']}",
                                               signature_origin="openai"))
        elif kind in _TERMINAL:
            r = e.get("response") or {}
            self.usage = usage_from(r.get("usage"))
            self.usage.web_searches = sum(isinstance(i, dict) and i.get("type") == "web_search_call"
                                          for i in r.get("output") or [])
            if kind == "response.failed":
                self._failed = True
                err = r.get("error") or {}
                events.append(ir.StreamError(502, "upstream", str(err.get("message") or "upstream response failed")))
            else:
                self._finished = True
                events.append(ir.Finish(finish_of(r.get("status"), r.get("incomplete_details"), bool(self._calls))))
            if r.get("usage"):
                events.append(ir.UsageEvent(self.usage))
        elif kind == "error":
            self._failed = True
            events.append(ir.StreamError(502, "upstream", str(e.get("message") or "upstream error")))
        return events


class StreamEncoder:
    """IR events -> the Responses event sequence the openai SDK's `responses.stream()` and Codex read:
    created, in_progress, per item added (content part / summary part added, deltas, done) done, then
    completed / incomplete / failed with every item and the usage; `sequence_number` counts from 0."""

    def __init__(self, model: str, request: ir.Request, framing: str = "sse") -> None:  # SSE only
        self._model = model
        self._tools = client_tools()
        self._echo = request_echo()   # read here, in the request's context, like the tools
        self._id = ids.new_id("resp_", 48)
        self._created = int(time.time())
        self._seq = 0
        self._started = False
        self._output: list[dict[str, Any]] = []     # finished items
        self._open: dict[str, Any] | None = None    # the open item
        self._text = bytearray()                    # its text (summary, message text or arguments)
        self._finish: ir.FinishReason | None = None
        self._usage: ir.Usage | None = None
        self._has_calls = False
        self._call_name = ""                        # the open call's IR name
        self._closed = False
        self._items = 0
        self._text_seen = 0                         # bytes of text in the closed message items
        self._annotations: list[dict[str, Any]] = []   # the open message's url citations
        self._search: ir.ServerToolEvent | None = None  # the open web_search_call, as last heard of

    # ---- framing
    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return named_event(kind, payload)

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        r = response_object(self._id, self._model, self._created, "in_progress", [], None,
                            echo=self._echo)
        return self._event("response.created", response=r) + self._event("response.in_progress", response=r)

    @property
    def _index(self) -> int:
        return len(self._output)

    def _item_id(self, kind: str) -> str:
        """Items are numbered within the response (no id minted per event: the numbering is the same
        however the upstream's bytes were split)."""
        self._items += 1
        return _PREFIX[kind] + self._id[5:45] + f"{self._items:08x}"

    # ---- items
    def _open_item(self, item: dict[str, Any]) -> bytes:
        self._open = item
        self._text.clear()
        out = self._event("response.output_item.added", output_index=self._index, item=item)
        if item["type"] == "web_search_call":
            return out + b"".join(self._event(f"response.web_search_call.{step}", output_index=self._index,
                                              item_id=item["id"]) for step in ("in_progress", "searching"))
        if item["type"] == "message":
            self._annotations = []
            out += self._event("response.content_part.added", item_id=item["id"], output_index=self._index,
                               content_index=0, part={"type": "output_text", "text": "", "annotations": []})
        return out

    def _close_item(self, signature: tuple[str, str | None, bool] | None = None) -> bytes:
        item = self._open
        if item is None:
            return b""
        self._open = None
        text = self._text.decode("utf-8", "replace")
        size = len(self._text)
        self._text.clear()
        index, iid = self._index, item["id"]
        out = b""
        if item["type"] == "message":
            self._text_seen += size
            out += self._event("response.output_text.done", item_id=iid, output_index=index, content_index=0,
                               text=text, logprobs=[])
            out += self._event("response.content_part.done", item_id=iid, output_index=index, content_index=0,
                               part={"type": "output_text", "text": text, "annotations": self._annotations})
            done = message_item(iid, text, annotations=self._annotations)
        elif item["type"] == "web_search_call":
            search, self._search = self._search, None
            failed = search is not None and search.failed
            if not failed:   # a failed search has no completed event: its item says so
                out += self._event("response.web_search_call.completed", output_index=index, item_id=iid)
            done = web_search_item(iid, search.queries if search else [], search.sources if search else [],
                                   "failed" if failed else "completed")
        elif item["type"] == "reasoning":
            if text:
                out += self._event("response.reasoning_summary_text.done", item_id=iid, output_index=index,
                                   summary_index=0, text=text)
                out += self._event("response.reasoning_summary_part.done", item_id=iid, output_index=index,
                                   summary_index=0, part={"type": "summary_text", "text": text})
            sig, origin, redacted = signature or (None, None, False)
            done = reasoning_item(iid, text, sig, origin, redacted)
        else:
            done = call_item(iid, item["call_id"], self._call_name, text or "{}", self._tools)
            if done["type"] == "function_call":
                out += self._event("response.function_call_arguments.done", item_id=iid, output_index=index,
                                   arguments=text or "{}")
            elif done["type"] == "custom_tool_call":   # its input is known only once the JSON is whole
                if done["input"]:
                    out += self._event("response.custom_tool_call_input.delta", item_id=iid, output_index=index,
                                       delta=done["input"])
                out += self._event("response.custom_tool_call_input.done", item_id=iid, output_index=index,
                                   input=done["input"])
        out += self._event("response.output_item.done", output_index=index, item=done)
        self._output.append(done)
        return out

    def _ensure(self, kind: str) -> bytes:
        if self._open is not None and self._open["type"] == kind:
            return b""
        out = self._close_item()
        if kind == "message":
            item = message_item(self._item_id("message"), "", "in_progress")
            item["content"] = []
        else:
            item = reasoning_item(self._item_id("reasoning"), "", None, None)
        return out + self._open_item(item)

    def encode(self, event: ir.StreamEvent) -> bytes:
        if isinstance(event, ir.StreamError):
            return self._fail(event)
        out = self._start()
        if isinstance(event, ir.TextDelta):
            if event.choice or not event.text:
                return out
            out += self._ensure("message")
            self._text += event.text.encode()
            return out + self._event("response.output_text.delta", item_id=self._open["id"],  # type: ignore[index]
                                     output_index=self._index, content_index=0, delta=event.text, logprobs=[])
        if isinstance(event, ir.ThinkingDelta):
            return out + self._thinking(event)
        if isinstance(event, ir.ServerToolEvent):
            return out + self._server_tool(event)
        if isinstance(event, ir.CitationEvent):
            return out + self._citation(event)
        if isinstance(event, ir.ToolCallStart):
            if event.choice:
                return out
            out += self._close_item()
            if event.signature:   # a Gemini thought signature: its own reasoning item, before the call
                out += self._open_item(reasoning_item(self._item_id("reasoning"), "", None, None))
                out += self._close_item((event.signature, event.signature_origin, False))
            self._has_calls = True
            out += self._open_item(call_item(self._item_id("function_call"), event.id, event.name, "", self._tools,
                                             "in_progress"))
            self._call_name = event.name
            return out
        if isinstance(event, ir.ToolCallDelta):
            item = self._open
            if event.choice or item is None or item["type"] in ("message", "reasoning"):
                return out
            self._text += event.arguments.encode()
            if item["type"] != "function_call":
                return out   # custom tool input and tool search arguments go whole when the call ends
            return out + self._event("response.function_call_arguments.delta", item_id=item["id"],
                                     output_index=self._index, delta=event.arguments)
        if isinstance(event, ir.Finish):
            if not event.choice:
                self._finish = event.reason
            return out
        if isinstance(event, ir.UsageEvent):
            self._usage = event.usage
            return out
        if isinstance(event, ir.StreamStart) and event.usage is not None:
            self._usage = event.usage
        return out

    def _server_tool(self, event: ir.ServerToolEvent) -> bytes:
        """A web search: its item opens (in_progress, searching) and closes (completed) as the
        upstream reports it; an event of another id first closes the open one."""
        if event.choice:
            return b""
        out = b""
        if self._search is None or self._search.id != event.id:
            out += self._close_item()
            self._search = event
            out += self._open_item(web_search_item(self._item_id("web_search_call"), [], [], "in_progress"))
        self._search = event
        return out + (self._close_item() if event.done else b"")

    def _citation(self, event: ir.CitationEvent) -> bytes:
        """A url_citation of the open message (offsets turned into its characters); one that points
        at text already closed cannot be added any more and is left out."""
        item = self._open
        if event.choice or item is None or item["type"] != "message":
            return b""
        annotation = url_citation(event.citation, bytes(self._text), self._text_seen)
        if annotation is None:
            return b""
        self._annotations.append(annotation)
        return self._event("response.output_text.annotation.added", item_id=item["id"], output_index=self._index,
                           content_index=0, annotation_index=len(self._annotations) - 1, annotation=annotation)

    def _thinking(self, event: ir.ThinkingDelta) -> bytes:
        if event.choice:
            return b""
        out = b""
        if event.text:
            out += self._ensure("reasoning")
            if not self._text:   # the summary part opens with its first text (a signature alone has none)
                out += self._event("response.reasoning_summary_part.added", item_id=self._open["id"],  # type: ignore[index]
                                   output_index=self._index, summary_index=0, part={"type": "summary_text", "text": ""})
            self._text += event.text.encode()
            out += self._event("response.reasoning_summary_text.delta", item_id=self._open["id"],  # type: ignore[index]
                               output_index=self._index, summary_index=0, delta=event.text)
        if event.signature:   # the block's end: the signature travels in encrypted_content
            out += self._ensure("reasoning")
            out += self._close_item((event.signature, event.signature_origin, event.redacted))
        return out

    def _fail(self, event: ir.StreamError) -> bytes:
        if self._closed:
            return b""
        self._closed = True
        out = self._start()
        err = GatewayError(event.status, event.kind, event.message)  # type: ignore[arg-type]
        detail = error_event(err, self._seq)
        out += named_event("error", detail)
        self._seq += 1
        r = response_object(self._id, self._model, self._created, "failed", self._output,
                            usage_to(self._usage) if self._usage else None,
                            error={"code": detail["code"], "message": event.message}, echo=self._echo)
        return out + self._event("response.failed", response=r)

    def close(self) -> bytes:
        if self._closed:
            return b""
        self._closed = True
        out = self._start() + self._close_item()
        reason = self._finish or ("tool_calls" if self._has_calls else "stop")
        status, incomplete = status_of(reason)
        r = response_object(self._id, self._model, self._created, status, self._output,
                            usage_to(self._usage or ir.Usage()), incomplete, echo=self._echo)
        return out + self._event("response.completed" if status == "completed" else "response.incomplete", response=r)


__all__ = ["StreamDecoder", "StreamEncoder", "response_id"]
