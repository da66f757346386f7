"""Stored responses on the Responses API surface: `previous_response_id` and `store`.

    POST /v1/responses  body ──expand──> body with the earlier turns in `input` ──relay──> reply
                        reply ──remember──> reply (unchanged bytes; the response is queued for the store)

`expand` rebuilds a conversation for every channel kind: the input and output items of every earlier
response in the chain, oldest first, go before the request's own input, and `previous_response_id`
is removed, so no upstream needs state of its own. `instructions` are not inherited (as OpenAI). The
rule for ids (docs/responses.md): an id this gateway stored is expanded here whatever the channel kind;
one stored for another key is a 404; an id it never saw is a 404 too, unless the target may be an
OpenAI Responses channel (`passthrough_unknown`), which may have issued it: then the body goes on
untouched and that upstream resolves it.

`remember` keeps a response unless the request said `store: false`: a whole JSON body as it is, a
stream from its final event (`response.completed`, `.incomplete` or `.failed`), caught as the bytes go
to the client without holding more than that one event. A response larger than
`responses.max_stored_mb` is served but not stored (`x-polyrelay-not-stored` says so when the headers
are still unsent); its id stays bound to its key (a stub row) so that no other key can use it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from polyrelay.channels.base import Operation
from polyrelay.errors import GatewayError, invalid_request
from polyrelay.protocols import event_fields
from polyrelay.relay.generate import GENERATE
from polyrelay.relay.replies import Producer, Reply, StreamReply, Write
from polyrelay.relay.surfaces import OPENAI_RESPONSES
from polyrelay.store.keys import KeyRecord
from polyrelay.store.responses import MAX_ID_CHARS, MAX_MODEL_CHARS, MAX_STATUS_CHARS, MAX_TIME, StoredResponse

if TYPE_CHECKING:
    from polyrelay.relay.gateway import Gateway

log = logging.getLogger("polyrelay.responses")

NOT_STORED = b"x-polyrelay-not-stored"
_TERMINAL_TYPES = frozenset(("response.completed", "response.incomplete", "response.failed"))
# the events worth a parse when a stream ends
_WANTED = re.compile(rb'"response\.(?:completed|incomplete|failed)"')
_ID_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs",
              "custom_tool_call": "ctc", "custom_tool_call_output": "ctco"}


def previous_not_found(response_id: str) -> GatewayError:
    return GatewayError(404, "not_found", f"Previous response with id '{response_id}' not found.",
                        param="previous_response_id", code="previous_response_not_found")


def response_not_found(response_id: str) -> GatewayError:
    return GatewayError(404, "not_found", f"Response with id '{response_id}' not found.",
                        param="response_id", code="response_not_found")


# ---- expand -------------------------------------------------------------------------------------

Top = Mapping[str, msgspec.Raw]   # a request's top-level fields, values still raw JSON (the relay's peek)


async def expand(gw: Gateway, key: KeyRecord, body: bytes,
                 passthrough_unknown: Callable[[str], bool] | None = None, top: Top | None = None) -> bytes:
    """The body with the conversation before `previous_response_id` in `input` (module docstring).
    `passthrough_unknown(model)`: whether an id this gateway never stored may be the upstream's.
    `top`: the body's top level if the caller decoded it already (then the body is not searched)."""
    if top is None:
        if b'"previous_response_id"' not in body:
            return body   # one search when the caller has not decoded the body
        try:
            top = msgspec.json.decode(body, type=dict[str, msgspec.Raw])
        except (msgspec.DecodeError, msgspec.ValidationError):
            return body   # the protocol's parser refuses it in its own words
    previous = _value(top, "previous_response_id")
    if previous is None:
        return body
    if not isinstance(previous, str) or not previous:
        raise invalid_request("'previous_response_id' must be the id of a response", "previous_response_id")
    chain = await gw.responses.chain(previous)

    def may_pass() -> bool:
        model = _value(top, "model")
        return passthrough_unknown is not None and passthrough_unknown(model if isinstance(model, str) else "")

    if not chain:
        if may_pass():
            return body
        raise previous_not_found(previous)
    if chain[0].key_id != key.id:
        raise previous_not_found(previous)   # another key's: as if unknown, and never passed on
    if not all(link.stored for link in chain):
        if may_pass():
            return body   # the upstream that answered it may still have it
        raise invalid_request(f"Previous response with id '{previous}' was too large to be stored by this "
                              f"gateway; send its items in 'input' instead", "previous_response_id")
    arrays: list[bytes] = []
    for link in reversed(chain):
        arrays += (link.input_items.encode(), link.output_items.encode())
    arrays.append(_own_input_array(top.get("input")))
    expanded = {name: raw for name, raw in top.items() if name != "previous_response_id"}
    expanded["input"] = msgspec.Raw(_join_arrays(arrays))
    return msgspec.json.encode(expanded)


def responses_channel_may_serve(gw: Gateway, operation: Operation = GENERATE.name) -> Callable[[str], bool]:
    """`expand`'s `passthrough_unknown`: whether an OpenAI Responses channel (`api: responses`) may
    serve the model (for `operation`), and so may know an id this gateway never stored."""
    return lambda model: any(ch.protocol == OPENAI_RESPONSES.name for ch in gw.router.candidates(model, operation))


def _value(top: Top, name: str) -> object:
    raw = top.get(name)
    return None if raw is None else msgspec.json.decode(raw)


def _own_input_array(raw: msgspec.Raw | None) -> bytes:
    """The request's own `input` as a JSON array: as sent when it is one, else its items encoded."""
    if raw is not None and bytes(raw).lstrip()[:1] == b"[":
        return bytes(raw)
    return msgspec.json.encode(own_input_items(None if raw is None else msgspec.json.decode(raw)))


def _join_arrays(arrays: list[bytes]) -> bytes:
    """JSON arrays joined into one, without decoding their items (the history is copied as text)."""
    inner = [a.strip()[1:-1].strip() for a in arrays]
    return b"[" + b",".join(i for i in inner if i) + b"]"


def own_input_items(value: object) -> list[Any]:
    """A request's `input` as a list of items: a string is one user message."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    if isinstance(value, list):
        return value
    raise invalid_request("'input' must be a string or a list of input items", "input")


# ---- remember -----------------------------------------------------------------------------------

class _StoreFlag(msgspec.Struct):
    store: bool | None = None


def wants_store(body: bytes, top: Top | None = None) -> bool:
    """`store` defaults to true (as OpenAI). From `top` when the caller decoded the body already."""
    if top is not None:
        raw = top.get("store")
        return raw is None or bytes(raw).strip() != b"false"
    if b'"store"' not in body:
        return True
    try:
        return msgspec.json.decode(body, type=_StoreFlag).store is not False
    except (msgspec.DecodeError, msgspec.ValidationError):
        return False


def remember(gw: Gateway, key: KeyRecord, request_body: bytes, reply: Reply | StreamReply,
             top: Top | None = None) -> Reply | StreamReply:
    """Queue the response for the store (module docstring); the reply goes out as it came. `top`: the
    request's top level, if the caller decoded it already (then the body is not searched for `store`)."""
    if reply.status != 200 or not wants_store(request_body, top):
        return reply
    limit = gw.responses.max_bytes
    if isinstance(reply, Reply):
        too_large = len(request_body) + len(reply.body) > limit
        if too_large:
            reply.headers.append(_not_stored_header(gw))
        # after the answer is on its way: parsing a large body must not delay it
        asyncio.get_running_loop().call_soon(_keep, gw, key.id, request_body, reply.body, too_large)
        return reply
    if len(request_body) > limit:
        reply.headers.append(_not_stored_header(gw))
    reply.produce = _capturing(gw, key.id, request_body, reply.produce, limit - len(request_body))
    return reply


def _not_stored_header(gw: Gateway) -> tuple[bytes, bytes]:
    return NOT_STORED, f"larger than {gw.responses.settings.max_stored_mb:g} MB (responses.max_stored_mb)".encode()


def _capturing(gw: Gateway, key_id: int, request_body: bytes, produce: Producer, room: int) -> Producer:
    async def run(write: Write) -> None:
        catcher = TerminalEvent(max(room, 0))

        def tee(chunk: bytes) -> Awaitable[None]:   # no coroutine of its own per chunk
            catcher.feed(chunk)
            return write(chunk)

        try:
            await produce(tee)
        finally:
            catcher.close()
            if catcher.response is not None:
                _keep(gw, key_id, request_body, catcher.response, False)
            elif catcher.response_id is not None and catcher.oversize:
                _keep_stub(gw, key_id, catcher.response_id, request_body)
    return run


class TerminalEvent:
    """Catches the `response` of a Responses stream's final event from the bytes written to the
    client. Per read it only looks at whether the read ends with an event boundary (a blank line):
    it keeps the reads since the last boundary and the last few groups that ended at one (what may
    follow the final event, a `[DONE]` or a comment, is small), and looks for the final event in
    them once, when the stream ends. It holds about `limit` bytes at most: a group that outgrows
    it keeps only the events that begin in its last read; if the final event is lost that way, the
    response is `oversize`."""

    __slots__ = ("_limit", "_parts", "_size", "_groups", "_held", "_head", "response", "response_id", "oversize")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._parts: list[bytes] = []     # reads since the last event boundary
        self._size = 0                    # their length, or -1: outgrown and dropped
        self._groups: deque[bytes | None] = deque()   # the last groups that ended at a boundary (None: dropped)
        self._held = 0                    # their length
        self._head = b""                  # the stream's first bytes: its id, if it is too large to keep
        self.response: bytes | None = None      # the final event's response object (after close)
        self.response_id: str | None = None     # its id, also when it is oversize
        self.oversize = False

    def feed(self, chunk: bytes) -> None:
        if not self._head:
            self._head = chunk[:_HEAD_BYTES]
        if chunk.endswith(_BOUNDARIES):
            if self._parts or self._size:
                self._parts.append(chunk)
                self._push(None if self._size < 0 else b"".join(self._parts), chunk)
                self._parts, self._size = [], 0
            else:   # whole events in one read: the common case
                self._push(chunk, chunk)
        elif self._size >= 0:
            self._parts.append(chunk)
            self._size += len(chunk)
            if self._size > self._limit:
                rest = _events_begun_in(chunk)
                self._parts, self._size = ([rest], len(rest)) if rest and len(rest) <= self._limit else ([], -1)
        else:   # a dropped group goes on: the next events may begin in this read
            rest = _events_begun_in(chunk)
            if rest and len(rest) <= self._limit:
                self._parts, self._size = [rest], len(rest)

    def _push(self, group: bytes | None, last: bytes) -> None:
        if group is None or len(group) > self._limit:   # keep what began in the last read, if it fits
            rest = _events_begun_in(last)
            group = rest if rest and len(rest) <= self._limit else None
        groups = self._groups
        if len(groups) == _GROUPS:
            self._held -= len(groups.popleft() or b"")
        groups.append(group)
        self._held += len(group or b"")
        while self._held > self._limit and len(groups) > 1:
            self._held -= len(groups.popleft() or b"")

    def close(self) -> None:
        """The stream ended: find its final event (an event left without its blank line counts)."""
        if self._parts or self._size:
            self._push(None if self._size < 0 else b"".join(self._parts), self._parts[-1] if self._parts else b"")
        groups, self._groups = self._groups, deque()
        for group in reversed(groups):
            if group is None:   # dropped: the final event may have been in it
                self.oversize = True
                self.response_id = _first_id(self._head)
                return
            if self._final_in(group):
                return

    def _final_in(self, events: bytes) -> bool:
        """Look at the events from the last one back (the final event is usually the last): each
        found with one backward search, the ones before it never split or searched."""
        if b"\r" in events:
            events = events.replace(b"\r\n", b"\n")
        end = len(events)
        while end > 0:
            start = events.rfind(b"\n\n", 0, end)
            if start == end - 2:   # the blank line that ends this event
                end = start
                continue
            event = events[start + 2 if start >= 0 else 0:end]
            end = max(start, 0)
            if _WANTED.search(event) is None:
                continue
            try:
                parsed = msgspec.json.decode(event_fields(event)[1], type=_Event)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            if parsed.type in _TERMINAL_TYPES and parsed.response is not _NULL:
                self.response = bytes(parsed.response)
                self.response_id = _first_id(self.response)
                return True
        return False


def _events_begun_in(chunk: bytes) -> bytes:
    """What follows the last event boundary inside `chunk` (not one at its very end), or b""."""
    lf = chunk.rfind(b"\n\n", 0, len(chunk) - 2)
    crlf = chunk.rfind(b"\r\n\r\n", 0, len(chunk) - 4)
    cut = max(lf + 2 if lf != -1 else 0, crlf + 4 if crlf != -1 else 0)
    return chunk[cut:] if cut else b""


_GROUPS = 4
_HEAD_BYTES = 4096
_BOUNDARIES = (b"\n\n", b"\r\n\r\n")
_FIRST_ID = re.compile(rb'"id"\s*:\s*"([^"\\]{1,128})"')


def _first_id(data: bytes) -> str | None:
    """The first `id` in a response object or at the start of a stream (response.created's)."""
    found = _FIRST_ID.search(data)
    return found.group(1).decode("utf-8", "replace") if found else None


_NULL = msgspec.Raw(b"null")


class _Event(msgspec.Struct):
    type: str = ""
    response: msgspec.Raw = _NULL


class _IdOnly(msgspec.Struct):
    id: str | None = None


def _keep(gw: Gateway, key_id: int, request_body: bytes, response: bytes, too_large: bool) -> None:
    try:
        if too_large:
            _keep_stub(gw, key_id, msgspec.json.decode(response, type=_IdOnly).id, request_body)
            return
        row = stored_row(key_id, request_body, response, int(time.time()), gw.responses.retention_s)
        if row is None:
            return
        if row.size() > gw.responses.max_bytes:
            _keep_stub(gw, key_id, row.id, request_body)
        else:
            gw.responses.put(row)
    except (msgspec.DecodeError, msgspec.ValidationError, GatewayError) as exc:
        log.warning("a response could not be stored: %s", exc)


def _keep_stub(gw: Gateway, key_id: int, response_id: str | None, request_body: bytes) -> None:
    """Bind a response too large to keep to its key (the body is not kept)."""
    if _an_id(response_id) is None:
        return
    assert response_id is not None
    now = int(time.time())
    previous = _an_id(_request_fields(request_body).previous_response_id)
    gw.responses.put(StoredResponse(
        id=response_id, key_id=key_id, created_at=now, expires_at=now + gw.responses.retention_s,
        model="", status="not_stored", previous_response_id=previous, stored=False, input_items="[]",
        request="{}", output_items="[]", usage=None, response="{}"))
    log.info("response %s served but not stored: larger than responses.max_stored_mb", response_id)


class _RequestFields(msgspec.Struct):
    previous_response_id: str | None = None


def _request_fields(body: bytes) -> _RequestFields:
    try:
        return msgspec.json.decode(body, type=_RequestFields)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return _RequestFields()


def _text(value: object) -> str:
    return msgspec.json.encode(value).decode()


def stored_row(key_id: int, request_body: bytes, response: bytes, now: int, retention_s: int) -> StoredResponse | None:
    """The row that keeps `response` (a response object's JSON) and the request that asked for it;
    None when the response has no id that fits the store."""
    obj = msgspec.json.decode(response)
    request = msgspec.json.decode(request_body)
    if not isinstance(obj, dict) or not isinstance(request, dict) or _an_id(obj.get("id")) is None:
        return None
    output = obj.pop("output", None)
    previous = _an_id(request.get("previous_response_id"))   # longer: not one of ours, so no link
    if previous is not None and obj.get("previous_response_id") is None:
        obj["previous_response_id"] = previous   # the upstream saw the expanded request, without it
    obj["store"] = True   # a converted request went upstream with store false; this one is kept
    created = obj.get("created_at")
    usage = obj.get("usage")
    return StoredResponse(
        id=obj["id"], key_id=key_id,
        created_at=created if type(created) is int and 0 <= created < MAX_TIME else now,
        expires_at=now + retention_s, model=str(obj.get("model") or request.get("model") or "")[:MAX_MODEL_CHARS],
        status=str(obj.get("status") or "completed")[:MAX_STATUS_CHARS], previous_response_id=previous,
        stored=True, input_items=_text(own_input_items(request.get("input"))),
        request=_text({k: v for k, v in request.items() if k != "input"}),
        output_items=_text(output if isinstance(output, list) else []),
        usage=None if usage is None else _text(usage), response=_text(obj))


def _an_id(value: object) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS else None


# ---- reading back -------------------------------------------------------------------------------

def response_json(row: StoredResponse) -> bytes:
    """The response object as served (its output put back in place)."""
    head = b'{"output":' + row.output_items.encode()
    rest = row.response.encode()
    return head + b"}" if rest == b"{}" else head + b"," + rest[1:]


def listed_input_items(chain: list[StoredResponse]) -> list[dict[str, Any]]:
    """The input items of `chain[0]` (newest first chain) as the input_items list shows them, oldest
    first: every earlier turn's input and output, then its own input; each item with an id."""
    items: list[dict[str, Any]] = []
    last = len(chain) - 1
    for n, link in enumerate(reversed(chain)):
        for i, item in enumerate(msgspec.json.decode(link.input_items)):
            items.append(_listed(item, f"{link.id}:{i}"))
        if n < last:
            items.extend(_listed(item, f"{link.id}:out:{i}")
                         for i, item in enumerate(msgspec.json.decode(link.output_items)))
    return items


def _listed(item: object, seed: str) -> dict[str, Any]:
    """An item in the shape the API lists it: typed, content as parts, with a stable id."""
    if not isinstance(item, dict):
        return {"id": _made_id("item", seed), "type": "unknown"}
    out = dict(item)
    kind = out.setdefault("type", "message")
    if kind == "message":
        out.setdefault("status", "completed")
        if isinstance(out.get("content"), str):
            part = ({"type": "output_text", "text": out["content"], "annotations": []}
                    if out.get("role") == "assistant" else {"type": "input_text", "text": out["content"]})
            out["content"] = [part]
    if not isinstance(out.get("id"), str) or not out["id"]:
        out["id"] = _made_id(_ID_PREFIX.get(str(kind), "item"), seed)
    return out


def _made_id(prefix: str, seed: str) -> str:
    return f"{prefix}_{hashlib.sha256(seed.encode()).hexdigest()[:40]}"
