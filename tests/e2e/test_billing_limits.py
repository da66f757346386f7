"""Money rules at the edge of the request: output limits read once and validated, the reservation
sent upstream as the cap, small balances, count_tokens, unreadable upstream answers and unpriced
models (issues 9 and 10). Everything goes through the real gateway and simulator over HTTP."""

from __future__ import annotations

import json
import re
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdk_clients import PROTOCOL_ROWS
from servers import Admin, Server, start_gateway

ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01"}
PRICE = {  # USD per 1M tokens (input, output, dearest input rate), as in tests/conftest.py
    "gpt-4o": (Decimal("2.50"), Decimal("10.00")),
    "gpt-4o-mini": (Decimal("0.15"), Decimal("0.60")),
    "claude-sim-sonnet": (Decimal("3.0"), Decimal("15.0")),
    "gemini-2.5-flash": (Decimal("0.30"), Decimal("2.50")),
    "gpt-resp-mini": (Decimal("1.25"), Decimal("10.0")),
}


def call(gateway: Server, surface: str, model: str, body: dict[str, Any], key: str,
         stream: bool = False) -> httpx.Response:
    """One request on `surface` ("openai", "anthropic", "gemini", "responses") with the raw HTTP the SDKs send."""
    if surface in ("openai", "responses"):
        path = "/v1/chat/completions" if surface == "openai" else "/v1/responses"
        return httpx.post(f"{gateway.url}{path}", json={"model": model, **body, **(
            {"stream": True} if stream else {})}, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    if surface == "anthropic":
        return httpx.post(f"{gateway.url}/v1/messages", json={"model": model, **body, **(
            {"stream": True} if stream else {})}, headers={"x-api-key": key, **ANTHROPIC_HEADERS}, timeout=60)
    if surface != "gemini":
        raise LookupError(f"no request shape for the {surface!r} surface")
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return httpx.post(f"{gateway.url}/v1beta/models/{model}:{method}", json=body,
                      headers={"x-goog-api-key": key}, timeout=60)


def prompt(surface: str, text: str, **limits: Any) -> dict[str, Any]:
    """A one-message request body in `surface`'s shape, with `limits` where that protocol puts them."""
    if surface == "gemini":
        body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
        if limits:
            body["generationConfig"] = limits
        return body
    if surface == "responses":
        return {"input": [{"role": "user", "content": text}], **limits}
    return {"messages": [{"role": "user", "content": text}], **limits}


def error_of(surface: str, r: httpx.Response) -> str:
    """The error message, checking the body has the surface's own error shape."""
    body = r.json()
    if surface == "anthropic":
        assert body["type"] == "error" and "type" in body["error"], body
    elif surface == "gemini":
        assert body["error"]["code"] == r.status_code and body["error"]["status"], body
    else:
        assert "type" in body["error"], body
    return body["error"]["message"]


def cost(model: str, prompt_tokens: int, completion_tokens: int) -> int:
    """Micro-dollars, computed apart from the gateway's code ($ per 1M tokens = µ$ per token)."""
    inp, out = PRICE[model]
    return int((prompt_tokens * inp + completion_tokens * out).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def usage_of(surface: str, answer: dict[str, Any]) -> tuple[int, int]:
    """(prompt, completion) tokens as the answer reports them."""
    if surface == "openai":
        return answer["usage"]["prompt_tokens"], answer["usage"]["completion_tokens"]
    if surface == "responses":
        return answer["usage"]["input_tokens"], answer["usage"]["output_tokens"]
    if surface == "anthropic":
        u = answer["usage"]
        return u["input_tokens"] + u.get("cache_read_input_tokens", 0) + u.get("cache_creation_input_tokens", 0), \
            u["output_tokens"]
    u = answer["usageMetadata"]
    return u["promptTokenCount"], u.get("candidatesTokenCount", 0) + u.get("thoughtsTokenCount", 0)


def upstream_requests(sim_http: httpx.Client) -> list[dict[str, Any]]:
    return [json.loads(r["body"]) for r in sim_http.get("/sim/requests").json()
            if not r["path"].endswith(("count_tokens", "countTokens"))]


def key_row(admin: Admin, name: str) -> dict[str, Any]:
    return admin.key(name)   # flushes first: spent and leased are current


# ---- 1. one reading of every limit, validated ------------------------------------------------

def test_the_issue_repro_a_gemini_limit_given_twice_is_refused_not_served_free(gateway, fresh_key, admin,
                                                                              sim_http) -> None:
    name, key = fresh_key(quota=0.0)
    sim_http.post("/sim/reset")
    body = prompt("gemini", "hi [[sim:words=200]]", maxOutputTokens=0, max_output_tokens=-1_000_000_000_000)
    r = call(gateway, "gemini", "claude-sim-sonnet", body, key)
    assert r.status_code == 400, r.text
    assert "maxOutputTokens" in error_of("gemini", r)
    _, rich = fresh_key(quota=1.0)
    assert call(gateway, "gemini", "claude-sim-sonnet", body, rich).status_code == 400
    assert upstream_requests(sim_http) == [], "nothing reached the upstream"
    row = key_row(admin, name)
    assert row["spent_micros"] == 0 and row["leased_micros"] == 0


@pytest.mark.parametrize("surface,model,limits,param", [
    ("openai", "gpt-4o-mini", {"max_tokens": -1_000_000_000}, "max_tokens"),
    ("openai", "claude-sim-sonnet", {"max_tokens": -1_000_000_000}, "max_tokens"),
    ("openai", "gpt-4o-mini", {"max_completion_tokens": 2**63}, "max_completion_tokens"),
    ("openai", "gpt-4o-mini", {"max_tokens": 0}, "max_tokens"),
    ("openai", "gpt-4o-mini", {"max_tokens": 12.5}, "max_tokens"),
    ("openai", "gpt-4o-mini", {"max_tokens": "100"}, "max_tokens"),
    ("openai", "gpt-4o-mini", {"max_tokens": 1_000_001}, "max_tokens"),
    ("openai", "gpt-4o-mini", {"max_tokens": 10, "max_completion_tokens": 20}, "max_completion_tokens"),
    ("openai", "gpt-4o-mini", {"n": 0}, "n"),
    ("openai", "gpt-4o-mini", {"n": 129}, "n"),
    ("anthropic", "claude-sim-sonnet", {"max_tokens": -5}, "max_tokens"),
    ("anthropic", "claude-sim-sonnet", {}, "max_tokens"),
    ("anthropic", "gpt-4o-mini", {"max_tokens": 2**64}, "max_tokens"),
    ("gemini", "gemini-2.5-flash", {"maxOutputTokens": -1}, "maxOutputTokens"),
    ("gemini", "gemini-2.5-flash", {"max_output_tokens": 2**63}, "max_output_tokens"),
    ("gemini", "gpt-4o-mini", {"candidateCount": 0}, "candidateCount"),
    ("gemini", "gemini-2.5-flash", {"candidate_count": 1000}, "candidate_count"),
    ("responses", "gpt-resp-mini", {"max_output_tokens": 15}, "max_output_tokens"),     # the API's floor of 16
    ("responses", "claude-sim-sonnet", {"max_output_tokens": 1}, "max_output_tokens"),  # on every upstream
    ("responses", "gemini-2.5-flash", {"max_output_tokens": 0}, "max_output_tokens"),
    ("responses", "gpt-resp-mini", {"max_output_tokens": 2**63}, "max_output_tokens"),
    ("responses", "gpt-4o-mini", {"max_output_tokens": "100"}, "max_output_tokens"),
    ("responses", "gpt-resp-mini", {"max_output_tokens": 16.5}, "max_output_tokens"),
])
def test_bad_limits_are_400_in_the_callers_shape_and_cost_nothing(gateway, fresh_key, admin, surface, model,
                                                                  limits, param) -> None:
    name, key = fresh_key(quota=1.0)
    r = call(gateway, surface, model, prompt(surface, "hi", **limits), key)
    assert r.status_code == 400, r.text
    assert param in error_of(surface, r)
    assert key_row(admin, name)["spent_micros"] == 0


def test_same_value_in_both_spellings_is_one_limit(gateway, fresh_key, sim_http) -> None:
    _, key = fresh_key(quota=1.0)
    sim_http.post("/sim/reset")
    body = prompt("gemini", "hi [[sim:words=300]]", maxOutputTokens=20, max_output_tokens=20)
    r = call(gateway, "gemini", "claude-sim-sonnet", body, key)
    assert r.status_code == 200, r.text
    assert upstream_requests(sim_http)[-1]["max_tokens"] == 20
    assert r.json()["candidates"][0]["finishReason"] == "MAX_TOKENS"


# the models each surface is tried with, and its output limits below: a new protocol fails until it has both
_SURFACE_MODELS = {"openai": ["gpt-4o-mini", "claude-sim-sonnet", "gemini-2.5-flash"],
                   "anthropic": ["claude-sim-sonnet", "gpt-4o-mini"],
                   "gemini": ["gemini-2.5-flash", "claude-sim-sonnet", "gpt-4o-mini"],
                   "responses": ["gpt-resp-mini", "claude-sim-sonnet", "gemini-2.5-flash", "gpt-4o-mini"]}
_SURFACE_MODELS["openai"].append("gpt-resp-mini")
_NUMBERS = st.one_of(st.none(), st.sampled_from([0, 1, 16, 100, 4096, 1_000_000, 1_000_001, 2**31, 2**63, 2**64]),
                     st.integers(-2**70, 2**70), st.floats(allow_nan=False, allow_infinity=False),
                     st.sampled_from(["100", True, [], {}]))


@st.composite
def _shapes(draw: st.DrawFn) -> tuple[str, str, dict[str, Any], bool]:
    surface = draw(st.sampled_from(sorted(row.surface for row in PROTOCOL_ROWS.values())))
    model = draw(st.sampled_from(_SURFACE_MODELS[surface]))
    names = {"openai": ["max_tokens", "max_completion_tokens", "n"], "anthropic": ["max_tokens"],
             "gemini": ["maxOutputTokens", "max_output_tokens", "candidateCount", "candidate_count"],
             "responses": ["max_output_tokens"]}[surface]
    limits = {name: value for name in names if (value := draw(_NUMBERS)) is not None}
    words = draw(st.sampled_from([5, 300, 3000]))
    body = prompt(surface, f"tell me [[sim:words={words}]]", **limits)
    if surface == "gemini" and draw(st.booleans()):
        body["generation_config"] = body.pop("generationConfig", None)
    return surface, model, body, draw(st.booleans())


@pytest.fixture(scope="module")
def tight_key(admin: Admin) -> tuple[str, str]:
    name = f"property-{time.time_ns()}"
    return name, admin.create_key(name, 0.05)


@settings(max_examples=70, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=_shapes())
def test_property_no_request_shape_reserves_or_charges_below_zero_or_overdraws(gateway, admin, tight_key,
                                                                              shape) -> None:
    surface, model, body, stream = shape
    name, key = tight_key
    r = call(gateway, surface, model, body, key, stream=stream)
    assert r.status_code in (200, 400, 429), r.text   # never a 500: a bad reservation raises, which would be one
    row = key_row(admin, name)
    assert 0 <= row["spent_micros"] <= row["quota_micros"]
    assert row["leased_micros"] >= 0 and row["spent_micros"] + row["leased_micros"] <= row["quota_micros"]
    for log in admin.logs(limit=20):
        assert log["cost_micros"] >= 0 and log["charged_micros"] >= 0, log


# ---- 2. the reservation is the cap -----------------------------------------------------------

@pytest.mark.parametrize("surface,model,field", [
    ("openai", "gpt-4o-mini", "max_completion_tokens"),         # fast path
    ("gemini", "gemini-2.5-flash", "maxOutputTokens"),          # fast path
    ("openai", "claude-sim-sonnet", "max_tokens"),              # converted
    ("gemini", "claude-sim-sonnet", "max_tokens"),              # converted
    ("openai", "gemini-2.5-flash", "maxOutputTokens"),          # converted
    ("responses", "gpt-resp-mini", "max_output_tokens"),        # fast path
    ("responses", "claude-sim-sonnet", "max_tokens"),           # converted
    ("openai", "gpt-resp-mini", "max_output_tokens"),           # converted
])
@pytest.mark.parametrize("stream", [False, True])
def test_a_request_without_a_limit_sends_the_reserved_output_upstream(gateway, fresh_key, admin, sim_http, surface,
                                                                      model, field, stream) -> None:
    name, key = fresh_key(quota=5.0)
    sim_http.post("/sim/reset")
    r = call(gateway, surface, model, prompt(surface, "write a lot [[sim:words=6000]]"), key, stream=stream)
    assert r.status_code == 200, r.text
    sent = upstream_requests(sim_http)[-1]
    limit = sent.get("generationConfig", {}).get(field) if field == "maxOutputTokens" else sent.get(field)
    assert limit == 4096, sent   # the price's max_output: what was reserved
    if not stream:
        finish = (r.json()["choices"][0]["finish_reason"] if surface == "openai"
                  else r.json()["incomplete_details"]["reason"] if surface == "responses"
                  else r.json()["candidates"][0]["finishReason"])
        assert finish in ("length", "MAX_TOKENS", "max_output_tokens")
    else:
        assert re.search(rb'"length"|"MAX_TOKENS"|"reason":"max_output_tokens"', r.content)
    log = admin.logs(limit=1)[0]
    assert log["status"] == 200 and log["completion_tokens"] <= 4096
    assert log["charged_micros"] == log["cost_micros"] == key_row(admin, name)["spent_micros"]


def test_a_key_with_an_unlimited_quota_gets_the_body_unchanged(gateway, sim_http) -> None:
    sim_http.post("/sim/reset")
    r = call(gateway, "openai", "gpt-4o-mini", prompt("openai", "hi"), "sk-alice-0001")
    assert r.status_code == 200
    sent = upstream_requests(sim_http)[-1]
    assert "max_tokens" not in sent and "max_completion_tokens" not in sent


def test_a_small_balance_is_served_with_what_it_covers_and_then_refused_saying_why(gateway, fresh_key, admin,
                                                                                   sim_http) -> None:
    # the issue's case: 8,000 words on a quota far below the default reservation (4096 x $10/M = 40,960 µ$)
    name, key = fresh_key(quota=0.0246)
    sim_http.post("/sim/reset")
    body = prompt("openai", "write a lot [[sim:words=8000]]")
    r = call(gateway, "openai", "gpt-4o", body, key)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["choices"][0]["finish_reason"] == "length"
    sent = upstream_requests(sim_http)[-1]["max_completion_tokens"]
    prompt_tokens, completion = usage_of("openai", answer)
    assert completion == sent and 16 <= sent < 4096
    upstream_cost = cost("gpt-4o", prompt_tokens, completion)
    row = key_row(admin, name)
    assert row["spent_micros"] == upstream_cost <= 24_600   # charged = what the upstream's usage cost
    # again and again: each answer gets what is left, until not even 16 tokens are covered
    statuses = []
    for _ in range(8):
        r = call(gateway, "openai", "gpt-4o", body, key)
        statuses.append(r.status_code)
        if r.status_code == 429:
            break
    assert statuses[-1] == 429, statuses
    message = error_of("openai", r)
    row = key_row(admin, name)
    left = row["quota_micros"] - row["spent_micros"]
    assert f"${left // 1_000_000}.{left % 1_000_000:06d} left" in message and "16 output tokens" in message
    assert r.json()["error"]["code"] == "insufficient_quota"
    assert row["spent_micros"] <= row["quota_micros"]


def test_an_explicit_limit_the_balance_cannot_cover_is_refused_not_shrunk(gateway, fresh_key, sim_http) -> None:
    _, key = fresh_key(quota=0.001)
    sim_http.post("/sim/reset")
    r = call(gateway, "anthropic", "claude-sim-sonnet", prompt("anthropic", "hi", max_tokens=4096), key)
    assert r.status_code == 429, r.text
    assert "$0.001000 left" in error_of("anthropic", r) and "4,096 output tokens" in error_of("anthropic", r)
    assert upstream_requests(sim_http) == []
    small = call(gateway, "anthropic", "claude-sim-sonnet", prompt("anthropic", "hi", max_tokens=20), key)
    assert small.status_code == 200, small.text


def test_thinking_budget_stays_below_a_lowered_max_tokens(gateway, fresh_key, sim_http) -> None:
    """An OpenAI client asking for reasoning from a Claude model on a small balance: the cap is below
    the default thinking budget, and Anthropic refuses budget_tokens >= max_tokens."""
    _, key = fresh_key(quota=0.03)   # covers ~1,950 output tokens of claude-sim-sonnet
    sim_http.post("/sim/reset")
    r = call(gateway, "openai", "claude-sim-sonnet", {**prompt("openai", "think"), "reasoning_effort": "high"}, key)
    assert r.status_code == 200, r.text
    sent = upstream_requests(sim_http)[-1]
    assert sent["thinking"]["budget_tokens"] < sent["max_tokens"] < 4096


# ---- 3. count_tokens -------------------------------------------------------------------------

def test_count_tokens_refuses_a_key_with_nothing_left_and_logs_every_count(gateway, fresh_key, admin,
                                                                           sim_http) -> None:
    _, empty = fresh_key(quota=0.0)
    sim_http.post("/sim/reset")
    body = {"model": "claude-sim-sonnet", "messages": [{"role": "user", "content": "count me"}]}
    r = httpx.post(f"{gateway.url}/v1/messages/count_tokens", json=body,
                   headers={"x-api-key": empty, **ANTHROPIC_HEADERS})
    assert r.status_code == 429 and "left" in error_of("anthropic", r)
    g = httpx.post(f"{gateway.url}/v1beta/models/gemini-2.5-flash:countTokens",
                   json={"contents": [{"parts": [{"text": "count me"}]}]}, headers={"x-goog-api-key": empty})
    assert g.status_code == 429 and error_of("gemini", g)
    assert sim_http.get("/sim/requests").json() == [], "the upstream was not asked"
    logs = admin.logs(limit=2)
    assert {row["surface"] for row in logs} == {"anthropic_messages:count_tokens", "gemini:count_tokens"}
    assert all(row["status"] == 429 and row["charged_micros"] == 0 for row in logs)
    name, funded = fresh_key(quota=1.0)
    ok = httpx.post(f"{gateway.url}/v1/messages/count_tokens", json=body,
                    headers={"x-api-key": funded, **ANTHROPIC_HEADERS})
    assert ok.status_code == 200 and ok.json()["input_tokens"] > 0
    row = admin.logs(limit=1)[0]
    assert row["surface"] == "anthropic_messages:count_tokens" and row["status"] == 200
    assert row["channel"] == "claude" and row["charged_micros"] == 0
    assert key_row(admin, name)["spent_micros"] == 0


# ---- 4. an answer the gateway cannot read is a failed request --------------------------------

@pytest.mark.parametrize("surface,model", [("openai", "gpt-4o-mini"), ("anthropic", "gpt-4o-mini"),
                                           ("gemini", "gpt-4o-mini"), ("responses", "gpt-4o-mini"),
                                           ("openai", "gpt-resp-mini"), ("responses", "gpt-resp-mini")])
@pytest.mark.parametrize("stream", [False, True])
def test_an_unreadable_upstream_answer_is_502_and_not_billed(gateway, fresh_key, admin, surface, model,
                                                             stream) -> None:
    name, key = fresh_key(quota=1.0)
    body = prompt(surface, "hi [[sim:garbage]]", **({"max_tokens": 50} if surface == "anthropic" else {}))
    r = call(gateway, surface, model, body, key, stream=stream)
    if not stream:
        assert r.status_code == 502, r.text
        assert "not JSON" in error_of(surface, r) or "cannot be read" in error_of(surface, r)
    else:
        assert r.status_code == 200 and b"error" in r.content
        assert b"[DONE]" not in r.content, "no terminator that would make the stream look complete"
    log = admin.logs(limit=1)[0]
    assert log["status"] == 502 and log["charged_micros"] == 0 and log["cost_micros"] == 0
    assert key_row(admin, name)["spent_micros"] == 0
    # the channel is fine again for the next request (its failure count goes back to zero)
    assert call(gateway, "openai", "gpt-4o-mini", prompt("openai", "hi"), key).status_code == 200


# ---- 5. unpriced models ----------------------------------------------------------------------

@pytest.mark.parametrize("surface", sorted(row.surface for row in PROTOCOL_ROWS.values()))
def test_a_served_model_without_a_price_is_refused_naming_it(gateway, fresh_key, sim_http, surface) -> None:
    _, key = fresh_key(quota=1.0)
    sim_http.post("/sim/reset")
    r = call(gateway, surface, "free-model", prompt(surface, "hi", **({"max_tokens": 5} if surface == "anthropic"
                                                                      else {})), key)
    assert r.status_code == 403, r.text
    message = error_of(surface, r)
    assert "'free-model' has no price" in message and "unpriced: free" in message
    assert upstream_requests(sim_http) == []


def test_an_unpriced_model_is_not_listed_while_it_is_refused(gateway, fresh_key) -> None:
    _, key = fresh_key(quota=1.0)
    listed = httpx.get(f"{gateway.url}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    ids = [m["id"] for m in listed.json()["data"]]
    assert "gpt-4o-mini" in ids and "free-model" not in ids
    one = httpx.get(f"{gateway.url}/v1/models/free-model", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert one.status_code == 404


def _alias_config(sim_url: str, unpriced: str) -> str:
    return f"""
channels:
  - name: mapped
    base_url: {sim_url}/v1
    api_keys: [sk-up]
    models: [house-mini, gpt-4o-mini, typo-model]
    model_map: {{house-mini: gpt-4o-mini}}
  - name: claude
    type: anthropic
    base_url: {sim_url}
    api_keys: [sk-ant]
    models: [claude-sim-sonnet, claude-sim-sonnet-thinking]
keys:
  - name: buyer
    key: sk-alias-buyer-0001
    quota: 1.0
prices:
  gpt-4o-mini: {{input: 0.15, output: 0.60}}
  gpt-4o-mni: {{input: 0.15, output: 0.60}}
  claude-sim-sonnet: {{input: 3.0, output: 15.0}}
{unpriced}"""


def test_aliases_inherit_the_price_of_what_they_map_to_and_unpriced_free_is_an_opt_in(sim: Server,
                                                                                       tmp_path: Path) -> None:
    gateway = start_gateway(_alias_config(sim.url, "unpriced: free"), tmp_path, db_name="alias.db")
    try:
        admin = Admin(gateway.url)
        key = "sk-alias-buyer-0001"
        spent = 0
        for surface, model, price_of in (("openai", "house-mini", "gpt-4o-mini"),
                                         ("anthropic", "claude-sim-sonnet-thinking", "claude-sim-sonnet")):
            r = call(gateway, surface, model, prompt(surface, "hi [[sim:words=30]]", max_tokens=2000), key)
            assert r.status_code == 200, r.text
            spent += cost(price_of, *usage_of(surface, r.json()))
            assert admin.key("buyer")["spent_micros"] == spent > 0
        r = call(gateway, "openai", "typo-model", prompt("openai", "hi"), key)
        assert r.status_code == 200, "served free: the config opted in"
        listed = httpx.get(f"{gateway.url}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert "typo-model" in [m["id"] for m in listed.json()["data"]]
        assert admin.key("buyer")["spent_micros"] == spent
        startup = gateway.log.read_text()
        assert "typo-model" in startup and "served free" in startup
        assert "house-mini" not in startup.split("without a price")[1].splitlines()[0]
    finally:
        gateway.stop()
