"""Routing reads the channels' declared capabilities: a channel is offered only for the operations it
can serve, so the pipeline never tries one that cannot do the job. Here, count_tokens: OpenAI channels
have no counter, and an Anthropic-compatible vendor may lack one (`count_tokens: false`): a count goes
to the next channel that can count, or is estimated locally; generation still uses the channel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from servers import Admin, Server, start_gateway

ANTHROPIC = {"x-api-key": "sk-caps-0001", "anthropic-version": "2023-06-01"}
BODY = {"messages": [{"role": "user", "content": "hello world " * 20}]}


def config(sim_url: str) -> str:
    return f"""
channels:
  - name: openai-top
    type: openai
    base_url: {sim_url}/v1
    api_keys: [sk-up-openai-top]
    models: [claude-compat]
    priority: 9
    count_tokens: true
  - name: compat-no-count
    type: anthropic
    base_url: {sim_url}
    api_keys: [sk-up-compat-no-count]
    models: [claude-compat, claude-lonely]
    priority: 5
    count_tokens: false
  - name: counter
    type: anthropic
    base_url: {sim_url}
    api_keys: [sk-up-counter]
    models: [claude-compat]
keys:
  - name: caps
    key: sk-caps-0001
unpriced: free
"""


@pytest.fixture(scope="module")
def gateway(sim: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_gateway(config(sim.url), Path(tmp_path_factory.mktemp("caps")))
    yield server
    server.stop()


def upstream_calls(sim_http: httpx.Client) -> list[tuple[str, str]]:
    """(path, upstream key) of every request the simulator received since its reset."""
    out = []
    for r in sim_http.get("/sim/requests").json():
        h: dict[str, Any] = r["headers"]
        out.append((r["path"], h.get("x-api-key") or h.get("authorization", "").removeprefix("Bearer ")))
    return out


def last_log(gateway: Server) -> dict[str, Any]:
    return Admin(gateway.url).logs(limit=1)[0]


def test_a_count_skips_channels_without_a_counter_and_asks_the_one_that_has_it(
        gateway: Server, sim_http: httpx.Client) -> None:
    sim_http.post("/sim/reset")
    r = httpx.post(f"{gateway.url}/v1/messages/count_tokens", headers=ANTHROPIC,
                   json={"model": "claude-compat", **BODY})
    assert r.status_code == 200, r.text
    assert r.json()["input_tokens"] > 10
    assert upstream_calls(sim_http) == [("/v1/messages/count_tokens", "sk-up-counter")]
    row = last_log(gateway)
    assert (row["surface"], row["channel"], row["attempts"], row["status"]) == (
        "anthropic_messages:count_tokens", "counter", 1, 200)


def test_a_gemini_client_count_also_reaches_only_the_counting_channel(gateway: Server, sim_http: httpx.Client) -> None:
    sim_http.post("/sim/reset")
    r = httpx.post(f"{gateway.url}/v1beta/models/claude-compat:countTokens", params={"key": "sk-caps-0001"},
                   json={"contents": [{"role": "user", "parts": [{"text": "hello world " * 20}]}]})
    assert r.status_code == 200, r.text
    assert r.json()["totalTokens"] > 10
    assert upstream_calls(sim_http) == [("/v1/messages/count_tokens", "sk-up-counter")]


def test_with_no_channel_able_to_count_the_count_is_estimated_without_an_upstream_call(
        gateway: Server, sim_http: httpx.Client) -> None:
    sim_http.post("/sim/reset")
    r = httpx.post(f"{gateway.url}/v1/messages/count_tokens", headers=ANTHROPIC,
                   json={"model": "claude-lonely", **BODY})
    assert r.status_code == 200, r.text
    assert r.json()["input_tokens"] > 10
    assert upstream_calls(sim_http) == []
    row = last_log(gateway)
    assert (row["channel"], row["attempts"], row["status"]) == (None, 0, 200)


def test_generation_still_uses_every_channel_by_priority(gateway: Server, sim_http: httpx.Client) -> None:
    """`count_tokens: false` takes the channel out of counting only."""
    sim_http.post("/sim/reset")
    r = httpx.post(f"{gateway.url}/v1/messages", headers=ANTHROPIC,
                   json={"model": "claude-lonely", "max_tokens": 20, **BODY})
    assert r.status_code == 200, r.text
    assert upstream_calls(sim_http) == [("/v1/messages", "sk-up-compat-no-count")]
    r = httpx.post(f"{gateway.url}/v1/chat/completions", headers={"authorization": "Bearer sk-caps-0001"},
                   json={"model": "claude-compat", "max_tokens": 20, **BODY})
    assert r.status_code == 200, r.text
    assert upstream_calls(sim_http)[1:] == [("/v1/chat/completions", "sk-up-openai-top")]
