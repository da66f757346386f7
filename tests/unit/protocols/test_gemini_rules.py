"""Review of the Gemini converter against protocols.md: what google-genai really sends, and state that
must survive a round trip through a Gemini client."""

from __future__ import annotations

import json
import logging

import msgspec
import pytest

from polyrelay import ir
from polyrelay.errors import GatewayError
from polyrelay.protocols import gemini, openai_chat


def _body(**extra: object) -> bytes:
    return json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}], **extra}).encode()


def test_openapi_response_schema_becomes_json_schema() -> None:
    # exactly what google-genai 3.6 sends for `response_schema=<pydantic model>` (captured)
    body = _body(generationConfig={"responseMimeType": "application/json", "responseSchema": {
        "properties": {"city": {"title": "City", "type": "STRING"},
                       "temp": {"nullable": True, "title": "Temp", "type": "NUMBER"},
                       "tags": {"type": "ARRAY", "items": {"type": "STRING", "enum": ["a", "b"]}, "max_items": "3"}},
        "property_ordering": ["city", "temp", "tags"], "required": ["city"], "title": "W", "type": "OBJECT"}})
    schema = gemini.parse_request(body).response_format.schema
    assert schema == {"properties": {"city": {"title": "City", "type": "string"},
                                     "temp": {"title": "Temp", "type": ["number", "null"]},
                                     "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]},
                                              "maxItems": 3}},
                      "required": ["city"], "title": "W", "type": "object"}


def test_openapi_parameters_become_json_schema_but_json_schema_is_kept() -> None:
    body = _body(tools=[{"functionDeclarations": [
        {"name": "f", "parameters": {"type": "OBJECT", "properties": {
            "a": {"type": "STRING", "nullable": True},
            "b": {"any_of": [{"type": "INTEGER"}, {"type": "STRING"}]}}}},
        {"name": "g", "parameters_json_schema": {"type": "object", "properties": {"TYPE": {"type": "string"}}}}]}])
    req = gemini.parse_request(body)
    req.model = "gpt-4o"
    assert req.tools[0].parameters == {"type": "object", "properties": {
        "a": {"type": ["string", "null"]}, "b": {"anyOf": [{"type": "integer"}, {"type": "string"}]}}}
    assert req.tools[1].parameters == {"type": "object", "properties": {"TYPE": {"type": "string"}}}
    sent = msgspec.json.decode(openai_chat.render_request(req, "gpt-4o")[0])
    assert sent["tools"][0]["function"]["parameters"]["type"] == "object"


def test_redacted_thinking_survives_a_gemini_client_round_trip() -> None:
    resp = ir.Response(id="r", model="m", choices=[ir.Choice(0, [
        ir.ThinkingPart(signature="ENCRYPTED", signature_origin="anthropic", redacted=True),
        ir.ThinkingPart("plain", signature="SIG", signature_origin="anthropic"),
        ir.ToolCallPart("toolu_1", "f", "{}")], "tool_calls")])
    model_turn = msgspec.json.decode(gemini.render_response(resp, "m"))["candidates"][0]["content"]
    back = gemini.parse_request(json.dumps({"contents": [
        {"role": "user", "parts": [{"text": "hi"}]}, model_turn,
        {"role": "user", "parts": [{"functionResponse": {"id": "toolu_1", "name": "f", "response": {"output": "x"}}}]},
    ]}).encode())
    thinking = [p for p in back.messages[1].parts if isinstance(p, ir.ThinkingPart)]
    assert thinking == [ir.ThinkingPart(signature="ENCRYPTED", signature_origin="anthropic", redacted=True),
                        ir.ThinkingPart("plain", signature="SIG", signature_origin="anthropic")]


def test_redacted_thinking_streamed_to_a_gemini_client_comes_back_redacted() -> None:
    encoder = gemini.StreamEncoder("m", ir.Request(model="m"))
    sse = encoder.encode(ir.StreamStart("id", "m"))
    sse += encoder.encode(ir.ThinkingDelta(signature="ENCRYPTED", signature_origin="anthropic", redacted=True))
    part = msgspec.json.decode(sse.removeprefix(b"data: "))["candidates"][0]["content"]["parts"][0]
    back = gemini.parse_request(json.dumps({"contents": [
        {"role": "user", "parts": [{"text": "hi"}]}, {"role": "model", "parts": [part, {"text": "ok"}]}]}).encode())
    assert back.messages[1].parts[0] == ir.ThinkingPart(signature="ENCRYPTED", signature_origin="anthropic",
                                                        redacted=True)


def test_unknown_finish_reason_is_stop_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    body = json.dumps({"candidates": [{"content": {"role": "model", "parts": [{"text": "x"}]},
                                       "finishReason": "SOMETHING_NEW", "index": 0}]}).encode()
    with caplog.at_level(logging.WARNING, logger="polyrelay.convert"):
        assert gemini.parse_response(body).choices[0].finish_reason == "stop"
    assert "SOMETHING_NEW" in caplog.text


@pytest.mark.parametrize("body", [
    {"contents": [{"role": "user", "parts": [{"functionCall": "x"}]}]},
    {"contents": [{"role": "user", "parts": [{"inlineData": "x"}]}]},
    {"contents": [{"role": "user", "parts": [{"text": "x"}]}], "tools": [{"functionDeclarations": ["f"]}]},
    {"contents": [{"role": "user", "parts": [{"text": "x"}]}], "tools": 3},
    {"contents": [{"role": "user", "parts": [{"text": "x"}]}], "generationConfig": {"stopSequences": 5}},
    {"generateContentRequest": {"contents": [{"parts": [{"functionResponse": []}]}]}},
])
def test_malformed_count_tokens_bodies_are_a_400(body: dict[str, object]) -> None:
    # :countTokens parses outside the relay's conversion guard, so the parser itself must refuse
    with pytest.raises(GatewayError) as caught:
        gemini.parse_count_tokens_request(json.dumps(body).encode())
    assert caught.value.status == 400


def test_thinking_level_xhigh_is_kept() -> None:
    req = gemini.parse_request(_body(generationConfig={"thinkingConfig": {"thinkingLevel": "XHIGH"}}))
    assert req.reasoning.effort == "xhigh"


def test_thinking_off_is_the_minimum_budget_on_gemini_2_5_pro() -> None:
    # 2.5 Pro cannot turn thinking off: budget 0 is a 400 there (protocols.md §1.4, §2.6)
    req = ir.Request(model="m", messages=[ir.Message("user", [ir.TextPart("hi")])],
                     reasoning=ir.Reasoning(effort="none"))
    pro = msgspec.json.decode(gemini.render_request(req, "gemini-2.5-pro")[0])
    flash = msgspec.json.decode(gemini.render_request(req, "gemini-2.5-flash")[0])
    assert pro["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 128}
    assert flash["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0}
