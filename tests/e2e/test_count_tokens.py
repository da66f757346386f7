"""count_tokens is asked of the model's channel natively whatever the client's protocol: an Anthropic
client counting for a Gemini model reaches Gemini's countTokens, a Gemini client counting for a
Claude model reaches Anthropic's count_tokens; `...-thinking` names reach Anthropic without the suffix."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
from google import genai
from google.genai import types

from polyrelay.tokens import estimate_text_tokens
from servers import Server

TEXT = "hello world " * 20
SIM_COUNT = estimate_text_tokens(TEXT) + 3   # what the simulator answers for one message of TEXT


def claude(gateway: Server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key="sk-alice-0001", max_retries=0)


def gemini(gateway: Server) -> genai.Client:
    return genai.Client(api_key="sk-alice-0001", http_options=types.HttpOptions(base_url=gateway.url))


def received(sim_http: httpx.Client) -> list[dict[str, Any]]:
    return [r for r in sim_http.get("/sim/requests").json() if r["path"].endswith(("/count_tokens", ":countTokens"))]


def test_the_simulator_refuses_thinking_names_like_anthropic(sim_http: httpx.Client) -> None:
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    body = {"model": "claude-sim-sonnet-thinking", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        r = sim_http.post(path, headers=headers, json=body)
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error", r.text


def test_anthropic_client_counting_for_a_gemini_model_asks_gemini(gateway: Server, sim_http: httpx.Client) -> None:
    sim_http.post("/sim/reset")
    n = claude(gateway).messages.count_tokens(model="gemini-2.5-flash", system="be brief",
                                              messages=[{"role": "user", "content": TEXT}])
    [sent] = received(sim_http)
    assert sent["path"] == "/v1beta/models/gemini-2.5-flash:countTokens"
    assert sent["headers"]["x-goog-api-key"] == "gemini-upstream-key"
    inner = json.loads(sent["body"])["generateContentRequest"]
    assert inner["model"] == "models/gemini-2.5-flash"
    assert inner["contents"] == [{"role": "user", "parts": [{"text": TEXT}]}]
    assert inner["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert n.input_tokens == SIM_COUNT, "Gemini's totalTokens, in Anthropic's shape"


def test_gemini_client_counting_for_a_claude_model_asks_anthropic(gateway: Server, sim_http: httpx.Client) -> None:
    sim_http.post("/sim/reset")
    client = gemini(gateway)  # kept: a dropped genai Client closes its connection
    n = client.models.count_tokens(model="claude-sim-sonnet", contents=TEXT)
    [sent] = received(sim_http)
    assert sent["path"] == "/v1/messages/count_tokens"
    assert sent["headers"]["x-api-key"] == "sk-ant-upstream"
    body = json.loads(sent["body"])
    assert body["model"] == "claude-sim-sonnet" and body["messages"][0]["role"] == "user"
    assert n.total_tokens == SIM_COUNT, "Anthropic's input_tokens, in Gemini's shape"


def test_thinking_model_is_counted_on_the_base_model(gateway: Server, sim_http: httpx.Client) -> None:
    sim_http.post("/sim/reset")
    n = claude(gateway).messages.count_tokens(model="claude-sim-sonnet-thinking",
                                              messages=[{"role": "user", "content": TEXT}],
                                              extra_headers={"anthropic-beta": "context-1m-2025-08-07"})
    client = gemini(gateway)
    g = client.models.count_tokens(model="claude-sim-sonnet-thinking", contents=TEXT)
    sent = received(sim_http)
    assert [r["path"] for r in sent] == ["/v1/messages/count_tokens"] * 2
    assert [json.loads(r["body"])["model"] for r in sent] == ["claude-sim-sonnet"] * 2
    assert sent[0]["headers"].get("anthropic-beta") == "context-1m-2025-08-07"
    assert "anthropic-beta" not in sent[1]["headers"]
    assert n.input_tokens == g.total_tokens == SIM_COUNT


def test_openai_channels_are_estimated_locally(gateway: Server, sim_http: httpx.Client) -> None:
    sim_http.post("/sim/reset")
    n = claude(gateway).messages.count_tokens(model="gpt-4o-mini", messages=[{"role": "user", "content": TEXT}])
    assert n.input_tokens > 10 and received(sim_http) == []
