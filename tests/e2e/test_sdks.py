"""Every client SDK x every channel kind, through the gateway, against the simulator's strict modes.

The simulator validates each upstream request as strictly as the real API, so a conversion that
drops or mangles something fails here.
"""

from __future__ import annotations

import itertools
import json
import time
from decimal import ROUND_HALF_UP, Decimal

import msgspec
import pytest
from test_chat_relay import last_upstream_request, spent_cents

from polyrelay.tokens import estimate_text_tokens
from sdk_clients import CLIENTS, PROTOCOL_ROWS
from servers import Admin, Server

# a model served over a channel of each protocol, by surface name
UPSTREAMS = {row.surface: row.model for row in PROTOCOL_ROWS.values()}
# input, output, cached input, cache write (input when not set): as in conftest
PRICES = {"gpt-4o-mini": ("0.15", "0.60", "0.075", "0.15"), "claude-sim-sonnet": ("3.0", "15.0", "0.30", "3.75"),
          "gemini-2.5-flash": ("0.30", "2.50", "0.03", "0.30"), "gpt-resp-mini": ("1.25", "10.0", "0.125", "1.25")}
PAIRS = list(itertools.product(CLIENTS, UPSTREAMS))
# deepseek-sim-reasoner is an OpenAI channel whose upstream answers with `reasoning_content` (DeepSeek-style);
# gpt-resp-mini a Responses channel, whose reasoning items come back only with their encrypted_content
THINKING_MODELS = ["claude-sim-sonnet-thinking", "gemini-3-pro-preview", "deepseek-sim-reasoner", "gpt-resp-mini"]


def micros(model: str, input_tokens: int, output_tokens: int, cached: int, cache_write: int = 0) -> int:
    """`input_tokens` is the whole prompt, cache reads and writes included."""
    inp, out, cached_price, write_price = (Decimal(p) for p in PRICES[model])
    cost = ((input_tokens - cached - cache_write) * inp + cached * cached_price + cache_write * write_price
            + output_tokens * out)
    return int(cost.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("client_name, upstream", PAIRS)
def test_plain_reply_is_carried_and_billed_exactly(gateway: Server, fresh_key, client_name, upstream, stream) -> None:
    _, key = fresh_key()
    client = CLIENTS[client_name](gateway.url, key)
    model = UPSTREAMS[upstream]
    answer = client.ask(model, "Say something [[sim:words=6,cached=3]]", stream)
    assert answer.text == "the quick brown fox jumps over"
    assert answer.finish == "stop" and not answer.tool_calls
    assert answer.input_tokens > 0 and answer.output_tokens > 0
    assert answer.cached_tokens == 3, "cached prompt tokens must survive the conversion"
    assert spent_cents(gateway, key) * 10_000 == pytest.approx(
        micros(model, answer.input_tokens, answer.output_tokens, answer.cached_tokens), abs=1e-6)


# What each simulator counts for a one-message prompt of `text` (see src/polyrelay/sim/): the
# conversion must hand every client the upstream's whole prompt count. The Responses simulator counts
# the input as sent (a string, or its item list as compact JSON), so its count is read off the request.
def _upstream_prompt_tokens(upstream: str, text: str, sent: dict) -> int:
    if upstream == "responses":
        items = sent["input"]
        return estimate_text_tokens(items if isinstance(items, str) else msgspec.json.encode(items).decode()) + 3 + (
            estimate_text_tokens(sent.get("instructions") or ""))
    return estimate_text_tokens(text) + {"openai": 4 + 3, "anthropic": 3, "gemini": 3}[upstream]


def _log_row(admin: Admin, model: str, since_ms: int) -> dict:
    """The gateway's log of the last request for `model` (tests run one at a time)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        row = next((r for r in admin.logs() if r["model"] == model and r["status"] == 200
                    and r["created_at"] >= since_ms), None)
        if row is not None:
            return row
        time.sleep(0.05)
    raise AssertionError(f"no request log for {model}")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("client_name, upstream", PAIRS)
def test_cache_and_reasoning_tokens_are_carried_and_billed_exactly(gateway: Server, admin: Admin, sim_http, fresh_key,
                                                                   client_name, upstream, stream) -> None:
    """Cache reads, cache writes (Anthropic upstream only: no other protocol reports them) and
    reasoning tokens, as each upstream reports them: OpenAI counts reasoning inside completion_tokens,
    Anthropic inside output_tokens, Gemini apart in thoughtsTokenCount, Responses inside output_tokens.
    All of it is output and billed."""
    _, key = fresh_key()
    client = CLIENTS[client_name](gateway.url, key)
    model = UPSTREAMS[upstream]
    since_ms = int(time.time() * 1000)
    cache_write = 4 if upstream == "anthropic" else 0
    prompt = f"Say something [[sim:words=6,cached=3,reasoning=5,cache_write={cache_write}]]"
    answer = client.ask(model, prompt, stream)
    assert answer.text == "the quick brown fox jumps over" and answer.finish == "stop"

    prompt_tokens = _upstream_prompt_tokens(upstream, prompt, last_upstream_request(sim_http))
    output_tokens = estimate_text_tokens(answer.text) + 5
    assert answer.input_tokens == prompt_tokens, "the whole prompt, cache reads and writes included"
    assert answer.output_tokens == output_tokens, "reasoning tokens are output tokens"
    assert answer.cached_tokens == 3
    if client_name != "gemini":  # Gemini's usage has no field for cache writes
        assert answer.cache_write_tokens == cache_write
    if client_name != "anthropic":  # Anthropic's usage does not break reasoning out
        assert answer.reasoning_tokens == (0 if upstream == "anthropic" else 5)

    row = _log_row(admin, model, since_ms)
    assert (row["prompt_tokens"], row["completion_tokens"], row["cached_tokens"], row["cache_write_tokens"]) == (
        prompt_tokens, output_tokens, 3, cache_write)
    expected = micros(model, prompt_tokens, output_tokens, 3, cache_write)
    assert row["cost_micros"] == expected
    assert spent_cents(gateway, key) * 10_000 == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("client_name, upstream", PAIRS)
def test_tool_round_trip(gateway: Server, client_name, upstream, stream) -> None:
    client = CLIENTS[client_name](gateway.url, "sk-alice-0001")
    first, second = client.tool_round_trip(UPSTREAMS[upstream], stream)
    assert first.finish == "tool_calls"
    assert [name for name, _ in first.tool_calls] == ["get_weather"]
    assert isinstance(first.tool_calls[0][1].get("city"), str)
    assert "sunny, 21C" in second.text and second.finish == "stop"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("client_name, model", list(itertools.product(CLIENTS, THINKING_MODELS)))
def test_thinking_round_trip_carries_signatures_back(gateway: Server, sim_http, client_name, model, stream) -> None:
    """The simulator refuses the second turn unless the signed thinking / thought signature of the
    first comes back intact, as Claude and Gemini 3 do. An OpenAI-compatible channel has no signatures:
    its `reasoning_content` must reach every client and the second turn must still succeed."""
    client = CLIENTS[client_name](gateway.url, "sk-alice-0001")
    first, second = client.thinking_round_trip(model, stream)
    assert first.tool_calls and first.finish == "tool_calls"
    assert first.thinking, "thinking text must reach the client"
    assert "sunny, 21C" in second.text
    if model == "deepseek-sim-reasoner":  # OpenAI-compatible reasoning models want their reasoning back
        sent = last_upstream_request(sim_http)
        assert sent.get("reasoning_effort") not in (None, "none")
        replayed = next(m for m in sent["messages"] if m["role"] == "assistant")
        assert replayed.get("reasoning_content") == first.thinking


@pytest.mark.parametrize("client_name, upstream", PAIRS)
def test_image_input(gateway: Server, client_name, upstream) -> None:
    answer = CLIENTS[client_name](gateway.url, "sk-alice-0001").image(UPSTREAMS[upstream])
    assert answer.text and answer.finish == "stop"


@pytest.mark.parametrize("client_name, upstream", PAIRS)
def test_structured_output_is_valid_json_for_the_schema(gateway: Server, client_name, upstream) -> None:
    answer = CLIENTS[client_name](gateway.url, "sk-alice-0001").structured(UPSTREAMS[upstream])
    assert isinstance(json.loads(answer.text)["city"], str)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("upstream", [surface for surface in UPSTREAMS if surface != "gemini"])
def test_gemini_tool_names_with_dots_survive_stricter_upstreams(gateway: Server, upstream: str, stream: bool) -> None:
    from google.genai import types

    client = CLIENTS["gemini"](gateway.url, "sk-alice-0001")
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[types.FunctionDeclaration(
            name="weather.get:v1", description="weather", parameters_json_schema={"type": "object", "properties": {
                "city": {"type": "string"}}})])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    answer = client._create(UPSTREAMS[upstream], "Weather in Paris?", stream, config)
    assert [name for name, _ in answer.tool_calls] == ["weather.get:v1"]
