"""Anthropic rendering rules that the pair tests do not reach."""

from __future__ import annotations

import json

from polyrelay.protocols import anthropic_messages, openai_chat


def _render(body: dict, model: str) -> dict:
    return json.loads(anthropic_messages.render_request(openai_chat.parse_request(json.dumps(body).encode()), model)[0])


def test_sampling_parameters_are_dropped_for_models_that_refuse_them() -> None:
    body = {"model": "m", "temperature": 0.3, "top_p": 0.9, "messages": [{"role": "user", "content": "x"}]}
    assert "temperature" not in _render(body, "claude-opus-4-7") and "top_p" not in _render(body, "claude-sonnet-5")
    kept = _render(body, "claude-sonnet-4-20250514")   # 4.5 refuses both together: test_dropped_fields.py
    assert kept["temperature"] == 0.3 and kept["top_p"] == 0.9


def test_temperature_is_clamped_and_stop_is_always_a_list() -> None:
    out = _render({"model": "m", "temperature": 1.6, "stop": "END", "messages": [{"role": "user", "content": "x"}]},
                  "claude-haiku-4-5")
    assert out["temperature"] == 1.0 and out["stop_sequences"] == ["END"]


def test_tool_ids_are_made_safe_the_same_way_on_call_and_result() -> None:
    body = {"model": "m", "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "functions.Bash:0", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "functions.Bash:0", "content": "ok"}]}
    out = _render(body, "claude-haiku-4-5")
    call_id = out["messages"][1]["content"][0]["id"]
    assert call_id == out["messages"][2]["content"][0]["tool_use_id"] == "functions_Bash_0"


def test_user_text_after_tool_results_moves_behind_them_and_empty_text_is_dropped() -> None:
    body = {"model": "m", "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "user", "content": "before the result?"},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"}]}
    out = _render(body, "claude-haiku-4-5")
    assert [b["type"] for b in out["messages"][1]["content"]] == ["tool_use"]
    assert [b["type"] for b in out["messages"][2]["content"]] == ["tool_result", "text"]
