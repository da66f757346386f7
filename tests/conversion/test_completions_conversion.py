"""Legacy completions converted for each chat-like upstream protocol, without HTTP: the completion
body -> IR -> the upstream's request (what it carries), the simulator's answer -> IR -> a
`text_completion` (whole and streamed, the stream split at any points giving the same events), and
the completion stream encoder and pass-through tap holding flat memory over a long stream."""

from __future__ import annotations

import itertools
import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_golden import SIMULATORS, UPSTREAM_MODEL
from test_stream_memory import ALLOWED_GROWTH, EVENTS, WARM

from polyrelay import ids
from polyrelay.protocols import openai_completions
from polyrelay.protocols.registry import PROTOCOLS
from polyrelay.relay.convert_path import ConvertingTap
from polyrelay.sim.script import read_script

REQUEST = {"model": "m", "prompt": ["Complete this [[sim:words=9]]"], "max_tokens": 64, "temperature": 0.3,
           "top_p": 0.9, "stop": "END", "seed": 11, "user": "u-1", "frequency_penalty": 0.1}
# where each upstream protocol puts what a completion asks for
CARRIED: dict[str, dict[str, Any]] = {
    "openai_chat": {"messages": [{"role": "user", "content": "Complete this [[sim:words=9]]"}],
                    "temperature": 0.3, "top_p": 0.9, "stop": ["END"], "seed": 11, "user": "u-1",
                    "frequency_penalty": 0.1},
    "anthropic_messages": {"messages": [{"role": "user", "content": [{"type": "text",
                                                                     "text": "Complete this [[sim:words=9]]"}]}],
                           "max_tokens": 64, "stop_sequences": ["END"], "metadata": {"user_id": "u-1"}},
    "gemini": {"contents": [{"role": "user", "parts": [{"text": "Complete this [[sim:words=9]]"}]}]},
    "openai_responses": {"input": [{"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "Complete this [[sim:words=9]]"}]}],
        "max_output_tokens": 64, "temperature": 0.3, "top_p": 0.9, "safety_identifier": "u-1"},
}
# what each upstream protocol has no field for: reported (x-polyrelay-dropped), never silent
LOST: dict[str, set[str]] = {"openai_chat": set(), "gemini": set(), "anthropic_messages": {"seed", "frequency_penalty"},
                             "openai_responses": {"stop", "seed", "frequency_penalty"}}
GEMINI_CONFIG = {"maxOutputTokens": 64, "temperature": 0.3, "topP": 0.9, "stopSequences": ["END"], "seed": 11,
                 "frequencyPenalty": 0.1}


def _simulated(upstream: str, body: bytes, stream: bool) -> Any:
    return SIMULATORS[upstream](body, stream, read_script(body, "k"))


def _request(stream: bool, **extra: Any) -> Any:
    return openai_completions.parse_request(json.dumps({**REQUEST, "stream": stream, **extra}).encode())


@pytest.mark.parametrize("upstream", list(PROTOCOLS))
def test_a_completion_becomes_the_upstreams_request(upstream: str) -> None:
    body, losses = PROTOCOLS[upstream].render_request(_request(False), UPSTREAM_MODEL)
    sent = msgspec.json.decode(body)
    for key, value in CARRIED[upstream].items():
        assert sent[key] == value, (upstream, key, sent)
    if upstream == "gemini":
        assert {k: sent["generationConfig"][k] for k in GEMINI_CONFIG} == GEMINI_CONFIG
    elif upstream == "openai_chat":
        assert (sent.get("max_completion_tokens") or sent.get("max_tokens")) == 64
    assert {loss.field for loss in losses} == LOST[upstream]


@pytest.mark.parametrize("upstream", list(PROTOCOLS))
def test_the_upstreams_answer_becomes_a_text_completion(upstream: str) -> None:
    wire = PROTOCOLS[upstream]
    up_body, _ = wire.render_request(_request(False), UPSTREAM_MODEL)
    answer = wire.parse_response(_simulated(upstream, up_body, False).body)
    body = msgspec.json.decode(openai_completions.render_response(answer, "public"))
    assert body["object"] == "text_completion" and body["model"] == "public" and body["id"].startswith("cmpl-")
    assert body["choices"] == [{"text": "the quick brown fox jumps over the lazy dog", "index": 0,
                                "logprobs": None, "finish_reason": "stop"}]
    assert body["usage"]["prompt_tokens"] > 0 and body["usage"]["completion_tokens"] > 0
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]


def _stream(upstream: str, splits: list[int] | None = None) -> tuple[bytes, Any]:
    wire = PROTOCOLS[upstream]
    req = _request(True, stream_options={"include_usage": True})
    up_body, _ = wire.render_request(req, UPSTREAM_MODEL)
    sse = b"".join(_simulated(upstream, up_body, True).pieces)
    cuts = sorted({min(max(c, 0), len(sse)) for c in splits or []})
    pieces = [sse[a:b] for a, b in zip([0, *cuts], [*cuts, len(sse)], strict=True) if b > a]
    ids.use_deterministic_ids(1000)
    tap = ConvertingTap(wire.StreamDecoder(), openai_completions.StreamEncoder("public", req, "sse"))
    return b"".join(tap.feed(p) for p in pieces) + tap.close(), tap


@pytest.mark.parametrize("upstream", list(PROTOCOLS))
def test_the_upstreams_stream_becomes_completion_chunks(upstream: str) -> None:
    out, tap = _stream(upstream)
    events = [json.loads(e[6:]) for e in out.split(b"\n\n") if e.startswith(b"data: {")]
    assert out.endswith(b"data: [DONE]\n\n") and tap.finished and tap.usage is not None
    assert all(e["object"] == "text_completion" and e["model"] == "public" for e in events)
    text = "".join(c["text"] for e in events for c in e["choices"])
    assert text == "the quick brown fox jumps over the lazy dog"
    finishes = [c["finish_reason"] for e in events for c in e["choices"] if c["finish_reason"]]
    assert finishes == ["stop"] and events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] > 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(upstream=st.sampled_from(list(PROTOCOLS)), splits=st.lists(st.integers(0, 4000), max_size=12))
def test_a_stream_split_anywhere_gives_the_same_chunks(upstream: str, splits: list[int]) -> None:
    assert _stream(upstream, splits)[0] == _stream(upstream)[0]


def _growth(feed: Any, events: Any) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        for i, event in enumerate(events):
            feed(event)
            if i == WARM:
                before = tracemalloc.get_traced_memory()[0]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return after - before


def _chunk(text: str) -> bytes:
    return b"data: " + msgspec.json.encode({"id": "cmpl-1", "object": "text_completion", "model": "up", "choices": [
        {"text": text, "index": 0, "logprobs": None, "finish_reason": None}]}) + b"\n\n"


@pytest.mark.parametrize("upstream", list(PROTOCOLS))
def test_the_completion_encoder_holds_flat_memory(upstream: str) -> None:
    wire = PROTOCOLS[upstream]
    req = _request(True)
    up_body, _ = wire.render_request(req, UPSTREAM_MODEL)
    events = [e + b"\n\n" for e in b"".join(_simulated(upstream, up_body, True).pieces).split(b"\n\n") if e.strip()]
    text_at = next(i for i, e in enumerate(events) if b"quick" in e)
    long = itertools.chain(events[:text_at], itertools.repeat(events[text_at], EVENTS), events[text_at + 1:])
    tap = ConvertingTap(wire.StreamDecoder(), openai_completions.StreamEncoder("m", req, "sse"))
    assert _growth(tap.feed, long) <= ALLOWED_GROWTH


def test_the_completion_pass_through_tap_holds_flat_memory() -> None:
    tap = openai_completions.CompletionStreamTap("public", drop_usage_chunk=True)
    assert _growth(tap.feed, itertools.repeat(_chunk("word "), EVENTS)) <= ALLOWED_GROWTH
    assert tap.text_bytes == len("word ") * EVENTS
