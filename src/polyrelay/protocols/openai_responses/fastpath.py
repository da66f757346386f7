"""The OpenAI Responses fast path: client and upstream both speak Responses, so bytes pass through.

Only the top level of the request is decoded; only `model` (and the relay's output limit) is
rewritten. Streams are tapped event by event: the model renamed in the lifecycle events (the only
ones that name it), usage and the end read from `response.completed` / `.incomplete` / `.failed`.
"""

from __future__ import annotations

import msgspec

from polyrelay import ir
from polyrelay.errors import invalid_request
from polyrelay.protocols import limits
from polyrelay.protocols._passthrough import (
    ModelRenamer,
    RequestPeek,
    SseTap,
    decode_answer,
    decode_or_none,
    decode_top,
    field,
    model_field,
    quoted_lengths,
    quoted_lengths_all,
    rename_first,
    text_markers,
    with_field,
)
from polyrelay.protocols.openai_responses.wire import Usage, usage_to_ir


def peek_request(body: bytes) -> RequestPeek:
    top = decode_top(body)
    model = field(top, "model", str | None)
    if not model:
        raise invalid_request("'model' is required", param="model")
    max_output, _ = limits.openai_responses(limits.RawFields(top))
    # usage always comes in the terminal event: nothing to ask for
    return RequestPeek(top, model, bool(field(top, "stream", bool | None, False)), True,  # type: ignore[arg-type]
                       max_output, 1)


def upstream_body(peek: RequestPeek, upstream_model: str, force_usage: bool) -> bytes:
    top = with_field(peek.top, "model", upstream_model)
    if peek.upstream_max_output is not None:
        top = with_field(top, "max_output_tokens", peek.upstream_max_output)
    return msgspec.json.encode(top)


class _Item(msgspec.Struct):
    type: str = ""


class _UsageHolder(msgspec.Struct):
    usage: Usage | None = None
    output: list[_Item] | None = None   # read for its web_search_call items (billed per search)


class _Terminal(msgspec.Struct):
    response: _UsageHolder | None = None


def _usage(holder: _UsageHolder | None) -> ir.Usage | None:
    if holder is None or holder.usage is None:
        return None
    usage = usage_to_ir(holder.usage)
    usage.web_searches = sum(i.type == "web_search_call" for i in holder.output or ())
    return usage


def usage_of(body: bytes, whole: bool = False) -> ir.Usage | None:
    """The usage of a whole answer (top-level `usage`) or of a terminal stream event
    (`response.usage`), with its web searches counted; None when it has none."""
    if whole:
        return _usage(decode_answer(body, _UsageHolder))
    event = decode_or_none(body, _Terminal)
    return _usage(event.response) if event else None


_MODEL_FIELD = model_field(b"model")


def rename_model(payload: bytes, model_json: bytes) -> bytes:
    """The Response object's top-level `model` comes before `output` (and metadata, tools): the first."""
    return rename_first(_MODEL_FIELD, payload, b"model", model_json)


_TEXT_MARKERS = text_markers(b"delta")
_LIFECYCLE = (b'"type":"response.created"', b'"type":"response.in_progress"', b'"type":"response.queued"',
              b'"type": "response.created"', b'"type": "response.in_progress"', b'"type": "response.queued"')
_FINISHED = (b'"type":"response.completed"', b'"type":"response.incomplete"',
             b'"type": "response.completed"', b'"type": "response.incomplete"')
_FAILED = (b'"type":"response.failed"', b'"type":"error"', b'"type": "response.failed"', b'"type": "error"')


def _starts(payload: bytes, markers: tuple[bytes, ...]) -> bool:
    head = payload[:40]   # `type` is the first field of every event OpenAI sends
    return any(m in head for m in markers)


# what only lifecycle events (created, in_progress, queued, completed, incomplete, failed) and errors hold:
# inside a JSON string the quotes would be escaped, so a delta's text cannot look like them. Responses
# has no [DONE], but OpenAI-compatible servers send Chat's, and the openai SDK stops reading at it.
_ATTENTION = (b'"response":', b'"type":"error"', b'"response" :', b'"type": "error"', b"data: [DONE]",
              b"data:[DONE]")
_DELTA, _DELTA_SPACED = b'"delta":"', b'"delta": "'


class ResponsesStreamTap(SseTap):
    """Passes Responses SSE through, renaming the model and noting usage and the end. Deltas (nearly
    every event) are not looked at one by one: a block of whole events is searched for the few
    events that name the model or carry usage or an error, and only those are handled apart."""

    def __init__(self, public_model: str, drop_usage_chunk: bool = False) -> None:
        super().__init__()
        self._rename = ModelRenamer(_MODEL_FIELD, b"model", public_model)

    def _block(self, block: bytes) -> bytes:
        out: list[bytes] = []
        while block:
            cut = min((i for i in (block.find(m) for m in _ATTENTION) if i != -1), default=-1)
            if cut == -1:
                self._plain(block)
                out.append(block)
                break
            start = block.rfind(b"\n\n", 0, cut)
            start = start + 2 if start != -1 else 0
            end = block.find(b"\n\n", cut)
            end = end + 2 if end != -1 else len(block)
            self._plain(block[:start])
            out.append(block[:start])
            out.append(super()._block(block[start:end]))
            block = block[end:]
        return b"".join(out)

    def _plain(self, block: bytes) -> None:
        if block:
            self.text_bytes += quoted_lengths_all(block, _DELTA)
            if _DELTA_SPACED in block:
                self.text_bytes += quoted_lengths_all(block, _DELTA_SPACED)

    def _event(self, event: bytes) -> bytes:
        start = event.find(b"data:")
        if start == -1:
            return event   # comments, a lone event: line
        head, payload = event[:start], event[start + 5:].lstrip()
        if payload.startswith(b"[DONE]"):
            self.done = True
            # before the end it would hide the relay's error event from the SDK (which stops at [DONE])
            return event if self.finished or self.errored else b""
        if _starts(payload, _FINISHED) or _starts(payload, _FAILED):
            self.usage = usage_of(payload) or self.usage
            if _starts(payload, _FAILED):
                self.errored = True
            else:
                self.finished = True
            self.done = True
        elif not _starts(payload, _LIFECYCLE):
            self.text_bytes += quoted_lengths(payload, _TEXT_MARKERS)
            return event
        if self._rename.same:
            return event
        return head + b"data: " + self._rename(payload)
