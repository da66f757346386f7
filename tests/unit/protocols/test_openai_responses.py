"""protocols/openai_responses: what the converters make of the hard inputs (Codex's tools, reasoning
items of every origin, the fast-path tap), without a server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polyrelay import ir
from polyrelay.errors import GatewayError
from polyrelay.protocols import signatures
from polyrelay.protocols.registry import PROTOCOLS

R = PROTOCOLS["openai_responses"]


def _parse(body: dict[str, Any]) -> ir.Request:
    return R.parse_request(json.dumps(body).encode())


def _events(sse: bytes) -> list[dict[str, Any]]:
    out = []
    for block in sse.split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data:"):
                out.append(json.loads(line[5:]))
    return out


def test_codex_tools_become_functions_and_their_calls_come_back_in_their_own_shape() -> None:
    req = _parse({"model": "m", "input": "go", "tools": [
        {"type": "custom", "name": "apply_patch", "format": {"type": "grammar", "syntax": "lark", "definition": "s"}},
        {"type": "tool_search", "execution": "client"},
        {"type": "namespace", "name": "mcp", "description": "d", "tools": [{"type": "function", "name": "lookup"}]},
        {"type": "web_search", "external_web_access": False},
        {"type": "tool_search", "execution": "server"}]})
    assert [t.name for t in req.tools] == ["apply_patch", "tool_search", "mcp__lookup"]
    assert req.tools[0].parameters["required"] == ["input"]   # type: ignore[index]
    fields = [loss.field for loss in req.losses]
    assert "tools[3] (web_search)" in fields and "tools[4] (tool_search)" in fields
    answer = ir.Response("x", "m", [ir.Choice(0, [
        ir.ToolCallPart("call_1", "apply_patch", '{"input": "*** Begin Patch\\n"}'),
        ir.ToolCallPart("call_2", "tool_search", '{"query": "files"}'),
        ir.ToolCallPart("call_3", "mcp__lookup", "{}")], "tool_calls")])
    items = json.loads(R.render_response(answer, "m"))["output"]
    assert items[0] | {"id": None} == {"id": None, "type": "custom_tool_call", "status": "completed",
                                       "call_id": "call_1", "name": "apply_patch", "input": "*** Begin Patch\n"}
    assert items[0]["id"].startswith("ctc_")
    assert items[1]["type"] == "tool_search_call" and items[1]["arguments"] == {"query": "files"}
    assert (items[2]["type"], items[2]["name"], items[2]["namespace"]) == ("function_call", "lookup", "mcp")


def test_custom_tool_calls_stream_as_custom_tool_call_items() -> None:
    req = _parse({"model": "m", "input": "go", "tools": [{"type": "custom", "name": "exec"}], "stream": True})
    enc = R.StreamEncoder("m", req, "sse")
    out = b"".join(enc.encode(e) for e in [
        ir.StreamStart("x", "m"), ir.ToolCallStart(0, "call_9", "exec"), ir.ToolCallDelta(0, '{"inp'),
        ir.ToolCallDelta(0, 'ut": "ls -la"}'), ir.Finish("tool_calls")]) + enc.close()
    events = _events(out)
    kinds = [e["type"] for e in events]
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.custom_tool_call_input.delta", "response.custom_tool_call_input.done",
                     "response.output_item.done", "response.completed"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    done = events[-2]["item"]
    assert (done["type"], done["input"], done["id"]) == ("custom_tool_call", "ls -la", events[2]["item"]["id"])
    assert events[-1]["response"]["output"] == [done]


@pytest.mark.parametrize("origin, redacted", [("anthropic", False), ("anthropic", True), ("gemini", False),
                                               ("openai", False)])
def test_reasoning_signatures_of_every_origin_come_back(origin: str, redacted: bool) -> None:
    sig = "rs_abc:gAAAA" if origin == "openai" else "c2lnbmF0dXJl+/="
    encrypted = signatures.to_responses_client(sig, origin, redacted)
    assert signatures.from_responses_client(encrypted) == (sig, origin, redacted)
    req = _parse({"model": "m", "input": [
        {"role": "user", "content": "hi"},
        {"type": "reasoning", "id": "rs_abc", "summary": [{"type": "summary_text", "text": "hm"}],
         "encrypted_content": encrypted},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"}]})
    thinking = req.messages[1].parts[0]
    assert isinstance(thinking, ir.ThinkingPart)
    assert (thinking.signature, thinking.signature_origin, thinking.redacted) == (sig, origin, redacted)


def test_an_openai_upstream_s_own_reasoning_goes_back_with_its_item_id() -> None:
    """Through the fast path the client got OpenAI's encrypted_content unprefixed; converted (another
    candidate) or rendered to a Responses upstream, the (id, content) pair travels together."""
    req = _parse({"model": "m", "input": [
        {"role": "user", "content": "hi"},
        {"type": "reasoning", "id": "rs_42", "summary": [], "encrypted_content": "gAAAAopaque"},
        {"role": "assistant", "content": "hello"}, {"role": "user", "content": "more"}]})
    body = json.loads(R.render_request(req, "up")[0])
    assert body["input"][1] == {"type": "reasoning", "id": "rs_42", "summary": [], "encrypted_content": "gAAAAopaque"}
    assert body["store"] is False
    # to Anthropic it is not a signature Anthropic can verify: left out
    anthropic = json.loads(PROTOCOLS["anthropic_messages"].render_request(req, "claude")[0])
    assert all(b.get("type") != "thinking" for m in anthropic["messages"] for b in m["content"]
               if isinstance(b, dict))


def test_a_gemini_signature_without_text_rides_to_the_next_call() -> None:
    req = _parse({"model": "m", "input": [
        {"role": "user", "content": "hi"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gemini:R2VtaW5pU2ln"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}]})
    call = req.messages[1].parts[0]
    assert isinstance(call, ir.ToolCallPart) and (call.signature, call.signature_origin) == ("R2VtaW5pU2ln", "gemini")
    gemini = json.loads(PROTOCOLS["gemini"].render_request(req, "gemini-3")[0])
    assert gemini["contents"][1]["parts"][0]["thoughtSignature"] == "R2VtaW5pU2ln"


def test_developer_messages_and_instructions_are_the_system_prompt() -> None:
    req = _parse({"model": "m", "instructions": "A.", "input": [
        {"type": "message", "id": "msg_1", "role": "developer", "content": [{"type": "input_text", "text": "B."}]},
        {"type": "message", "id": "msg_2", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}]})
    assert [p.text for p in req.system] == ["A.", "B."]
    assert len(req.messages) == 1


def test_forcing_a_hosted_tool_is_refused() -> None:
    with pytest.raises(GatewayError) as caught:
        _parse({"model": "m", "input": "x", "tools": [{"type": "file_search"}], "tool_choice": {"type": "file_search"}})
    assert (caught.value.status, caught.value.param) == (400, "tool_choice")


@pytest.mark.parametrize("kind", ["web_search", "web_search_preview"])
def test_forcing_web_search_is_left_to_the_target(kind: str) -> None:
    """Anthropic and Gemini channels search; the Chat renderer refuses (tests/e2e/test_web_search.py)."""
    req = _parse({"model": "m", "input": "x", "tools": [{"type": kind}], "tool_choice": {"type": kind}})
    assert req.web_search is not None and req.web_search.forced


def test_unknown_and_codex_fields_are_never_refused() -> None:
    req = _parse({"model": "m", "input": "x", "client_metadata": {"a": 1}, "prompt_cache_key": "k",
                  "text": {"verbosity": "high"}, "reasoning": {"effort": "low", "context": "all_turns"},
                  "some_future_field": {"x": 1}, "truncation": "auto", "store": False})
    fields = {loss.field for loss in req.losses}
    assert {"text.verbosity", "some_future_field", "truncation", "prompt_cache_key"} <= fields
    assert req.reasoning is not None and req.reasoning.effort == "low"


def test_render_keeps_what_responses_needs() -> None:
    req = ir.Request("m", [ir.Message("user", [ir.TextPart("hi")])], stream=True, max_tokens=5,
                     stop=["END"], reasoning=ir.Reasoning(budget_tokens=5000))
    body, losses = R.render_request(req, "up")
    b = json.loads(body)
    assert b["max_output_tokens"] == 16 and b["stream"] is True and b["include"] == ["reasoning.encrypted_content"]
    assert b["reasoning"] == {"effort": "medium", "summary": "auto"}
    assert {loss.field for loss in losses} == {"max_tokens", "stop"}


def test_fast_path_tap_renames_reads_usage_and_ends() -> None:
    tap = R.StreamTap("public", drop_usage_chunk=False)
    created = (b'event: response.created\ndata: {"type":"response.created","sequence_number":0,"response":'
               b'{"id":"resp_1","model":"gpt-5-upstream","output":[],"usage":null}}\n\n')
    delta = (b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":1,'
             b'"delta":"Hello"}\n\n')
    done = (b'event: response.completed\ndata: {"type":"response.completed","sequence_number":2,"response":'
            b'{"id":"resp_1","model":"gpt-5-upstream","usage":{"input_tokens":9,"input_tokens_details":'
            b'{"cached_tokens":4},"output_tokens":7,"output_tokens_details":{"reasoning_tokens":3}}}}\n\n')
    out = tap.feed(created[:50]) + tap.feed(created[50:] + delta) + tap.feed(done)
    assert out.count(b'"model":"public"') == 2 and b"gpt-5-upstream" not in out
    assert delta in out
    assert tap.finished and tap.done and tap.text_bytes == 5
    assert tap.usage == ir.Usage(input_tokens=9, output_tokens=7, cache_read_tokens=4, reasoning_tokens=3)


@pytest.mark.parametrize("finished", [True, False], ids=["after the end", "truncated"])
def test_fast_path_tap_holds_back_a_done_terminator_before_the_end(finished: bool) -> None:
    """OpenAI-compatible Responses servers end with Chat's `data: [DONE]`, where the openai SDK stops
    reading: before the answer's end it would hide the relay's error event, so it is held back then
    (tests/e2e/test_billing_limits.py, an unreadable Responses stream on the fast path)."""
    tap = R.StreamTap("public", drop_usage_chunk=False)
    delta = (b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":1,'
             b'"delta":"data: [DONE] is only text here"}\n\n')
    done = (b'event: response.completed\ndata: {"type":"response.completed","sequence_number":2,"response":'
            b'{"id":"resp_1","model":"m","usage":{"input_tokens":9,"output_tokens":7}}}\n\n')
    out = tap.feed(delta + (done if finished else b"") + b"data: [DONE]\n\n")
    assert tap.done and tap.finished == finished
    assert out == delta + (done.replace(b'"model":"m"', b'"model":"public"') + b"data: [DONE]\n\n" if finished else b"")


def test_peek_reads_the_limit_and_refuses_a_bad_one() -> None:
    peek = R.fastpath.peek_request(b'{"model":"m","stream":true,"max_output_tokens":100,"input":"x"}')
    assert (peek.model, peek.stream, peek.max_output, peek.include_usage) == ("m", True, 100, True)
    for bad in (b'"lots"', b"15", b"0"):   # the real API takes 16 at the least
        with pytest.raises(GatewayError) as caught:
            R.fastpath.peek_request(b'{"model":"m","max_output_tokens":' + bad + b',"input":"x"}')
        assert caught.value.param == "max_output_tokens"


def test_thinking_is_left_off_for_anthropic_when_the_tool_turn_has_no_claude_signature() -> None:
    """Codex's history from an OpenAI model (its reasoning item is OpenAI's) continued on Claude with
    reasoning on: Anthropic refuses thinking when the last tool-calling turn does not start with its
    own signed thinking block, so the request goes without thinking, reported."""
    req = _parse({"model": "m", "reasoning": {"summary": "auto"}, "input": [
        {"role": "user", "content": "hi"},
        {"type": "reasoning", "id": "rs_9", "summary": [], "encrypted_content": "gAAAAopaque"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"}]})
    body, losses = PROTOCOLS["anthropic_messages"].render_request(req, "claude-sonnet-4-5")
    assert "thinking" not in json.loads(body)
    assert [loss.field for loss in losses] == ["reasoning"]
    # a history signed by Claude keeps thinking on
    signed = _parse({"model": "m", "reasoning": {"summary": "auto"}, "input": [
        {"role": "user", "content": "hi"},
        {"type": "reasoning", "id": "rs_9", "summary": [{"type": "summary_text", "text": "hm"}],
         "encrypted_content": "anthropic:c2ln"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"}]})
    assert json.loads(PROTOCOLS["anthropic_messages"].render_request(signed, "claude-sonnet-4-5")[0])["thinking"]


def _sim_stream() -> bytes:
    from polyrelay.sim import openai_responses as sim
    from polyrelay.sim.script import Script

    body = json.dumps({"model": "gpt-5-upstream", "input": "hi", "stream": True,
                       "reasoning": {"effort": "low", "summary": "auto"},
                       "include": ["reasoning.encrypted_content"]}).encode()
    reply = sim.handle(body, Script(words=30))
    return b"".join(reply.pieces)   # type: ignore[union-attr]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 10_000), max_size=25))
def test_fast_path_tap_does_not_depend_on_where_the_bytes_are_split(cuts: list[int]) -> None:
    """The tap looks at blocks of whole events, not event by event: wherever the reads split the
    stream, it forwards the same bytes (the model renamed in every lifecycle event, nothing else
    touched) and reads the same usage."""
    stream = _sim_stream()
    points = sorted({c % len(stream) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    tap = R.StreamTap("public", drop_usage_chunk=False)
    out = b"".join(tap.feed(p) for p in pieces) + tap.close()
    assert out == stream.replace(b'"model":"gpt-5-upstream"', b'"model":"public"')
    assert out.count(b'"model":"public"') == 3   # created, in_progress, completed
    assert tap.finished and tap.usage is not None and tap.usage.reasoning_tokens > 0
    assert tap.text_bytes == sum(len(e["delta"]) for e in _events(stream) if "delta" in e)


@pytest.mark.parametrize("events", [
    [ir.ThinkingDelta(signature="c2ln", signature_origin="anthropic")],   # Claude's omitted thinking display
    [ir.ToolCallStart(0, "call_1", "f", signature="R2Vt", signature_origin="gemini"), ir.ToolCallDelta(0, "{}")],
], ids=["signature-only thinking", "gemini signature on a call"])
def test_a_reasoning_item_without_text_opens_no_summary_part(events: list[ir.StreamEvent]) -> None:
    enc = R.StreamEncoder("m", _parse({"model": "m", "input": "x"}), "sse")
    out = b"".join(enc.encode(e) for e in [ir.StreamStart("x", "m"), *events]) + enc.close()
    kinds = [e["type"] for e in _events(out)]
    assert "response.reasoning_summary_part.added" not in kinds
    reasoning = next(e["item"] for e in _events(out) if e["type"] == "response.output_item.done")
    assert reasoning["type"] == "reasoning" and reasoning["summary"] == [] and reasoning["encrypted_content"]
