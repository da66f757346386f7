"""Legacy completions and embeddings over real HTTP with the official openai SDK (issue 13, "Text
extras"), against the simulator, which refuses what the real APIs refuse (a chat model on
/v1/completions, an instruct model on /v1/chat/completions, a Gemini batch entry naming another model).

Completions: passed through to an OpenAI channel's /completions for a model in its `completions`
list (the default: OpenAI's completion-only models), converted to chat for any other model and on
Anthropic and Gemini channels; streamed and not; billed as chat to the micro-dollar. Embeddings:
passed through to OpenAI channels, converted to Gemini's batchEmbedContents; float and base64
(little-endian float32); billed on input tokens, counted with the tokenizer (and logged as estimated)
when the upstream reports none."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import openai
import pytest

from polyrelay.sim.openai_embeddings import vector
from polyrelay.tokens import estimate_text_tokens
from servers import Admin, Server, start_gateway

# USD per 1M tokens = micro-dollars per token; odd figures so that rounding is exercised
PRICES = {"gpt-3.5-turbo-instruct": (Decimal("1.534567"), Decimal("2.012345")),
          "gpt-4o-mini": (Decimal("0.15"), Decimal("0.60")),
          "claude-sim-sonnet": (Decimal("3.3"), Decimal("16.5")),
          "gemini-2.5-flash": (Decimal("0.31"), Decimal("2.53")),
          "text-embedding-3-small": (Decimal("0.021234"), Decimal("0")),
          "embed-mapped": (Decimal("0.13"), Decimal("0")),
          "gemini-embedding-001": (Decimal("0.151234"), Decimal("0")),
          "vllm-chat-and-complete": (Decimal("0.2"), Decimal("0.4"))}


def _config(sim_url: str) -> str:
    prices = "\n".join(f'  "{m}": {{input: {i}, output: {o}}}' for m, (i, o) in PRICES.items())
    return f"""
channels:
  - name: openai
    base_url: {sim_url}/v1
    api_keys: [sk-up-text-openai]
    models: [gpt-3.5-turbo-instruct, gpt-4o-mini, text-embedding-3-small, embed-mapped]
    model_map: {{embed-mapped: text-embedding-3-large}}
  - name: vllm
    base_url: {sim_url}/v1
    api_keys: [sk-up-text-vllm]
    models: [vllm-chat-and-complete]
    completions: ["*"]
  - name: claude
    type: anthropic
    base_url: {sim_url}
    api_keys: [sk-up-text-claude]
    models: [claude-sim-sonnet]
  - name: gemini
    type: gemini
    base_url: {sim_url}
    api_keys: [gemini-text-key]
    models: [gemini-2.5-flash, gemini-embedding-001]
keys:
  - {{name: alice, key: sk-text-alice-0001}}
  - {{name: instruct-only, key: sk-text-instruct-0001, models: [gpt-3.5-turbo-instruct]}}
  - {{name: nearly-broke, key: sk-text-broke-0001, quota: 0.000001}}
  - {{name: finite, key: sk-text-finite-0001, quota: 5}}
prices:
{prices}
"""


@pytest.fixture(scope="module")
def text(sim: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_gateway(_config(sim.url), tmp_path_factory.mktemp("textextras"))
    yield server
    server.stop()


def _client(gateway: Server, key: str = "sk-text-alice-0001") -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


def _cost(model: str, prompt_tokens: int, completion_tokens: int = 0) -> int:
    """Micro-dollars, computed apart from the gateway's code."""
    inp, out = PRICES[model]
    return int((prompt_tokens * inp + completion_tokens * out).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _sent(sim: Server, upstream_key: str) -> dict[str, Any]:
    """The last request the simulator received with `upstream_key`: path and JSON body."""
    sent = [r for r in httpx.get(sim.url + "/sim/requests").json()
            if upstream_key in (r["headers"].get("authorization", "").removeprefix("Bearer "),
                                r["headers"].get("x-api-key"), r["headers"].get("x-goog-api-key"))]
    assert sent, f"nothing reached the simulator with {upstream_key}"
    return {"path": sent[-1]["path"], "body": json.loads(sent[-1]["body"])}


def _spent(admin: Admin, name: str) -> int:
    return int(admin.key(name)["spent_micros"])


def _log(admin: Admin, model: str) -> dict[str, Any]:
    return next(r for r in admin.logs(30) if r["model"] == model)


# ---- completions ----------------------------------------------------------------------------


def test_a_completion_model_passes_through_to_the_openai_channel(text: Server, sim: Server) -> None:
    admin = Admin(text.url)
    before = _spent(admin, "alice")
    answer = _client(text).completions.create(model="gpt-3.5-turbo-instruct",
                                              prompt="Say this is a test [[sim:words=9]]",
                                              max_tokens=50, echo=True, logprobs=2, suffix="!")
    sent = _sent(sim, "sk-up-text-openai")
    assert sent["path"] == "/v1/completions"   # the simulator refuses an instruct model on chat
    assert sent["body"]["echo"] is True and sent["body"]["logprobs"] == 2 and sent["body"]["suffix"] == "!"
    assert answer.object == "text_completion" and answer.model == "gpt-3.5-turbo-instruct"
    assert answer.choices[0].text.startswith("Say this is a test")   # echo carried
    assert answer.choices[0].logprobs is not None and answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.completion_tokens > 0
    expected = _cost("gpt-3.5-turbo-instruct", answer.usage.prompt_tokens, answer.usage.completion_tokens)
    assert expected > 0 and _spent(admin, "alice") - before == expected
    row = _log(admin, "gpt-3.5-turbo-instruct")
    assert row["surface"] == "openai_chat:completions" and row["channel"] == "openai"
    assert row["charged_micros"] == expected and not row["usage_estimated"]


def test_a_streamed_completion_passes_through_with_its_usage(text: Server, sim: Server) -> None:
    admin = Admin(text.url)
    before = _spent(admin, "alice")
    stream = _client(text).completions.create(model="gpt-3.5-turbo-instruct", prompt="count [[sim:words=30]]",
                                              max_tokens=200, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert _sent(sim, "sk-up-text-openai")["path"] == "/v1/completions"
    assert all(c.object == "text_completion" and c.model == "gpt-3.5-turbo-instruct" for c in chunks)
    text_out = "".join(c.choices[0].text for c in chunks if c.choices)
    assert len(text_out.split()) == 30 and chunks[-2].choices[0].finish_reason == "stop"
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and not chunks[-1].choices
    assert _spent(admin, "alice") - before == _cost("gpt-3.5-turbo-instruct", usage[0].prompt_tokens,
                                                     usage[0].completion_tokens) > 0


def test_a_streamed_completion_without_usage_asked_is_billed_from_the_usage_the_gateway_asked_for(
        text: Server, sim: Server) -> None:
    admin = Admin(text.url)
    before = _spent(admin, "alice")
    chunks = list(_client(text).completions.create(model="gpt-3.5-turbo-instruct", prompt="hi [[sim:words=11]]",
                                                   stream=True))
    assert _sent(sim, "sk-up-text-openai")["body"]["stream_options"] == {"include_usage": True}
    assert all(c.usage is None for c in chunks) and all(c.choices for c in chunks)   # the usage chunk is dropped
    row = _log(admin, "gpt-3.5-turbo-instruct")
    assert row["stream"] and not row["usage_estimated"] and row["completion_tokens"] > 0
    assert _spent(admin, "alice") - before == _cost("gpt-3.5-turbo-instruct", row["prompt_tokens"],
                                                     row["completion_tokens"])


@pytest.mark.parametrize(("model", "channel_key", "path"), [
    ("gpt-4o-mini", "sk-up-text-openai", "/v1/chat/completions"),
    ("claude-sim-sonnet", "sk-up-text-claude", "/v1/messages"),
    ("gemini-2.5-flash", "gemini-text-key", "/v1beta/models/gemini-2.5-flash:generateContent"),
])
def test_a_completion_is_converted_for_a_chat_model(text: Server, sim: Server, model: str, channel_key: str,
                                                    path: str) -> None:
    admin = Admin(text.url)
    before = _spent(admin, "alice")
    answer = _client(text).completions.create(model=model, prompt="Write a tagline [[sim:words=40]]",
                                              temperature=0.5, stop=["\n\n"])
    sent = _sent(sim, channel_key)
    assert sent["path"] == path
    assert "Write a tagline" in json.dumps(sent["body"])
    # the endpoint's default of 16 output tokens, sent to an upstream that has no such default
    limit = sent["body"].get("max_completion_tokens") or sent["body"].get("max_tokens") or \
        sent["body"].get("generationConfig", {}).get("maxOutputTokens")
    assert limit == 16
    assert answer.object == "text_completion" and answer.id.startswith("cmpl-") and answer.model == model
    assert answer.choices[0].finish_reason == "length" and answer.choices[0].text   # 40 words cut to 16 tokens
    assert answer.usage is not None
    expected = _cost(model, answer.usage.prompt_tokens, answer.usage.completion_tokens)
    assert expected > 0 and _spent(admin, "alice") - before == expected
    assert _log(admin, model)["surface"] == "openai_chat:completions"


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sim-sonnet"])
def test_a_converted_stream_without_usage_asked_has_no_usage_chunk_and_is_billed_exactly(text: Server,
                                                                                         model: str) -> None:
    admin = Admin(text.url)
    before = _spent(admin, "alice")
    chunks = list(_client(text).completions.create(model=model, prompt="go [[sim:words=5]]", stream=True))
    assert chunks and all(c.usage is None and c.choices for c in chunks)
    row = _log(admin, model)
    assert row["status"] == 200 and not row["usage_estimated"] and row["completion_tokens"] > 0
    assert _spent(admin, "alice") - before == _cost(model, row["prompt_tokens"], row["completion_tokens"]) > 0


def test_a_converted_completion_carries_n_and_a_prompt_list_of_one_string(text: Server, sim: Server) -> None:
    answer = _client(text).completions.create(model="gpt-4o-mini", prompt=["one prompt [[sim:words=3]]"], n=2,
                                              max_tokens=30, seed=7, presence_penalty=0.5)
    sent = _sent(sim, "sk-up-text-openai")["body"]
    assert sent["messages"] == [{"role": "user", "content": "one prompt [[sim:words=3]]"}]
    assert sent["n"] == 2 and sent["seed"] == 7 and sent["presence_penalty"] == 0.5
    assert [c.index for c in answer.choices] == [0, 1] and all(c.text for c in answer.choices)


@pytest.mark.parametrize(("model", "channel_key"), [("gpt-4o-mini", "sk-up-text-openai"),
                                                    ("claude-sim-sonnet", "sk-up-text-claude"),
                                                    ("gemini-2.5-flash", "gemini-text-key")])
def test_a_streamed_completion_is_converted_for_a_chat_model(text: Server, sim: Server, model: str,
                                                             channel_key: str) -> None:
    admin = Admin(text.url)
    before = _spent(admin, "alice")
    chunks = list(_client(text).completions.create(model=model, prompt="go [[sim:words=7]]", max_tokens=100,
                                                   stream=True, stream_options={"include_usage": True}))
    assert _sent(sim, channel_key)["body"]
    assert all(c.object == "text_completion" and c.model == model for c in chunks)
    assert len("".join(c.choices[0].text for c in chunks if c.choices).split()) == 7
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1
    assert _spent(admin, "alice") - before == _cost(model, usage[0].prompt_tokens, usage[0].completion_tokens) > 0


@pytest.mark.parametrize("model", ["gpt-3.5-turbo-instruct", "gemini-2.5-flash"])
def test_a_completion_stream_cut_short_ends_with_an_error_and_is_billed_for_what_was_streamed(
        text: Server, model: str) -> None:
    admin = Admin(text.url)
    before = _spent(admin, "alice")
    received = []
    with pytest.raises(openai.APIError):
        for chunk in _client(text).completions.create(model=model, prompt="x [[sim:words=30,cut=8]]", max_tokens=300,
                                                      stream=True):
            received.append(chunk.choices[0].text)
    assert "".join(received).strip()
    row = _log(admin, model)
    assert row["status"] == 502 and row["usage_estimated"] and row["completion_tokens"] > 0
    assert _spent(admin, "alice") - before == _cost(model, row["prompt_tokens"], row["completion_tokens"]) > 0


# ---- chat for a completion-only model ------------------------------------------------------


def test_chat_for_a_completion_model_goes_to_completions_with_the_conversation_as_one_prompt(
        text: Server, sim: Server) -> None:
    admin = Admin(text.url)
    before = _spent(admin, "alice")
    answer = _client(text).chat.completions.create(model="gpt-3.5-turbo-instruct", max_tokens=60, messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Say it [[sim:words=9]]"}])
    sent = _sent(sim, "sk-up-text-openai")
    assert sent["path"] == "/v1/completions"   # the simulator refuses an instruct model on chat
    assert sent["body"] == {"model": "gpt-3.5-turbo-instruct", "max_tokens": 60, "prompt": (
        "System: Be brief.\n\nUser: Hi\n\nAssistant: Hello!\n\nUser: Say it [[sim:words=9]]\n\nAssistant:")}
    assert answer.object == "chat.completion" and answer.model == "gpt-3.5-turbo-instruct"
    message = answer.choices[0].message
    assert message.role == "assistant" and len((message.content or "").split()) == 9
    assert answer.choices[0].finish_reason == "stop" and message.tool_calls is None
    assert answer.usage is not None and answer.usage.completion_tokens > 0
    expected = _cost("gpt-3.5-turbo-instruct", answer.usage.prompt_tokens, answer.usage.completion_tokens)
    assert expected > 0 and _spent(admin, "alice") - before == expected
    row = _log(admin, "gpt-3.5-turbo-instruct")
    assert row["surface"] == "openai_chat" and row["channel"] == "openai" and row["charged_micros"] == expected


@pytest.mark.parametrize("include_usage", [True, False])
def test_streamed_chat_for_a_completion_model_is_chat_chunks_billed_exactly(
        text: Server, sim: Server, include_usage: bool) -> None:
    admin = Admin(text.url)
    before = _spent(admin, "alice")
    options: Any = {"include_usage": True} if include_usage else openai.NOT_GIVEN
    chunks = list(_client(text).chat.completions.create(
        model="gpt-3.5-turbo-instruct", messages=[{"role": "user", "content": "count [[sim:words=30]]"}],
        max_tokens=200, stream=True, stream_options=options))
    sent = _sent(sim, "sk-up-text-openai")
    assert sent["path"] == "/v1/completions" and sent["body"]["prompt"] == "count [[sim:words=30]]"
    assert sent["body"]["stream_options"] == {"include_usage": True}
    assert all(c.object == "chat.completion.chunk" and c.model == "gpt-3.5-turbo-instruct" for c in chunks)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(content.split()) == 30
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    usage = [c.usage for c in chunks if c.usage is not None]
    row = _log(admin, "gpt-3.5-turbo-instruct")
    assert row["stream"] and not row["usage_estimated"] and row["completion_tokens"] > 0
    if include_usage:
        assert len(usage) == 1 and usage[0].completion_tokens == row["completion_tokens"]
    else:
        assert not usage
    assert _spent(admin, "alice") - before == _cost("gpt-3.5-turbo-instruct", row["prompt_tokens"],
                                                     row["completion_tokens"]) > 0


def test_an_anthropic_client_asking_for_a_completion_model_is_served_from_completions(
        text: Server, sim: Server) -> None:
    r = httpx.post(text.url + "/v1/messages", headers={"x-api-key": "sk-text-alice-0001"}, json={
        "model": "gpt-3.5-turbo-instruct", "max_tokens": 50, "system": "Be brief.",
        "messages": [{"role": "user", "content": "Hi [[sim:words=4]]"}]})
    assert r.status_code == 200, r.text
    sent = _sent(sim, "sk-up-text-openai")
    assert sent["path"] == "/v1/completions"
    assert sent["body"]["prompt"] == "System: Be brief.\n\nUser: Hi [[sim:words=4]]\n\nAssistant:"
    answer = r.json()
    assert answer["type"] == "message" and len(answer["content"][0]["text"].split()) == 4


def test_chat_stays_on_the_chat_endpoint_of_a_channel_that_completes_every_model(text: Server, sim: Server) -> None:
    client, model = _client(text), "vllm-chat-and-complete"
    answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content and _sent(sim, "sk-up-text-vllm")["path"] == "/v1/chat/completions"
    with pytest.raises(openai.NotFoundError):   # the simulator has no completion model of that name
        client.completions.create(model=model, prompt="hi")
    assert _sent(sim, "sk-up-text-vllm")["path"] == "/v1/completions"   # the setting still applies there


def test_a_chat_setting_a_completion_has_no_field_for_is_dropped_and_reported(text: Server, sim: Server) -> None:
    r = httpx.post(text.url + "/v1/chat/completions", headers={"Authorization": "Bearer sk-text-alice-0001"}, json={
        "model": "gpt-3.5-turbo-instruct", "reasoning_effort": "low", "max_tokens": 20,
        "messages": [{"role": "user", "content": "hi [[sim:words=3]]"}]})
    assert r.status_code == 200, r.text
    assert "reasoning" not in _sent(sim, "sk-up-text-openai")["body"]
    assert r.headers["x-polyrelay-dropped"].startswith("reasoning: dropped")


@pytest.mark.parametrize(("extra", "param"), [
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}, "tools"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}},
     "response_format"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "what is it?"}, {
        "type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]}, "messages")])
@pytest.mark.parametrize("stream", [False, True])
def test_what_a_completion_model_cannot_carry_in_chat_is_a_400_naming_the_field(
        text: Server, sim: Server, extra: dict[str, Any], param: str, stream: bool) -> None:
    marker = f"refused-{param}-{stream}"
    body = {"model": "gpt-3.5-turbo-instruct", "messages": [{"role": "user", "content": marker}], "stream": stream,
            "user": marker, **extra}
    r = httpx.post(text.url + "/v1/chat/completions", headers={"Authorization": "Bearer sk-text-alice-0001"},
                   json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param and "completion model" in error["message"]
    assert not any(marker in r["body"] for r in httpx.get(sim.url + "/sim/requests").json())   # none sent


@pytest.mark.parametrize(("field", "value"), [("echo", True), ("suffix", "}"), ("logprobs", 1),
                                              ("logit_bias", {"50256": -100}), ("best_of", 3),
                                              ("prompt", [1, 2, 3]), ("prompt", ["one", "two"])])
def test_what_a_chat_model_cannot_honour_is_a_400_in_openai_shape(text: Server, field: str, value: Any) -> None:
    admin = Admin(text.url)
    before = _spent(admin, "alice")
    args: dict[str, Any] = {"model": "claude-sim-sonnet", "prompt": "hello", field: value}
    with pytest.raises(openai.BadRequestError) as caught:
        _client(text).completions.create(**args)
    error = caught.value.body
    assert isinstance(error, dict) and error["type"] == "invalid_request_error"
    assert error["param"] == ("prompt" if field == "prompt" else field) and field in error["message"]
    assert _spent(admin, "alice") == before


def test_bad_completion_requests_are_400s_in_openai_shape(text: Server) -> None:
    http = httpx.Client(base_url=text.url, headers={"Authorization": "Bearer sk-text-alice-0001"})
    for body, param in (({"model": "gpt-3.5-turbo-instruct"}, "prompt"), ({"prompt": "x"}, "model"),
                        ({"model": "gpt-4o-mini", "prompt": "x", "max_tokens": -1}, "max_tokens"),
                        ({"model": "gpt-4o-mini", "prompt": "x", "n": 2, "best_of": 1}, "best_of")):
        r = http.post("/v1/completions", json=body)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    assert http.post("/v1/completions", content=b"{not json").json()["error"]["type"] == "invalid_request_error"


def test_a_finite_key_sends_the_default_limit_upstream_and_a_key_without_balance_is_refused(
        text: Server, sim: Server) -> None:
    _client(text, "sk-text-finite-0001").completions.create(model="gpt-3.5-turbo-instruct", prompt="hey")
    assert _sent(sim, "sk-up-text-openai")["body"]["max_tokens"] == 16
    with pytest.raises(openai.RateLimitError) as caught:
        _client(text, "sk-text-broke-0001").completions.create(model="gpt-3.5-turbo-instruct", prompt="hey")
    assert caught.value.code == "insufficient_quota"


def test_a_keys_allowlist_applies_to_completions_and_embeddings(text: Server) -> None:
    allowed = _client(text, "sk-text-instruct-0001")
    assert allowed.completions.create(model="gpt-3.5-turbo-instruct", prompt="ok").choices
    with pytest.raises(openai.PermissionDeniedError):
        allowed.completions.create(model="gpt-4o-mini", prompt="no")
    with pytest.raises(openai.PermissionDeniedError):
        allowed.embeddings.create(model="text-embedding-3-small", input="no")


# ---- embeddings -----------------------------------------------------------------------------


def _float32(values: list[float]) -> list[float]:
    return [struct.unpack("<f", struct.pack("<f", v))[0] for v in values]


def test_embeddings_pass_through_to_an_openai_channel_as_floats(text: Server, sim: Server) -> None:
    admin = Admin(text.url)
    before = _spent(admin, "alice")
    inputs = ["The food was delicious " * 40, "and the waiter was friendly " * 30]
    answer = _client(text).embeddings.create(model="text-embedding-3-small", input=inputs, encoding_format="float",
                                             dimensions=64)
    sent = _sent(sim, "sk-up-text-openai")
    assert sent["path"] == "/v1/embeddings" and sent["body"]["dimensions"] == 64
    assert [d.embedding for d in answer.data] == [vector(t, 64) for t in inputs]
    assert answer.model == "text-embedding-3-small" and answer.usage.prompt_tokens > 0
    expected = _cost("text-embedding-3-small", answer.usage.prompt_tokens)
    assert expected > 0 and _spent(admin, "alice") - before == expected
    row = _log(admin, "text-embedding-3-small")
    assert row["surface"] == "openai_chat:embeddings" and not row["usage_estimated"]
    assert row["prompt_tokens"] == answer.usage.prompt_tokens and row["completion_tokens"] == 0


def test_embeddings_as_base64_and_token_ids_pass_through_with_the_model_mapped(text: Server, sim: Server) -> None:
    # the SDK asks for base64 by default and unpacks it
    answer = _client(text).embeddings.create(model="embed-mapped", input=[[1, 2, 3], [4, 5]])
    sent = _sent(sim, "sk-up-text-openai")
    assert sent["body"]["model"] == "text-embedding-3-large" and sent["body"]["encoding_format"] == "base64"
    assert answer.model == "embed-mapped" and len(answer.data) == 2
    assert answer.data[0].embedding == vector("1 2 3", 3072)


def test_embeddings_from_an_upstream_that_reports_no_usage_are_counted_and_logged_as_estimated(
        text: Server, sim: Server) -> None:
    admin = Admin(text.url)
    before = _spent(admin, "alice")
    inputs = ["counted by the gateway [[sim:nousage]] " * 20, "token ids count one each"]
    answer = _client(text).embeddings.create(model="text-embedding-3-small", input=inputs, encoding_format="float")
    assert _sent(sim, "sk-up-text-openai")["path"] == "/v1/embeddings"
    assert len(answer.data) == 2 and answer.usage is None   # passed through as the upstream sent it
    counted = sum(estimate_text_tokens(t) for t in inputs)
    row = _log(admin, "text-embedding-3-small")
    assert row["usage_estimated"] and row["prompt_tokens"] == counted
    assert _spent(admin, "alice") - before == _cost("text-embedding-3-small", counted) > 0


def test_an_input_the_upstream_took_without_reporting_usage_is_billed_by_its_size_never_refused_after(
        text: Server) -> None:
    """The gateway does not judge a passed-through input before the upstream does; when the upstream
    took one OpenAI would not (a boolean among token ids) and reported no usage, the count falls back
    to the body's size (billing/estimate.py), not to a 400 after the work was done."""
    admin = Admin(text.url)
    before = _spent(admin, "alice")
    body = b'{"model":"text-embedding-3-small","input":[[101,true,' + b"7," * 300 + b'9]],"user":"[[sim:nousage]]"}'
    r = httpx.post(text.url + "/v1/embeddings", content=body, headers={"Authorization": "Bearer sk-text-alice-0001",
                                                                       "Content-Type": "application/json"})
    assert r.status_code == 200 and len(r.json()["data"]) == 1
    row = _log(admin, "text-embedding-3-small")
    assert row["status"] == 200 and row["usage_estimated"] and row["prompt_tokens"] == len(body) // 4
    assert _spent(admin, "alice") - before == _cost("text-embedding-3-small", len(body) // 4)


@pytest.mark.parametrize("dimensions", [None, 8])
def test_embeddings_are_converted_for_a_gemini_channel(text: Server, sim: Server, dimensions: int | None) -> None:
    admin = Admin(text.url)
    before = _spent(admin, "alice")
    inputs = ["Hello embedding world", "多语言文本 too"]
    extra = {} if dimensions is None else {"dimensions": dimensions}
    answer = _client(text).embeddings.create(model="gemini-embedding-001", input=inputs, encoding_format="float",
                                             **extra)
    sent = _sent(sim, "gemini-text-key")
    assert sent["path"] == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert [r["content"]["parts"][0]["text"] for r in sent["body"]["requests"]] == inputs
    assert all(r.get("outputDimensionality") == dimensions for r in sent["body"]["requests"])
    size = dimensions or 3072
    assert [d.embedding for d in answer.data] == [vector(t, size) for t in inputs]
    assert [d.index for d in answer.data] == [0, 1] and answer.model == "gemini-embedding-001"
    counted = sum(estimate_text_tokens(t) for t in inputs)   # Gemini reports no count: the tokenizer's
    assert answer.usage.prompt_tokens == counted
    row = _log(admin, "gemini-embedding-001")
    assert row["usage_estimated"] and row["prompt_tokens"] == counted and row["channel"] == "gemini"
    assert _spent(admin, "alice") - before == _cost("gemini-embedding-001", counted) > 0


def test_gemini_embeddings_in_base64_are_little_endian_float32(text: Server) -> None:
    inputs = ["base64 alphabet check", "second"]
    raw = httpx.post(text.url + "/v1/embeddings", headers={"Authorization": "Bearer sk-text-alice-0001"},
                     json={"model": "gemini-embedding-001", "input": inputs, "encoding_format": "base64"}).json()
    packed = [d["embedding"] for d in raw["data"]]
    assert all(isinstance(p, str) for p in packed)
    assert any("+" in p for p in packed) and any("/" in p for p in packed)   # the standard alphabet
    for p, t in zip(packed, inputs, strict=True):
        data = base64.b64decode(p, validate=True)
        assert list(struct.unpack(f"<{len(data) // 4}f", data)) == _float32(vector(t, 3072))
    # and the SDK's default (base64, unpacked with numpy or array) gives the same floats
    answer = _client(text).embeddings.create(model="gemini-embedding-001", input=inputs)
    assert [d.embedding for d in answer.data] == [_float32(vector(t, 3072)) for t in inputs]


def test_bad_embedding_requests_are_400s_in_openai_shape(text: Server) -> None:
    admin = Admin(text.url)
    before = _spent(admin, "alice")
    http = httpx.Client(base_url=text.url, headers={"Authorization": "Bearer sk-text-alice-0001"})
    for body, param in (({"model": "text-embedding-3-small"}, "input"), ({"input": "x"}, "model"),
                        ({"model": "gemini-embedding-001", "input": [[1, 2]]}, "input"),
                        ({"model": "gemini-embedding-001", "input": ["a", ""]}, "input"),
                        ({"model": "gemini-embedding-001", "input": "a", "encoding_format": "int8"}, "encoding_format"),
                        ({"model": "gemini-embedding-001", "input": "a", "dimensions": 0}, "dimensions"),
                        ({"model": "gemini-embedding-001", "input": ["a"] * 101}, "input")):
        r = http.post("/v1/embeddings", json=body)
        assert r.status_code == 400, (body, r.text)
        error = r.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"] == param, (body, error)
    r = http.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "x", "encoding_format": "int8"})
    assert r.status_code == 400 and "encoding_format" in r.json()["error"]["message"]   # the upstream's own 400
    r = http.post("/v1/embeddings", json={"model": "gemini-embedding-001", "input": "x", "dimensions": 5000})
    # Gemini's words, in OpenAI's shape
    assert r.status_code == 400 and "outputDimensionality" in r.json()["error"]["message"]
    assert r.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError):
        _client(text).embeddings.create(model="no-such-embedder", input="x")
    with pytest.raises(openai.BadRequestError) as caught:   # served, but only by a kind without embeddings
        _client(text).embeddings.create(model="claude-sim-sonnet", input="x")
    assert caught.value.body["param"] == "model" and "(embeddings)" in caught.value.body["message"]
    assert _spent(admin, "alice") == before


def test_a_key_without_balance_cannot_embed(text: Server) -> None:
    with pytest.raises(openai.RateLimitError):
        _client(text, "sk-text-broke-0001").embeddings.create(model="gemini-embedding-001", input="x" * 400)
