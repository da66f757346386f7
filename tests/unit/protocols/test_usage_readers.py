"""One usage rule per protocol: the converter, the stream decoder and the fast path read the same
usage object to the same IR counts (billing depends on it; issue 11 moved Anthropic's three copies
of the rule into `protocols/anthropic_messages/wire.py`)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from polyrelay import ir
from polyrelay.protocols import anthropic_messages

counts = st.one_of(st.none(), st.integers(min_value=0, max_value=2_000_000))
usage_objects = st.fixed_dictionaries({}, optional={
    "input_tokens": counts, "output_tokens": counts, "cache_creation_input_tokens": counts,
    "cache_read_input_tokens": counts})


def _answer(usage: dict[str, Any]) -> bytes:
    return json.dumps({"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                       "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
                       "usage": usage}).encode()


def _sse(start: dict[str, Any], delta: dict[str, Any]) -> bytes:
    events = [("message_start", {"type": "message_start", "message": {
                  "id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [],
                  "usage": start}}),
              ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": delta}),
              ("message_stop", {"type": "message_stop"})]
    return b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events)


@given(usage_objects)
def test_a_whole_answer_reads_the_same_on_both_paths(usage: dict[str, Any]) -> None:
    converted = anthropic_messages.parse_response(_answer(usage)).usage
    fast = anthropic_messages.fastpath.usage_of(_answer(usage), whole=True)
    assert fast == converted or (fast is None and not usage)


@given(usage_objects, usage_objects)
def test_a_stream_merges_the_same_on_both_paths(start: dict[str, Any], delta: dict[str, Any]) -> None:
    decoder = anthropic_messages.StreamDecoder()
    events = decoder.feed(_sse(start, delta)) + decoder.close()
    converted = [e.usage for e in events if isinstance(e, ir.UsageEvent)]
    tap = anthropic_messages.StreamTap("m")
    tap.feed(_sse(start, delta))
    tap.close()
    fast = tap.usage or tap.start_usage
    if delta:
        assert converted[-1] == fast
    expected = anthropic_messages.wire.merge_usage(
        anthropic_messages.wire.merge_usage(None, anthropic_messages.wire.usage_fields(start)),
        anthropic_messages.wire.usage_fields(delta))
    if delta:
        assert converted[-1] == expected


ints = st.integers(min_value=0, max_value=2_000_000)


@given(ints, ints, ints, ints, ints)
def test_openai_chat_answers_read_the_same_on_both_paths(prompt: int, completion: int, cached: int, written: int,
                                                         reasoning: int) -> None:
    from polyrelay.protocols import openai_chat

    body = json.dumps({"id": "c", "object": "chat.completion", "created": 0, "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                  "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
                  "completion_tokens_details": {"reasoning_tokens": reasoning}}}).encode()
    converted = openai_chat.parse_response(body).usage
    assert openai_chat.fastpath.usage_of(body, whole=True) == converted
    assert (converted.input_tokens, converted.cache_write_tokens) == (prompt, written)


@given(ints, ints, ints, ints, ints)
def test_gemini_answers_read_the_same_on_both_paths(prompt: int, candidates: int, thoughts: int, cached: int,
                                                    tool_prompt: int) -> None:
    from polyrelay.protocols import gemini

    body = json.dumps({"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]},
                                       "finishReason": "STOP", "index": 0}],
                       "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": candidates,
                                         "thoughtsTokenCount": thoughts, "cachedContentTokenCount": cached,
                                         "toolUsePromptTokenCount": tool_prompt}}).encode()
    converted = gemini.parse_response(body).usage
    assert gemini.fastpath.usage_of(body, whole=True) == converted
    assert converted.output_tokens == candidates + thoughts   # thoughts billed as output
