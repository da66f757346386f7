"""Web search on `POST /v1/responses` with the official `openai` SDK over real HTTP, on every channel
kind of the simulator: an OpenAI Responses channel (the fast path, the tool passed through), Anthropic
(`web_search_20250305`, its server_tool_use / web_search_tool_result blocks and text citations) and
Gemini (Google Search grounding), streaming and not; an OpenAI Chat channel, which cannot search
(a forced search is a 400, an offered one is left out and reported); `per_search` billed exactly,
counted from each upstream's own report, on the convert path and on the fast paths."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types as gtypes

from polyrelay.sim import search
from servers import Admin, Server, four_kinds_channels, start_gateway

MODELS = {"responses": "gpt-resp", "chat": "gpt-chat", "anthropic": "claude-sim-sonnet",
          "gemini": "gemini-3-pro-preview"}
KEY = "sk-search-user-0001"
# USD per 1M tokens and per search: the search price is far above a few tokens' worth
PRICES = {"gpt-resp": (1.0, 2.0, 0.01), "gpt-chat": (1.0, 2.0, 0.01), "claude-sim-sonnet": (3.0, 15.0, 0.01),
          "gemini-3-pro-preview": (2.0, 12.0, 0.035)}
ASK = "Coffee in Zürich and Tokyo? [[sim:search]]"


def config(sim_url: str) -> str:
    prices = "\n".join(f"  {m}: {{input: {i}, output: {o}, per_search: {s}}}" for m, (i, o, s) in PRICES.items())
    return f"""
{four_kinds_channels(sim_url, "gpt-5-upstream")}
keys:
  - name: search-user
    key: {KEY}
prices:
{prices}
"""


@pytest.fixture(scope="module")
def gw(sim: Server, workdir: Path) -> Iterator[Server]:
    server = start_gateway(config(sim.url), workdir, db_name="web_search.db")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(gw: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY, max_retries=0)


def _upstream(sim: Server) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(httpx.get(sim.url + "/sim/requests").json()[-1]["body"])
    return body


def _cost(model: str, row: dict[str, Any], searches: int) -> int:
    """What polyrelay must charge: tokens at the model's rates (rounded half up once) plus each search."""
    i, o, s = PRICES[model]
    pico = row["prompt_tokens"] * round(i * 1e6) + row["completion_tokens"] * round(o * 1e6)
    return (pico + 500_000) // 1_000_000 + searches * round(s * 1e6)


def _check_answer(output: list[Any], kind: str, stream: bool) -> None:
    """One completed web_search_call and one message whose url_citation annotations cover the cited
    sentences exactly, in characters of the final text (the text is multi-byte: bytes would not)."""
    searches = [o for o in output if o.type == "web_search_call"]
    messages = [o for o in output if o.type == "message"]
    assert len(searches) == 1 and len(messages) == 1, [o.type for o in output]
    call = searches[0]
    assert call.status == "completed" and call.action.type == "search"
    if kind != "responses":   # the fast path gives the upstream's item as it came
        assert call.action.query == search.query_of(ASK)
    if not (kind == "gemini" and stream):   # Gemini grounds at the end of its stream: the call comes after
        assert output.index(call) < output.index(messages[0])
    text = messages[0].content[0].text
    assert text == search.ANSWER
    got = [(a.type, a.url, a.title, text[a.start_index:a.end_index]) for a in messages[0].content[0].annotations]
    want = [("url_citation", search.RESULTS[r].url, search.RESULTS[r].title, seg) for seg, r in search.SEGMENTS
            if r >= 0]
    assert got == want


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("kind", ["responses", "anthropic", "gemini"])
def test_web_search_answer_with_citations(gw: Server, sim: Server, client: openai.OpenAI, kind: str,
                                          stream: bool) -> None:
    model = MODELS[kind]
    tools: Any = [{"type": "web_search"}]
    if stream:
        with client.responses.stream(model=model, input=ASK, tools=tools) as s:
            events = [e.type for e in s]
            final = s.get_final_response()
        steps = [e for e in events if e.startswith("response.web_search_call.")]
        assert steps == ["response.web_search_call.in_progress", "response.web_search_call.searching",
                         "response.web_search_call.completed"]
        assert events.count("response.output_text.annotation.added") == 2
        assert events[-1] == "response.completed"
    else:
        final = client.responses.create(model=model, input=ASK, tools=tools)
    assert final.model == model
    _check_answer(final.output, kind, stream)
    upstream = _upstream(sim)
    if kind == "anthropic":
        assert {"type": "web_search_20250305", "name": "web_search"} in upstream["tools"]
    elif kind == "gemini":
        assert upstream["tools"] == [{"googleSearch": {}}]
    else:
        assert upstream["tools"] == tools   # the fast path: as it came
    row = Admin(gw.url).logs(1)[0]
    assert row["model"] == model and row["status"] == 200
    assert row["cost_micros"] == row["charged_micros"] == _cost(model, row, 1)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_forced_search_where_the_channel_cannot_search_is_refused(gw: Server, client: openai.OpenAI,
                                                                    stream: bool) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODELS["chat"], input="news?", tools=[{"type": "web_search"}],
                                tool_choice={"type": "web_search"}, stream=stream)
    assert caught.value.status_code == 400 and caught.value.param == "tool_choice"
    assert "web search" in caught.value.message


def test_an_offered_search_where_the_channel_cannot_search_is_left_out(gw: Server, sim: Server) -> None:
    body = {"model": MODELS["chat"], "input": ASK, "tools": [{"type": "web_search_preview"}]}
    r = httpx.post(gw.url + "/v1/responses", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200, r.text
    assert "web_search: dropped (OpenAI Chat channels cannot search the web)" in r.headers["x-polyrelay-dropped"]
    assert "tools" not in _upstream(sim)
    assert [o["type"] for o in r.json()["output"]] == ["message"]
    row = Admin(gw.url).logs(1)[0]
    assert row["cost_micros"] == _cost(MODELS["chat"], row, 0)


def test_a_forced_search_on_anthropic_is_forced_upstream(gw: Server, sim: Server, client: openai.OpenAI) -> None:
    """No `[[sim:search]]`: the simulated Claude searches because tool_choice names the tool."""
    final = client.responses.create(model=MODELS["anthropic"], input="Coffee?", tools=[{
        "type": "web_search", "user_location": {"type": "approximate", "city": "Zürich", "country": "CH"},
        "filters": {"allowed_domains": ["example.org", "example.jp"]}}], tool_choice={"type": "web_search"})
    assert [o.type for o in final.output] == ["web_search_call", "message"]
    upstream = _upstream(sim)
    assert upstream["tool_choice"] == {"type": "tool", "name": "web_search"}
    assert upstream["tools"] == [{"type": "web_search_20250305", "name": "web_search",
                                  "allowed_domains": ["example.org", "example.jp"],
                                  "user_location": {"type": "approximate", "city": "Zürich", "country": "CH"}}]


def test_gemini_keeps_function_tools_over_search(gw: Server, sim: Server) -> None:
    """Gemini refuses Google Search beside function declarations: the functions win, reported."""
    weather = {"type": "function", "name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    body = {"model": MODELS["gemini"], "input": ASK, "tools": [weather, {"type": "web_search"}]}
    r = httpx.post(gw.url + "/v1/responses", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200, r.text
    assert "web_search: dropped (Gemini cannot combine" in r.headers["x-polyrelay-dropped"]
    assert [list(t) for t in _upstream(sim)["tools"]] == [["functionDeclarations"]]
    types = [o["type"] for o in r.json()["output"]]
    assert "function_call" in types and "web_search_call" not in types


def test_codex_cached_only_search_is_left_out(gw: Server, sim: Server) -> None:
    """Codex's `external_web_access: false` asks for OpenAI's cached index, which no other provider has."""
    body = {"model": MODELS["anthropic"], "input": ASK, "tools": [{"type": "web_search", "external_web_access": False}]}
    r = httpx.post(gw.url + "/v1/responses", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200, r.text
    assert "tools[0] (web_search): dropped (external_web_access: false" in r.headers["x-polyrelay-dropped"]
    assert "tools" not in _upstream(sim)


def test_anthropic_fast_path_bills_its_searches(gw: Server) -> None:
    """An Anthropic client on an Anthropic channel: the bytes pass, the search is counted from
    `usage.server_tool_use.web_search_requests`."""
    claude = anthropic.Anthropic(base_url=gw.url, api_key=KEY, max_retries=0)
    msg = claude.messages.create(model=MODELS["anthropic"], max_tokens=200, messages=[{"role": "user", "content": ASK}],
                                 tools=[{"type": "web_search_20250305", "name": "web_search"}])
    assert [b.type for b in msg.content][:2] == ["server_tool_use", "web_search_tool_result"]
    assert msg.usage.server_tool_use is not None and msg.usage.server_tool_use.web_search_requests == 1
    row = Admin(gw.url).logs(1)[0]
    assert row["cost_micros"] == _cost(MODELS["anthropic"], row, 1)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_gemini_fast_path_bills_one_search_per_grounded_answer(gw: Server, stream: bool) -> None:
    g = genai.Client(api_key=KEY, http_options=gtypes.HttpOptions(base_url=gw.url))
    config = gtypes.GenerateContentConfig(tools=[gtypes.Tool(google_search=gtypes.GoogleSearch())])
    if stream:
        chunks = list(g.models.generate_content_stream(model=MODELS["gemini"], contents=ASK, config=config))
        text = "".join(c.text or "" for c in chunks)
        meta = chunks[-1].candidates[0].grounding_metadata
    else:
        answer = g.models.generate_content(model=MODELS["gemini"], contents=ASK, config=config)
        text, meta = answer.text or "", answer.candidates[0].grounding_metadata
    assert text == search.ANSWER
    assert meta is not None and meta.web_search_queries == [search.query_of(ASK)]
    row = Admin(gw.url).logs(1)[0]
    assert row["cost_micros"] == _cost(MODELS["gemini"], row, 1)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("kind", ["responses", "anthropic", "gemini"])
def test_chat_client_web_search_options_get_annotations(gw: Server, client: openai.OpenAI, kind: str,
                                                        stream: bool) -> None:
    """A Chat client's `web_search_options` searches on every channel kind that can (converted: a Chat
    client is never on the fast path to these); the whole answer carries `url_citation` annotations
    in characters, as OpenAI's search models give them; a stream carries the text (no annotations)."""
    model = MODELS[kind]
    if stream:
        chunks = list(client.chat.completions.create(model=model, messages=[{"role": "user", "content": ASK}],
                                                     web_search_options={}, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == search.ANSWER
    else:
        answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": ASK}],
                                                web_search_options={"search_context_size": "low"})
        message = answer.choices[0].message
        assert message.content == search.ANSWER
        got = [(a.type, a.url_citation.url, message.content[a.url_citation.start_index:a.url_citation.end_index])
               for a in message.annotations or []]
        assert got == [("url_citation", search.RESULTS[r].url, seg) for seg, r in search.SEGMENTS if r >= 0]
    row = Admin(gw.url).logs(1)[0]
    assert row["cost_micros"] == _cost(model, row, 1)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_failed_search_is_a_failed_call_and_not_billed(gw: Server, client: openai.OpenAI, stream: bool) -> None:
    """Anthropic's web_search_tool_result_error: the call is `failed` (no `.completed` event), the
    model's answer still comes, and no search is billed (Anthropic counts none)."""
    ask = "Coffee? [[sim:search,search_error]]"
    if stream:
        with client.responses.stream(model=MODELS["anthropic"], input=ask, tools=[{"type": "web_search"}]) as s:
            events = [e.type for e in s]
            final = s.get_final_response()
        assert "response.web_search_call.searching" in events
        assert "response.web_search_call.completed" not in events
    else:
        final = client.responses.create(model=MODELS["anthropic"], input=ask, tools=[{"type": "web_search"}])
    assert [(o.type, getattr(o, "status", None)) for o in final.output] == [
        ("web_search_call", "failed"), ("message", "completed")]
    assert final.output_text.startswith("The search failed")
    row = Admin(gw.url).logs(1)[0]
    assert row["cost_micros"] == _cost(MODELS["anthropic"], row, 0)
