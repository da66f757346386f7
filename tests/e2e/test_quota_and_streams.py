"""Quota under concurrency, streams cut or abandoned, billing of what was streamed."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest
from test_chat_relay import expected_micros, sdk, spent_cents

from servers import Admin, Server


def _wait_for(predicate, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


async def test_quota_never_goes_negative_under_200_concurrent_requests(db_gateway: Server, db_admin: Admin,
                                                                       db_fresh_key) -> None:
    gateway, admin, fresh_key = db_gateway, db_admin, db_fresh_key   # on SQLite and on Postgres
    body = {"model": "race-model", "max_tokens": 20,
            "messages": [{"role": "user", "content": "race [[sim:words=12]]"}]}
    _, probe = fresh_key()
    usage = sdk(gateway, probe).chat.completions.create(**body).usage
    one = expected_micros("race-model", usage)
    quota_micros = 10 * one + one // 2   # covers 10 requests, not 11
    name, key = fresh_key(quota=quota_micros / 1_000_000)

    client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0,
                                http_client=openai.DefaultAsyncHttpxClient(
                                    limits=httpx.Limits(max_connections=200)))
    async def one_request() -> str:
        try:
            await client.chat.completions.create(**body)
            return "ok"
        except openai.RateLimitError as e:
            assert e.body["code"] == "insufficient_quota"
            return "429"
    outcomes = await asyncio.gather(*(one_request() for _ in range(200)))
    await client.close()

    succeeded = outcomes.count("ok")
    assert 1 <= succeeded <= 10
    assert outcomes.count("429") == 200 - succeeded
    spent = spent_cents(gateway, key) * 10_000
    assert spent == pytest.approx(succeeded * one, abs=1e-6)
    assert spent <= quota_micros
    stored = admin.key(name)
    assert stored["spent_micros"] <= stored["quota_micros"]
    assert stored["spent_micros"] + stored["leased_micros"] <= stored["quota_micros"]


def test_exhausted_key_gets_429_insufficient_quota(gateway: Server, fresh_key) -> None:
    _, key = fresh_key(quota=0.0)
    with pytest.raises(openai.RateLimitError) as caught:
        sdk(gateway, key).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert caught.value.body["code"] == "insufficient_quota"


def test_stream_cut_upstream_does_not_look_complete_and_bills_what_was_streamed(
        gateway: Server, admin: Admin, fresh_key) -> None:
    _name, key = fresh_key()
    stream = sdk(gateway, key).chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "x [[sim:words=30,cut=6]]"}])
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk)
    assert received and all(c.choices[0].finish_reason is None for c in received)
    row = next(r for r in admin.logs() if r["key_id"] is not None and r["status"] == 502
               and r["model"] == "gpt-4o-mini")
    assert row["usage_estimated"] and row["completion_tokens"] > 0 and row["charged_micros"] > 0
    assert spent_cents(gateway, key) > 0


def test_client_disconnect_cancels_upstream_and_bills_what_was_streamed(
        gateway: Server, admin: Admin, sim_http: httpx.Client, fresh_key) -> None:
    _name, key = fresh_key()
    cancelled_before = sim_http.get("/sim/stats").json()["streams_cancelled"]
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": "gpt-4o-mini", "stream": True, "messages": [
                          {"role": "user", "content": "long [[sim:words=200,delay_ms=50]]"}]}) as r:
        lines = r.iter_lines()
        got = [next(lines) for _ in range(6)]
        assert any(line.startswith("data: ") for line in got)
    # the client is gone: the gateway must stop the upstream stream and log a 499 with the text it sent
    _wait_for(lambda: sim_http.get("/sim/stats").json()["streams_cancelled"] > cancelled_before)
    row = _wait_for(lambda: next((r for r in admin.logs() if r["status"] == 499), None))
    assert row["usage_estimated"] and 0 < row["completion_tokens"] < 200
    assert row["charged_micros"] > 0


@pytest.mark.slow
async def test_two_workers_share_one_quota_without_overdrawing(sim: Server, tmp_path, new_database_url) -> None:
    from servers import start_gateway
    config = f"""
channels:
  - name: sim
    base_url: {sim.url}/v1
    api_keys: [sk-up]
    models: [race-model]
keys:
  - name: shared
    key: sk-shared-0001
    quota: 0.01
prices:
  race-model: {{input: 3.0, output: 15.0}}
"""
    gateway = start_gateway(config, tmp_path, database_url=new_database_url("workers"),
                            extra_args=["--workers", "2"])
    try:
        client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="sk-shared-0001", max_retries=0,
                                    http_client=openai.DefaultAsyncHttpxClient(
                                        limits=httpx.Limits(max_connections=100)))
        body = {"model": "race-model", "max_tokens": 20,
                "messages": [{"role": "user", "content": "race [[sim:words=12]]"}]}
        async def one_request() -> int:
            try:
                return expected_micros("race-model", (await client.chat.completions.create(**body)).usage)
            except openai.RateLimitError:
                return 0
        costs = await asyncio.gather(*(one_request() for _ in range(150)))
        await client.close()
        await asyncio.sleep(0.6)  # the other worker writes its spend within one flush interval
        assert sum(1 for c in costs if c) >= 1 and 0 in costs
        spent = spent_cents(gateway, "sk-shared-0001") * 10_000
        assert spent == pytest.approx(sum(costs), abs=1e-6)
        assert spent <= 10_000
    finally:
        gateway.stop()


@pytest.mark.parametrize("model", ["claude-sim-sonnet", "gemini-2.5-flash", "gpt-resp-mini"])
def test_converted_stream_cut_upstream_ends_with_an_error_and_is_billed_as_estimated(
        gateway: Server, admin: Admin, fresh_key, model: str) -> None:
    _name, key = fresh_key()
    stream = sdk(gateway, key).chat.completions.create(
        model=model, stream=True, messages=[{"role": "user", "content": "x [[sim:words=30,cut=6]]"}])
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk)
    assert all(c.choices[0].finish_reason is None for c in received if c.choices)
    row = next(r for r in admin.logs() if r["status"] == 502 and r["model"] == model)
    assert row["usage_estimated"] and row["charged_micros"] > 0


def test_anthropic_client_sees_an_error_event_when_the_upstream_stream_is_cut(gateway: Server) -> None:
    import anthropic
    client = anthropic.Anthropic(base_url=gateway.url, api_key="sk-alice-0001", max_retries=0)
    with pytest.raises(anthropic.APIError), client.messages.stream(model="gpt-4o-mini", max_tokens=100,
                                messages=[{"role": "user", "content": "x [[sim:words=30,cut=6]]"}]) as s:
        for _ in s:
            pass


def test_anthropic_stream_cut_upstream_bills_the_exact_input_and_the_text_streamed(
        gateway: Server, admin: Admin, fresh_key) -> None:
    # message_start carries the exact input count and an output count of ~1 that is not final
    _, key = fresh_key()
    with httpx.stream("POST", gateway.url + "/v1/messages",
                      headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                      json={"model": "claude-sim-sonnet", "max_tokens": 500, "stream": True, "messages": [
                          {"role": "user", "content": "cut me [[sim:words=120,cut=60]]"}]}) as r:
        text = "".join(r.iter_text())
    assert "message_start" in text and '"type":"error"' in text.replace(" ", "")
    row = _wait_for(lambda: next((x for x in admin.logs() if x["model"] == "claude-sim-sonnet"
                                  and x["status"] == 502 and x["key_id"] is not None), None))
    assert row["usage_estimated"]
    assert 10 <= row["completion_tokens"] <= 120, row
    started = next(e for e in text.split("\n") if e.startswith("data:") and "message_start" in e)
    assert f'"input_tokens":{row["prompt_tokens"]}' in started.replace(" ", ""), "the exact input count is kept"


def test_cut_stream_with_an_inline_image_is_not_billed_for_the_base64_bytes(
        gateway: Server, admin: Admin, fresh_key) -> None:
    import base64

    _, key = fresh_key()
    image = "data:image/png;base64," + base64.b64encode(b"\x89PNG" + bytes(600_000)).decode()
    stream = sdk(gateway, key).chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": [
            {"type": "text", "text": "describe [[sim:words=30,cut=6]]"},
            {"type": "image_url", "image_url": {"url": image}}]}])
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
    row = _wait_for(lambda: next((x for x in admin.logs() if x["model"] == "gpt-4o-mini" and x["status"] == 502
                                  and x["usage_estimated"] and x["key_id"] is not None
                                  and x["prompt_tokens"] > 100), None))
    assert row["prompt_tokens"] < 5_000, "800 KB of base64 must not be billed as 200,000 prompt tokens"
