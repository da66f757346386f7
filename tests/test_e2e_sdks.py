"""Every client SDK x every channel kind, through the gateway, against the simulator's strict modes.

The simulator validates each upstream request as strictly as the real API, so a conversion that
drops or mangles something fails here.
"""

from __future__ import annotations

import itertools
import json
from decimal import ROUND_HALF_UP, Decimal

import pytest

from sdk_clients import CLIENTS
from servers import Server
from test_chat_relay import spent_cents

UPSTREAMS = {"openai": "gpt-4o-mini", "anthropic": "claude-sim-sonnet", "gemini": "gemini-2.5-flash"}
PRICES = {"gpt-4o-mini": ("0.15", "0.60", "0.075"), "claude-sim-sonnet": ("3.0", "15.0", "0.30"),
          "gemini-2.5-flash": ("0.30", "2.50", "0.03")}  # input, output, cached input: as in conftest
PAIRS = list(itertools.product(CLIENTS, UPSTREAMS))
THINKING_MODELS = ["claude-sim-sonnet-thinking", "gemini-3-pro-preview"]


def micros(model: str, input_tokens: int, output_tokens: int, cached: int) -> int:
    inp, out, cached_price = (Decimal(p) for p in PRICES[model])
    cost = (input_tokens - cached) * inp + cached * cached_price + output_tokens * out
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
def test_thinking_round_trip_carries_signatures_back(gateway: Server, client_name, model, stream) -> None:
    """The simulator refuses the second turn unless the signed thinking / thought signature of the
    first comes back intact, as Claude and Gemini 3 do."""
    client = CLIENTS[client_name](gateway.url, "sk-alice-0001")
    first, second = client.thinking_round_trip(model, stream)
    assert first.tool_calls and first.finish == "tool_calls"
    assert first.thinking, "thinking text must reach the client"
    assert "sunny, 21C" in second.text


@pytest.mark.parametrize("client_name, upstream", PAIRS)
def test_image_input(gateway: Server, client_name, upstream) -> None:
    answer = CLIENTS[client_name](gateway.url, "sk-alice-0001").image(UPSTREAMS[upstream])
    assert answer.text and answer.finish == "stop"


@pytest.mark.parametrize("client_name, upstream", PAIRS)
def test_structured_output_is_valid_json_for_the_schema(gateway: Server, client_name, upstream) -> None:
    answer = CLIENTS[client_name](gateway.url, "sk-alice-0001").structured(UPSTREAMS[upstream])
    assert isinstance(json.loads(answer.text)["city"], str)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("upstream", ["openai", "anthropic"])
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
