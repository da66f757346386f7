"""OpenAI chat through the gateway with the official openai SDK, against the simulator."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal

import httpx
import openai
import pytest

from servers import Admin, Server

PRICES = {  # USD per 1M tokens, as in the test config
    "gpt-4o-mini": (Decimal("0.15"), Decimal("0.60"), Decimal("0.075")),
    "gpt-4o": (Decimal("2.50"), Decimal("10.00"), Decimal("1.25")),
    "race-model": (Decimal("3.0"), Decimal("15.0"), Decimal("3.0")),
}


def expected_micros(model: str, usage) -> int:  # type: ignore[no-untyped-def]
    """Cost in micro-dollars, computed independently of the gateway's code."""
    inp, out, cached_price = PRICES[model]
    cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
    usd = ((usage.prompt_tokens - cached) * inp + cached * cached_price + usage.completion_tokens * out) / 10**6
    return int((usd * 10**6).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def spent_cents(gateway: Server, key: str) -> float:
    r = httpx.get(gateway.url + "/v1/dashboard/billing/usage",
                  params={"start_date": "2020-01-01", "end_date": "2099-12-31"},
                  headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return r.json()["total_usage"]


def last_upstream_request(sim_http: httpx.Client) -> dict:
    return json.loads(sim_http.get("/sim/requests").json()[-1]["body"])


def sdk(gateway: Server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


def test_non_stream_answer_comes_back_with_the_model_the_client_asked_for(client, sim_http) -> None:
    reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert reply.model == "gpt-4o"
    assert reply.choices[0].message.content.startswith("the quick brown fox")
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    assert last_upstream_request(sim_http)["model"] == "gpt-4o-2024-11-20"


def test_stream_passes_chunks_and_hides_the_usage_chunk_it_asked_for(client, sim_http) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "Hi [[sim:words=5]]"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "the quick brown fox jumps"
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks), "the usage-only chunk must not reach a client that did not ask"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert {c.model for c in chunks} == {"gpt-4o-mini"}
    assert last_upstream_request(sim_http)["stream_options"] == {"include_usage": True}


def test_stream_with_include_usage_gets_exactly_one_usage_chunk(client) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Hi [[sim:words=3]]"}])
    chunks = list(stream)
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1 and with_usage[0].choices == []
    assert {c.model for c in chunks} == {"gpt-4o"}


def test_tool_calls_round_trip_stream_and_not(client) -> None:
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools)
    call = reply.choices[0].message.tool_calls[0]
    assert reply.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)

    with client.chat.completions.stream(model="gpt-4o-mini", messages=messages, tools=tools) as stream:
        final = stream.get_final_completion()
    streamed_call = final.choices[0].message.tool_calls[0]
    assert streamed_call.function.name == "get_weather"
    assert json.loads(streamed_call.function.arguments) == json.loads(call.function.arguments)

    messages += [reply.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"}]
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools)
    assert "sunny, 21C" in answer.choices[0].message.content


def test_models_lists_exactly_what_the_key_may_use(gateway) -> None:
    everything = {m.id for m in sdk(gateway, "sk-alice-0001").models.list()}
    assert {"gpt-4o", "gpt-4o-mini", "failover-model"} <= everything
    assert "free-model" not in everything, "unpriced, so refused: not listed"
    restricted = sdk(gateway, "sk-restricted-0001")
    assert [m.id for m in restricted.models.list()] == ["gpt-4o-mini"]
    assert restricted.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    with pytest.raises(openai.NotFoundError):
        restricted.models.retrieve("gpt-4o")


@pytest.mark.parametrize("key", [None, "sk-unknown-key", "sk-disabled-0001"])
def test_bad_keys_get_401_in_openai_shape(gateway, key) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    r = httpx.post(gateway.url + "/v1/chat/completions", headers=headers,
                   json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 401
    error = r.json()["error"]
    assert error["type"] and error["message"] and error["code"] == "invalid_api_key"
    if key:
        with pytest.raises(openai.AuthenticationError):
            sdk(gateway, key).models.list()


def test_model_the_key_may_not_use_is_refused_by_name(gateway) -> None:
    with pytest.raises(openai.PermissionDeniedError, match="gpt-4o"):
        sdk(gateway, "sk-restricted-0001").chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}])


def test_model_no_channel_serves_is_404_naming_it(client) -> None:
    with pytest.raises(openai.NotFoundError, match="no-such-model"):
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"messages": []}', b'{"model": 5, "messages": []}',
                                  b'{"model": "gpt-4o-mini"}', b'{"model": "gpt-4o-mini", "messages": [], "n": 0}',
                                  b'{"model": "gpt-4o-mini", "messages": [], "stream": "yes"}'])
def test_malformed_bodies_get_400_not_500(gateway, body) -> None:
    r = httpx.post(gateway.url + "/v1/chat/completions", content=body,
                   headers={"Authorization": "Bearer sk-alice-0001", "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_upstream_4xx_passes_to_the_client_unbilled(gateway, fresh_key) -> None:
    _, key = fresh_key()
    with pytest.raises(openai.BadRequestError, match="messages"):
        sdk(gateway, key).chat.completions.create(model="gpt-4o-mini", messages=[])
    assert spent_cents(gateway, key) == 0


def test_failover_skips_503_429_unreachable_and_refused_channels(db_gateway, db_admin: Admin, db_fresh_key) -> None:
    gateway, admin, fresh_key = db_gateway, db_admin, db_fresh_key   # on SQLite and on Postgres
    _name, key = fresh_key()
    reply = sdk(gateway, key).chat.completions.create(
        model="failover-model", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content
    row = next(r for r in admin.logs() if r["key_id"] is not None and r["model"] == "failover-model"
               and r["status"] == 200)
    assert row["channel"] == "primary" and row["attempts"] >= 2


def test_every_candidate_failing_gives_502_and_no_charge(gateway, fresh_key) -> None:
    _, key = fresh_key()
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(gateway, key).chat.completions.create(model="doomed-model", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code in (502, 503, 504)
    assert caught.value.body["type"]  # OpenAI error shape: {"error": {...}} -> body is the inner object
    assert spent_cents(gateway, key) == 0


def test_upstream_credentials_never_leak_to_the_client(gateway) -> None:
    r = httpx.post(gateway.url + "/v1/chat/completions", headers={"Authorization": "Bearer sk-alice-0001"},
                   json={"model": "leaky-model", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 502
    assert "secret" not in r.text and "sim-status" not in r.text


@pytest.mark.parametrize("stream", [False, True])
def test_billing_is_exact_to_the_micro_dollar(db_gateway, db_fresh_key, stream) -> None:
    gateway, fresh_key = db_gateway, db_fresh_key   # on SQLite and on Postgres
    _, key = fresh_key()
    client = sdk(gateway, key)
    total = 0
    for model, text in [("gpt-4o-mini", "Hello there [[sim:words=40,cached=3]]"), ("gpt-4o", "Hi [[sim:words=7]]")]:
        messages = [{"role": "user", "content": text}]
        if stream:
            chunks = list(client.chat.completions.create(model=model, messages=messages, stream=True,
                                                         stream_options={"include_usage": True}))
            usage = next(c.usage for c in chunks if c.usage)
        else:
            usage = client.chat.completions.create(model=model, messages=messages).usage
        total += expected_micros(model, usage)
    assert spent_cents(gateway, key) == pytest.approx(total / 10_000, abs=1e-9)


def test_stream_billing_uses_upstream_usage_even_when_client_did_not_ask(gateway, fresh_key, admin: Admin) -> None:
    _name, key = fresh_key()
    client = sdk(gateway, key)
    list(client.chat.completions.create(model="gpt-4o", stream=True,
                                        messages=[{"role": "user", "content": "Hi [[sim:words=9]]"}]))
    usage = client.chat.completions.create(model="gpt-4o",
                                           messages=[{"role": "user", "content": "Hi [[sim:words=9]]"}]).usage
    assert spent_cents(gateway, key) == pytest.approx(2 * expected_micros("gpt-4o", usage) / 10_000, abs=1e-9)


def test_billing_endpoints_report_quota_and_spend(db_gateway, db_fresh_key) -> None:
    gateway, fresh_key = db_gateway, db_fresh_key   # on SQLite and on Postgres
    _, key = fresh_key(quota=2.5)
    headers = {"Authorization": f"Bearer {key}"}
    sub = httpx.get(gateway.url + "/v1/dashboard/billing/subscription", headers=headers).json()
    assert sub["hard_limit_usd"] == 2.5 and sub["object"] == "billing_subscription"
    usage = sdk(gateway, key).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}]).usage
    assert spent_cents(gateway, key) == pytest.approx(expected_micros("gpt-4o", usage) / 10_000)
    unlimited = httpx.get(gateway.url + "/dashboard/billing/subscription",
                          headers={"Authorization": "Bearer sk-alice-0001"}).json()
    assert unlimited["hard_limit_usd"] == 100_000_000
    bad = httpx.get(gateway.url + "/v1/dashboard/billing/usage", params={"start_date": "yesterday"},
                    headers=headers)
    assert bad.status_code == 400


def test_unknown_route_is_404_in_openai_shape(gateway) -> None:
    r = httpx.get(gateway.url + "/v1/nothing-here", headers={"Authorization": "Bearer sk-alice-0001"})
    assert r.status_code == 404 and "error" in r.json()


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_timeout_is_504_and_not_billed(gateway, fresh_key, stream) -> None:
    _, key = fresh_key()
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(gateway, key).chat.completions.create(model="slow-model", stream=stream,
                                                  messages=[{"role": "user", "content": "x [[sim:hang_ms=1500]]"}])
    assert caught.value.status_code == 504
    assert spent_cents(gateway, key) == 0
