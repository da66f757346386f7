"""GPTs and families over real HTTP (issue 13): a channel's `models` and `prices` may hold patterns.

`gpt-4-gizmo-g-abc123` reaches the simulator through the `gpt-4-gizmo-*` channel unchanged and is
billed at the `gpt-4-gizmo-*` price to the micro-dollar; a name some channel lists exactly goes only
there, at its exact price; a name no price pattern matches is refused (403 model_not_priced); key
allowlists take the same patterns; model lists show exact names only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from servers import Admin, Server, start_gateway

# USD per 1M tokens = micro-dollars per token; odd figures so that rounding is exercised
PRICES = {"gpt-4-gizmo-*": (Decimal("1.234567"), Decimal("4.567891")),
          "gpt-4-gizmo-special": (Decimal("0.5"), Decimal("0.75")),
          "gpt-4o-mini": (Decimal("0.15"), Decimal("0.60")),
          "claude-sonnet-*": (Decimal("3.3"), Decimal("16.5"))}


def _config(sim_url: str) -> str:
    prices = "\n".join(f'  "{m}": {{input: {i}, output: {o}}}' for m, (i, o) in PRICES.items())
    return f"""
channels:
  - name: gizmos
    base_url: {sim_url}/v1
    api_keys: [sk-up-gizmos]
    models: ["gpt-4-gizmo-*", gpt-4-gizmo-fast]
    model_map: {{gpt-4-gizmo-fast: gpt-4o-mini}}
  - name: special
    base_url: {sim_url}/v1
    api_keys: [sk-up-special]
    models: [gpt-4-gizmo-special]
  - name: claude
    type: anthropic
    base_url: {sim_url}
    api_keys: [sk-up-claude]
    models: ["claude-*"]
keys:
  - {{name: alice, key: sk-wild-alice-0001}}
  - {{name: gizmo-only, key: sk-wild-gizmo-0001, models: ["gpt-4-gizmo-*"]}}
  - {{name: one-gpt, key: sk-wild-onegpt-0001, models: [gpt-4-gizmo-g-abc123]}}
prices:
{prices}
"""


@pytest.fixture(scope="module")
def wild(sim: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_gateway(_config(sim.url), tmp_path_factory.mktemp("wildcards"))
    yield server
    server.stop()


def _client(gateway: Server, key: str = "sk-wild-alice-0001") -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


def _cost(price: str, prompt_tokens: int, completion_tokens: int) -> int:
    """Micro-dollars, computed apart from the gateway's code."""
    inp, out = PRICES[price]
    return int((prompt_tokens * inp + completion_tokens * out).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _upstream(sim: Server, upstream_key: str) -> dict[str, Any]:
    """The last request the simulator received with `upstream_key`."""
    sent = [r for r in httpx.get(sim.url + "/sim/requests").json()
            if upstream_key in (r["headers"].get("authorization", ""), r["headers"].get("x-api-key"))
            or r["headers"].get("authorization") == f"Bearer {upstream_key}"]
    assert sent, f"nothing reached the simulator with {upstream_key}"
    return json.loads(sent[-1]["body"])  # type: ignore[no-any-return]


def _spent(admin: Admin, name: str) -> int:
    return int(admin.key(name)["spent_micros"])


def test_a_gpt_routes_to_the_pattern_channel_and_is_billed_at_the_pattern_price(wild: Server, sim: Server) -> None:
    admin = Admin(wild.url)
    before = _spent(admin, "alice")
    answer = _client(wild).chat.completions.create(
        model="gpt-4-gizmo-g-abc123", messages=[{"role": "user", "content": "hello [[sim:words=37]]"}])
    assert answer.model == "gpt-4-gizmo-g-abc123" and answer.usage is not None
    assert _upstream(sim, "sk-up-gizmos")["model"] == "gpt-4-gizmo-g-abc123"   # passed through unchanged
    expected = _cost("gpt-4-gizmo-*", answer.usage.prompt_tokens, answer.usage.completion_tokens)
    assert expected > 0 and _spent(admin, "alice") - before == expected
    log = next(r for r in admin.logs(20) if r["model"] == "gpt-4-gizmo-g-abc123")
    assert log["channel"] == "gizmos" and log["charged_micros"] == expected


def test_a_streamed_gpt_is_billed_at_the_pattern_price(wild: Server, sim: Server) -> None:
    admin = Admin(wild.url)
    before = _spent(admin, "alice")
    stream = _client(wild).chat.completions.create(
        model="gpt-4-gizmo-g-zz9", messages=[{"role": "user", "content": "hi [[sim:words=21]]"}],
        stream=True, stream_options={"include_usage": True})
    usage = [chunk.usage for chunk in stream if chunk.usage is not None]
    assert len(usage) == 1
    assert _spent(admin, "alice") - before == _cost("gpt-4-gizmo-*", usage[0].prompt_tokens,
                                                     usage[0].completion_tokens) > 0


def test_an_exact_name_beats_the_pattern(wild: Server, sim: Server) -> None:
    admin = Admin(wild.url)
    before = _spent(admin, "alice")
    answer = _client(wild).chat.completions.create(
        model="gpt-4-gizmo-special", messages=[{"role": "user", "content": "hello [[sim:words=9]]"}])
    assert answer.usage is not None
    assert _upstream(sim, "sk-up-special")["model"] == "gpt-4-gizmo-special"
    assert _spent(admin, "alice") - before == _cost("gpt-4-gizmo-special", answer.usage.prompt_tokens,
                                                     answer.usage.completion_tokens)
    log = next(r for r in admin.logs(20) if r["model"] == "gpt-4-gizmo-special")
    assert log["channel"] == "special"


def test_model_map_on_a_pattern_channel_maps_only_its_names(wild: Server, sim: Server) -> None:
    admin = Admin(wild.url)
    before = _spent(admin, "alice")
    answer = _client(wild).chat.completions.create(
        model="gpt-4-gizmo-fast", messages=[{"role": "user", "content": "hello [[sim:words=5]]"}])
    assert answer.model == "gpt-4-gizmo-fast" and answer.usage is not None
    assert _upstream(sim, "sk-up-gizmos")["model"] == "gpt-4o-mini"
    # the mapped model's exact price, not the gizmo pattern's
    assert _spent(admin, "alice") - before == _cost("gpt-4o-mini", answer.usage.prompt_tokens,
                                                     answer.usage.completion_tokens)


def test_a_family_pattern_serves_claude_names_converted_and_as_thinking_aliases(wild: Server, sim: Server) -> None:
    admin = Admin(wild.url)
    before = _spent(admin, "alice")
    answer = _client(wild).chat.completions.create(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hello [[sim:words=11]]"}], max_tokens=200)
    assert answer.usage is not None and _upstream(sim, "sk-up-claude")["model"] == "claude-sonnet-4-5"
    spent = _cost("claude-sonnet-*", answer.usage.prompt_tokens, answer.usage.completion_tokens)
    assert _spent(admin, "alice") - before == spent
    claude = anthropic.Anthropic(base_url=wild.url, api_key="sk-wild-alice-0001", max_retries=0)
    message = claude.messages.create(model="claude-sonnet-4-5-thinking", max_tokens=4000,
                                     messages=[{"role": "user", "content": "think [[sim:words=7]]"}])
    sent = _upstream(sim, "sk-up-claude")
    assert sent["model"] == "claude-sonnet-4-5" and sent["thinking"]["budget_tokens"] == 2000
    u = message.usage
    spent += _cost("claude-sonnet-*", u.input_tokens + (u.cache_read_input_tokens or 0)
                   + (u.cache_creation_input_tokens or 0), u.output_tokens)
    assert _spent(admin, "alice") - before == spent


def test_a_name_matched_by_no_price_pattern_is_refused(wild: Server, sim: Server) -> None:
    requests = httpx.get(sim.url + "/sim/stats").json()["requests"]
    with pytest.raises(openai.PermissionDeniedError) as refused:
        _client(wild).chat.completions.create(model="claude-haiku-4-5", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.code == "model_not_priced" and "'claude-haiku-4-5' has no price" in refused.value.message
    assert httpx.get(sim.url + "/sim/stats").json()["requests"] == requests    # nothing went upstream
    with pytest.raises(openai.NotFoundError) as unknown:
        _client(wild).chat.completions.create(model="gpt-4-gizmo", messages=[{"role": "user", "content": "hi"}])
    assert unknown.value.code == "model_not_found"                              # the pattern needs its '-'
    assert "claude-*" in wild.log.read_text().split("no price pattern covers")[1].splitlines()[0]


def test_allowlists_take_the_same_patterns(wild: Server) -> None:
    gizmo_only = _client(wild, "sk-wild-gizmo-0001")
    for model in ("gpt-4-gizmo-g-any", "gpt-4-gizmo-special", "gpt-4-gizmo-fast"):   # exact or pattern-served
        gizmo_only.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.PermissionDeniedError, match="may not use model 'claude-sonnet-4-5'"):
        gizmo_only.chat.completions.create(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}])
    one = _client(wild, "sk-wild-onegpt-0001")
    one.chat.completions.create(model="gpt-4-gizmo-g-abc123", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.PermissionDeniedError, match="may not use model 'gpt-4-gizmo-g-other'"):
        one.chat.completions.create(model="gpt-4-gizmo-g-other", messages=[{"role": "user", "content": "hi"}])
    assert [m.id for m in gizmo_only.models.list()] == ["gpt-4-gizmo-fast", "gpt-4-gizmo-special"]
    assert [m.id for m in one.models.list()] == []


def test_model_lists_show_exact_names_only(wild: Server) -> None:
    client = _client(wild)
    assert [m.id for m in client.models.list()] == ["gpt-4-gizmo-fast", "gpt-4-gizmo-special"]
    claude = anthropic.Anthropic(base_url=wild.url, api_key="sk-wild-alice-0001", max_retries=0)
    assert [m.id for m in claude.models.list()] == ["gpt-4-gizmo-fast", "gpt-4-gizmo-special"]
    gemini = httpx.get(wild.url + "/v1beta/models", headers={"x-goog-api-key": "sk-wild-alice-0001"}).json()
    assert [m["name"] for m in gemini["models"]] == ["models/gpt-4-gizmo-fast", "models/gpt-4-gizmo-special"]
    # a name a pattern serves (and prices) can be retrieved by name; an unpriced or unserved one cannot
    assert client.models.retrieve("gpt-4-gizmo-g-abc123").id == "gpt-4-gizmo-g-abc123"
    one = httpx.get(wild.url + "/v1beta/models/claude-sonnet-4-5", headers={"x-goog-api-key": "sk-wild-alice-0001"})
    assert one.status_code == 200 and one.json()["name"] == "models/claude-sonnet-4-5"
    for model in ("claude-haiku-4-5", "gpt-4-gizmo", "gpt-4-gizmo-*"):
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve(model)
    with pytest.raises(openai.NotFoundError):   # allowed by the key's allowlist pattern only
        _client(wild, "sk-wild-gizmo-0001").models.retrieve("claude-sonnet-4-5")


def test_the_admin_api_checks_allowlist_patterns(wild: Server) -> None:
    admin = Admin(wild.url)
    r = admin.http.post("/admin/keys", json={"name": "globber", "models": ["gpt-4?"]})
    assert r.status_code == 400 and "only '*' is a wildcard" in r.json()["error"]["message"]
    key = admin.create_key("family-key", None, ["claude-sonnet-*"])
    client = _client(wild, key)
    client.chat.completions.create(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}],
                                   max_tokens=100)
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="gpt-4-gizmo-g-abc123", messages=[{"role": "user", "content": "hi"}])


@pytest.mark.slow
def test_keys_create_checks_allowlist_patterns_against_the_config(tmp_path: Path) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text('channels: [{name: a, base_url: "http://127.0.0.1:9/v1", models: ["gpt-4-gizmo-*", gpt-4o]}]\n')
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
           "POLYRELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'keys.db'}"}

    def create(name: str, *models: str) -> subprocess.CompletedProcess[str]:
        flags = [arg for m in models for arg in ("--model", m)]
        return subprocess.run([sys.executable, "-m", "polyrelay.cli", "keys", "create", "--name", name, *flags,
                               "--config", str(config)], capture_output=True, text=True, cwd=tmp_path, env=env,
                              timeout=60)

    ok = create("gizmo-user", "gpt-4-gizmo-g-abc123", "claude-*", "gpt-4o")   # pattern-served, a pattern, exact
    assert ok.returncode == 0, ok.stderr
    for models, says in ((["gpt-4?"], "only '*' is a wildcard"), (["gpt-4-gizmo"], "not served by")):
        bad = create("bad", *models)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
        assert says in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
