"""Units of the OpenAI Chat fast path (same protocol on both sides): the stream tap and the upstream
body, on real chunks cut at every place."""

from __future__ import annotations

import json

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from polyrelay import ir
from polyrelay.protocols._passthrough import SseTap
from polyrelay.protocols.openai_chat.fastpath import ChatStreamTap, peek_request, upstream_body


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None, choices: bool = True) -> bytes:
    body = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "upstream-name",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else [],
            "usage": usage}
    return b"data: " + msgspec.json.encode(body) + b"\n\n"


STREAM = (_chunk({"role": "assistant", "content": ""}) + _chunk({"content": "Hél"}) + _chunk({"content": "lo \"x\""})
          + b": keep-alive comment\n\n" + _chunk({"content": " more"}) + _chunk({"content": " text"})
          + _chunk({}, "stop")
          + _chunk({}, usage={"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10,
                              "prompt_tokens_details": {"cached_tokens": 2}}, choices=False)
          + b"data: [DONE]\n\n")


class EventByEventTap(ChatStreamTap):
    """The reference: no block shortcut, every event looked at on its own."""

    def _block(self, block: bytes) -> bytes:
        return SseTap._block(self, block)


def _run_tap(pieces: list[bytes], drop_usage: bool, tap_type: type = ChatStreamTap) -> tuple[bytes, ChatStreamTap]:
    tap = tap_type("public-name", drop_usage_chunk=drop_usage)
    out = b"".join(tap.feed(p) for p in pieces) + tap.close()
    return out, tap


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12), st.booleans())
def test_tap_output_does_not_depend_on_where_the_upstream_bytes_are_split(cuts: list[int], drop: bool) -> None:
    points = sorted(set(cuts))
    pieces = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    whole, whole_tap = _run_tap([STREAM], drop, EventByEventTap)
    split, split_tap = _run_tap(pieces, drop)
    assert split == whole
    assert split_tap.text_bytes == whole_tap.text_bytes
    assert split_tap.usage == whole_tap.usage == ir.Usage(input_tokens=7, output_tokens=3, cache_read_tokens=2)
    assert split_tap.done and split_tap.finished


SPACED = b"".join(  # the same stream from an upstream that prints `"key": "value"` (json.dumps defaults)
    b"data: " + json.dumps(json.loads(e[6:]), ensure_ascii=False).encode() + b"\n\n"
    if e.startswith(b"data: {") else e + b"\n\n"
    for e in STREAM.split(b"\n\n") if e)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(SPACED)), max_size=12))
def test_text_of_a_stream_printed_with_spaces_is_counted_whatever_the_split(cuts: list[int]) -> None:
    # blocks may begin with the comment event or any data event: each is judged by its first data event
    points = sorted(set(cuts))
    pieces = [SPACED[a:b] for a, b in zip([0, *points], [*points, len(SPACED)], strict=True)]
    _, compact = _run_tap([STREAM], False)
    _, reference = _run_tap([SPACED], False, EventByEventTap)
    _, split = _run_tap(pieces, False)
    assert split.text_bytes == reference.text_bytes == compact.text_bytes > 0


def test_tap_renames_the_model_and_drops_only_the_usage_chunk_it_was_told_to() -> None:
    out, tap = _run_tap([STREAM], drop_usage=True)
    events = [e for e in out.split(b"\n\n") if e]
    assert len(events) == 8 and events[-1] == b"data: [DONE]"
    assert all(b'"model":"public-name"' in e for e in events[:-1] if e.startswith(b"data:"))
    assert tap.text_bytes > 0
    kept, _ = _run_tap([STREAM], drop_usage=False)
    assert len([e for e in kept.split(b"\n\n") if e]) == 9


def test_upstream_body_only_renames_the_model_and_asks_for_usage() -> None:
    body = b'{"metadata":{"model":"keep-me"},"model":"pub","stream":true,"messages":[{"role":"user","content":"x"}]}'
    peek = peek_request(body)
    out = msgspec.json.decode(upstream_body(peek, "up-model", force_usage=True))
    assert out == {"metadata": {"model": "keep-me"}, "model": "up-model", "stream": True,
                   "messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": True}}
