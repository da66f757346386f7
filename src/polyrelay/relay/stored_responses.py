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
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from polyrelay.errors import GatewayError, invalid_request
from polyrelay.protocols import event_fields
from polyrelay.relay.replies import Producer, Reply, StreamReply, Write
from polyrelay.store.keys import KeyRecord
from polyrelay.store.responses import StoredResponse

if TYPE_CHECKING:
    from polyrelay.relay.gateway import Gateway

log = logging.getLogger("polyrelay.responses")

NOT_STORED = b"x-polyrelay-not-stored"
_TERMINAL = (b'"response.completed"', b'"response.incomplete"', b'"response.failed"')
_TERMINAL_TYPES = frozenset(m.strip(b'"').decode() for m in _TERMINAL)
_CREATED = b'"response.created"'
_ID_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs",
              "custom_tool_call": "ctc", "custom_tool_call_output": "ctco"}


def previous_not_found(response_id: str) -> GatewayError:
    return GatewayError(404, "not_found", f"Previous response with id '{response_id}' not found.",
                        param="previous_response_id", code="previous_response_not_found")


def response_not_found(response_id: str) -> GatewayError:
    return GatewayError(404, "not_found", f"Response with id '{response_id}' not found.",
                        param="response_id", code="response_not_found")


# ---- expand -------------------------------------------------------------------------------------

async def expand(gw: Gateway, key: KeyRecord, body: bytes,
                 passthrough_unknown: Callable[[str], bool] | None = None) -> bytes:
    """The body with the conversation before `previous_response_id` in `input` (module docstring).
    `passthrough_unknown(model)`: whether an id this gateway never stored may be the upstream's."""
    if b'"previous_response_id"' not in body:
        return body   # the common case costs one search
    try:
        request = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return body   # the protocol's parser refuses it in its own words
    if not isinstance(request, dict) or request.get("previous_response_id") is None:
        return body
    previous = request["previous_response_id"]
    if not isinstance(previous, str) or not previous:
        raise invalid_request("'previous_response_id' must be the id of a response", "previous_response_id")
    chain = await gw.responses.chain(previous)
    model = request.get("model")
    may_pass = passthrough_unknown is not None and passthrough_unknown(model if isinstance(model, str) else "")
    if not chain:
        if may_pass:
            return body
        raise previous_not_found(previous)
    if chain[0].key_id != key.id:
        raise previous_not_found(previous)   # another key's: as if unknown, and never passed on
    if not all(link.stored for link in chain):
        if may_pass:
            return body   # the upstream that answered it may still have it
        raise invalid_request(f"Previous response with id '{previous}' was too large to be stored by this "
                              f"gateway; send its items in 'input' instead", "previous_response_id")
    items: list[Any] = []
    for link in reversed(chain):
        items += msgspec.json.decode(link.input_items)
        items += msgspec.json.decode(link.output_items)
    items += own_input_items(request.get("input"))
    request["input"] = items
    del request["previous_response_id"]
    return msgspec.json.encode(request)


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


def wants_store(body: bytes) -> bool:
    """`store` defaults to true (as OpenAI)."""
    if b'"store"' not in body:
        return True
    try:
        return msgspec.json.decode(body, type=_StoreFlag).store is not False
    except (msgspec.DecodeError, msgspec.ValidationError):
        return False


def remember(gw: Gateway, key: KeyRecord, request_body: bytes, reply: Reply | StreamReply) -> Reply | StreamReply:
    """Queue the response for the store (module docstring); the reply goes out as it came."""
    if reply.status != 200 or not wants_store(request_body):
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

        async def tee(chunk: bytes) -> None:
            await write(chunk)
            catcher.feed(chunk)

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
    """Catches the `response` of a Responses stream's final event (and the id from its first) from
    the bytes written to the client, holding only the bytes of the event under way, at most `limit`."""

    __slots__ = ("_cr", "_held", "_limit", "_size", "oversize", "response", "response_id")

    def __init__(self, limit: int) -> None:
        self._held: list[bytes] = []
        self._size = 0
        self._cr = False
        self._limit = limit
        self.response: bytes | None = None      # the final event's response object
        self.response_id: str | None = None     # from response.created
        self.oversize = False                   # an event outgrew the limit: nothing will be stored

    def feed(self, chunk: bytes) -> None:
        if self.response is not None or self.oversize:
            return
        if self._cr:
            chunk, self._cr = b"\r" + chunk, False
        if b"\r" in chunk:   # CRLF lines; a CR at the end may open a CRLF the next read closes
            if chunk[-1] == 0x0D:
                self._cr, chunk = True, chunk[:-1]
            chunk = chunk.replace(b"\r\n", b"\n")
        end = chunk.rfind(b"\n\n")
        if end != -1:
            cut = end + 2
        elif chunk[:1] == b"\n" and self._held and self._held[-1][-1:] == b"\n":
            cut = 1   # the blank line spans two reads
        else:
            self._hold(chunk)
            return
        done = chunk[:cut] if not self._held else b"".join([*self._held, chunk[:cut]])
        self._held, self._size = [], 0
        self._hold(chunk[cut:])
        self._look(done)

    def close(self) -> None:
        """The stream ended: an event left without its blank line still counts."""
        if self.response is None and not self.oversize and self._held:
            done = b"".join(self._held)
            self._held, self._size = [], 0
            self._look(done)

    def _look(self, done: bytes) -> None:
        if (self.response_id is None and _CREATED in done) or any(marker in done for marker in _TERMINAL):
            self._read(done)

    def _hold(self, data: bytes) -> None:
        if data:
            self._held.append(data)
            self._size += len(data)
            if self._size > self._limit:
                self._held, self._size, self.oversize = [], 0, True

    def _read(self, events: bytes) -> None:
        for event in events.split(b"\n\n"):
            if _CREATED not in event and not any(marker in event for marker in _TERMINAL):
                continue
            try:
                parsed = msgspec.json.decode(event_fields(event)[1], type=_Event)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            if parsed.type == "response.created" and parsed.response is not _NULL:
                self.response_id = msgspec.json.decode(parsed.response, type=_IdOnly).id
            elif parsed.type in _TERMINAL_TYPES and parsed.response is not _NULL:
                if len(event) > self._limit:
                    self.oversize = True
                else:
                    self.response = bytes(parsed.response)
                return


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
    if not response_id:
        return
    now = int(time.time())
    previous = _request_fields(request_body).previous_response_id
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
    """The row that keeps `response` (a response object's JSON) and the request that asked for it."""
    obj = msgspec.json.decode(response)
    request = msgspec.json.decode(request_body)
    if not isinstance(obj, dict) or not isinstance(request, dict) or not isinstance(obj.get("id"), str):
        return None
    output = obj.pop("output", None) or []
    previous = request.get("previous_response_id")
    previous = previous if isinstance(previous, str) else None
    if previous is not None and obj.get("previous_response_id") is None:
        obj["previous_response_id"] = previous   # the upstream saw the expanded request, without it
    created = obj.get("created_at")
    usage = obj.get("usage")
    return StoredResponse(
        id=obj["id"], key_id=key_id, created_at=created if isinstance(created, int) else now,
        expires_at=now + retention_s, model=str(obj.get("model") or request.get("model") or ""),
        status=str(obj.get("status") or "completed"), previous_response_id=previous, stored=True,
        input_items=_text(own_input_items(request.get("input"))),
        request=_text({k: v for k, v in request.items() if k != "input"}),
        output_items=_text(output), usage=None if usage is None else _text(usage), response=_text(obj))


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
