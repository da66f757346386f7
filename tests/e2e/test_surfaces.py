"""The Anthropic and Gemini surfaces: auth headers, model lists, count_tokens, error shapes."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from servers import Server


def claude(gateway: Server, key: str = "sk-alice-0001") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)


def gemini(gateway: Server, key: str = "sk-alice-0001") -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=gateway.url))


def test_each_sdk_lists_exactly_the_models_its_key_may_use(gateway: Server) -> None:
    everything = {m.id for m in claude(gateway).models.list()}
    assert {"claude-sim-sonnet", "gpt-4o-mini", "gemini-2.5-flash"} <= everything
    assert [m.id for m in claude(gateway, "sk-restricted-0001").models.list()] == ["gpt-4o-mini"]
    client, restricted = gemini(gateway), gemini(gateway, "sk-restricted-0001")  # keep them: a dropped
    names = {m.name for m in client.models.list()}                                 # genai Client closes
    assert {"models/gemini-2.5-flash", "models/claude-sim-sonnet"} <= names
    assert [m.name for m in restricted.models.list()] == ["models/gpt-4o-mini"]
    raw = httpx.get(gateway.url + "/v1beta/models", params={"key": "sk-restricted-0001"})
    assert raw.json()["models"][0]["name"] == "models/gpt-4o-mini"


def test_anthropic_surface_takes_x_api_key_any_version_and_beta_query(gateway: Server) -> None:
    r = httpx.post(gateway.url + "/v1/messages?beta=true",
                   headers={"x-api-key": "sk-alice-0001", "anthropic-version": "2023-06-01"},
                   json={"model": "claude-sim-sonnet", "max_tokens": 50,
                         "messages": [{"role": "user", "content": "hi [[sim:words=2]]"}]})
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"] == "the quick" and r.json()["model"] == "claude-sim-sonnet"


def test_anthropic_beta_header_reaches_an_anthropic_channel(gateway: Server, sim_http: httpx.Client) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key="sk-alice-0001", max_retries=0)
    reply = client.messages.create(model="claude-sim-sonnet", max_tokens=50,
                                   messages=[{"role": "user", "content": "hi [[sim:words=2]]"}],
                                   extra_headers={"anthropic-beta":
                                                  "context-1m-2025-08-07,interleaved-thinking-2025-05-14"})
    assert reply.content[0].text == "the quick"
    sent = sim_http.get("/sim/requests").json()[-1]
    assert sent["headers"].get("anthropic-beta") == "context-1m-2025-08-07,interleaved-thinking-2025-05-14"
    assert sent["headers"]["x-api-key"] != "sk-alice-0001", "the channel's own key goes upstream"


def test_anthropic_errors_come_in_anthropic_shape(gateway: Server) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        claude(gateway, "sk-wrong").messages.create(model="claude-sim-sonnet", max_tokens=5,
                                                    messages=[{"role": "user", "content": "x"}])
    r = httpx.post(gateway.url + "/v1/messages", headers={"x-api-key": "sk-alice-0001"}, content=b"{oops")
    assert r.status_code == 400 and r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.NotFoundError):
        claude(gateway).messages.create(model="nope", max_tokens=5, messages=[{"role": "user", "content": "x"}])


def test_gemini_errors_come_in_google_shape(gateway: Server) -> None:
    client = gemini(gateway, "sk-wrong")
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert caught.value.code == 401
    r = httpx.post(gateway.url + "/v1beta/models/gemini-2.5-flash:generateContent",
                   headers={"x-goog-api-key": "sk-alice-0001"}, content=b"[1,2")
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_gemini_stream_without_alt_sse_is_a_json_array(gateway: Server) -> None:
    for model in ("gemini-2.5-flash", "gpt-4o-mini"):
        r = httpx.post(f"{gateway.url}/v1beta/models/{model}:streamGenerateContent", params={"key": "sk-alice-0001"},
                       json={"contents": [{"role": "user", "parts": [{"text": "hi [[sim:words=3]]"}]}]})
        assert r.status_code == 200, r.text
        chunks = json.loads(r.text)
        text = "".join(p.get("text", "") for c in chunks for cand in c.get("candidates", [])
                       for p in cand["content"].get("parts", []))
        assert text == "the quick brown"


@pytest.mark.parametrize("model", ["claude-sim-sonnet", "gpt-4o-mini", "gemini-2.5-flash", "gpt-resp-mini"])
def test_count_tokens_on_both_surfaces(gateway: Server, model: str) -> None:
    n = claude(gateway).messages.count_tokens(model=model, messages=[{"role": "user", "content": "hello world " * 20}])
    assert n.input_tokens > 10
    client = gemini(gateway)
    g = client.models.count_tokens(model=model, contents="hello world " * 20)
    assert g.total_tokens > 10


def test_each_sdk_gets_one_model_in_its_own_shape(gateway: Server) -> None:
    assert claude(gateway).models.retrieve("gemini-2.5-flash").id == "gemini-2.5-flash"
    client = gemini(gateway)
    assert client.models.get(model="claude-sim-sonnet").name == "models/claude-sim-sonnet"
    with pytest.raises(anthropic.NotFoundError):
        claude(gateway, "sk-restricted-0001").models.retrieve("gemini-2.5-flash")
