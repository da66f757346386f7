"""The Responses API through the gateway with the official `openai` SDK (`client.responses`), over
every channel kind of the simulator (an OpenAI Responses channel: the fast path; OpenAI Chat,
Anthropic and Gemini channels: converted), streaming and not; and Chat / Anthropic / Gemini
clients reaching a model only a Responses channel serves (converted to Responses upstream)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from pydantic import BaseModel

from servers import Admin, Server, four_kinds_channels, start_gateway

PNG = base64.b64encode(bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                                     "1f15c4890000000d49444154789c6360f8cfc0000003010100c9fe92ef00"
                                     "00000049454e44ae426082")).decode()
MODELS = {"responses": "gpt-resp", "chat": "gpt-chat", "anthropic": "claude-sim-sonnet",
          "gemini": "gemini-3-pro-preview"}
WEATHER = {"type": "function", "name": "get_weather", "description": "weather of a city", "strict": False,
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def config(sim_url: str) -> str:
    return f"""
{four_kinds_channels(sim_url, "gpt-5-upstream")}
keys:
  - name: resp-user
    key: sk-resp-user-0001
prices:
  gpt-resp: {{input: 1.0, output: 2.0, cached_input: 0.5}}
  gpt-chat: {{input: 1.0, output: 2.0}}
  claude-sim-sonnet: {{input: 3.0, output: 15.0}}
  gemini-3-pro-preview: {{input: 2.0, output: 12.0, max_output: 64}}
"""


@pytest.fixture(scope="module")
def gw(sim: Server, workdir: Path) -> Iterator[Server]:
    server = start_gateway(config(sim.url), workdir, db_name="responses.db")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(gw: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-resp-user-0001", max_retries=0)


def _create(client: openai.OpenAI, stream: bool, **kw: Any) -> Any:
    """The final Response, through `responses.stream()` (which checks the event order) or `create`."""
    if not stream:
        return client.responses.create(**kw)
    with client.responses.stream(**kw) as events:
        seen = [e for e in events]
        final = events.get_final_response()
    numbers = [e.sequence_number for e in seen]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "sequence numbers count up by one"
    assert seen[0].type == "response.created" and seen[-1].type in ("response.completed", "response.incomplete")
    done = [e.item for e in seen if e.type == "response.output_item.done"]
    assert [i.id for i in done] == [i.id for i in final.output], "items done are the final items, same ids"
    return final


KINDS = list(MODELS)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("kind", KINDS)
def test_plain_text(client: openai.OpenAI, kind: str, stream: bool) -> None:
    r = _create(client, stream, model=MODELS[kind], input="Say hi [[sim:words=5]]", instructions="Be brief.")
    assert r.model == MODELS[kind]
    assert r.status == "completed"
    assert len(r.output_text.split()) == 5
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    assert r.usage.input_tokens_details.cached_tokens == 0
    assert r.usage.output_tokens_details.reasoning_tokens == 0


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("kind", KINDS)
def test_function_tool_loop_replaying_items(client: openai.OpenAI, kind: str, stream: bool) -> None:
    history: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = _create(client, stream, model=MODELS[kind], input=history, tools=[WEATHER], store=False)
    calls = [i for i in first.output if i.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments)["city"]
    history += [i.model_dump(exclude_none=True) for i in first.output]
    history.append({"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny, 21 C"})
    second = _create(client, stream, model=MODELS[kind], input=history, tools=[WEATHER], store=False)
    assert "sunny, 21 C" in second.output_text


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("kind", KINDS)
def test_reasoning_comes_back_and_is_restored_next_turn(client: openai.OpenAI, kind: str, stream: bool) -> None:
    """The upstream's signature (Anthropic thinking, Gemini thought, OpenAI encrypted reasoning) rides
    in encrypted_content; sent back with store false, the upstream verifies it (the simulator refuses a
    missing or altered one)."""
    kw: dict[str, Any] = {"model": MODELS[kind], "tools": [WEATHER], "store": False, "max_output_tokens": 8000,
                          "reasoning": {"effort": "medium", "summary": "auto"},
                          "include": ["reasoning.encrypted_content"]}
    history: list[Any] = [{"role": "user", "content": "Weather in Paris? Think first."}]
    first = _create(client, stream, input=history, **kw)
    reasoning = [i for i in first.output if i.type == "reasoning"]
    if kind != "chat":   # an OpenAI-compatible Chat upstream has no signature to give
        assert any(r.encrypted_content for r in reasoning)
    history += [i.model_dump(exclude_none=True) for i in first.output]
    call = next(i for i in first.output if i.type == "function_call")
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "sunny"})
    second = _create(client, stream, input=history, **kw)
    assert "sunny" in second.output_text
    if kind != "chat":
        tampered = [dict(i, encrypted_content=i["encrypted_content"][:-4] + "AAAA") if i.get("type") == "reasoning"
                    and i.get("encrypted_content") else i for i in history]
        with pytest.raises(openai.BadRequestError):
            _create(client, False, input=tampered, **kw)


class City(BaseModel):
    city: str


@pytest.mark.parametrize("kind", KINDS)
def test_json_schema_through_parse(client: openai.OpenAI, kind: str) -> None:
    r = client.responses.parse(model=MODELS[kind], input="A city as JSON", text_format=City)
    assert isinstance(r.output_parsed, City) and r.output_parsed.city
    with client.responses.stream(model=MODELS[kind], input="A city as JSON", text_format=City) as events:
        for _ in events:
            pass
        streamed = events.get_final_response()
    assert isinstance(streamed.output_parsed, City) and streamed.output_parsed.city


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("kind", KINDS)
def test_image_input(client: openai.OpenAI, sim: Server, kind: str, stream: bool) -> None:
    r = _create(client, stream, model=MODELS[kind], input=[{"role": "user", "content": [
        {"type": "input_text", "text": "What is this? [[sim:words=3]]"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"}]}])
    assert r.output_text
    assert PNG in httpx.get(sim.url + "/sim/requests").json()[-1]["body"]   # the image reached the upstream


def codex_request(model: str, history: list[Any]) -> dict[str, Any]:
    """The shape `@openai/codex` 0.171 sends (protocols.md §5.5): developer messages instead of
    instructions, client-made item ids, custom / tool_search / web_search / namespace tools."""
    return {
        "model": model, "stream": True, "store": False, "include": ["reasoning.encrypted_content"],
        "input": [{"type": "message", "id": "msg_0b1c", "role": "developer",
                   "content": [{"type": "input_text", "text": "You are Codex, a coding agent."}]}, *history],
        "prompt_cache_key": "0199-session", "client_metadata": {"originator": "codex_exec"},
        "text": {"verbosity": "low"}, "reasoning": {"effort": "medium", "summary": "auto"},
        "parallel_tool_calls": False, "tool_choice": "auto",
        "tools": [
            {"type": "custom", "name": "apply_patch", "description": "Apply a patch to files.",
             "format": {"type": "grammar", "syntax": "lark", "definition": 'start: "*** Begin Patch" /(.|\\n)*/'}},
            {"type": "function", "name": "shell", "description": "Run a command.", "strict": False,
             "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}},
            {"type": "tool_search", "execution": "client", "description": "Find more tools."},
            {"type": "web_search", "external_web_access": False},
            {"type": "namespace", "name": "mcp", "description": "MCP tools",
             "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}]},
        ],
    }


def _sse_items(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    items, types = [], []
    for block in text.split("\n\n"):
        data = next((line[5:].strip() for line in block.split("\n") if line.startswith("data:")), None)
        if data:
            event = json.loads(data)
            types.append(event["type"])
            if event["type"] == "response.output_item.done":
                items.append(event["item"])
    return items, types


@pytest.mark.parametrize("kind", KINDS)
def test_codex_shaped_requests(gw: Server, kind: str) -> None:
    """Nothing Codex sends is refused; a custom tool's call comes back as a custom_tool_call; the
    answer is built from output_item.done and ends on response.completed."""
    headers = {"Authorization": "Bearer sk-resp-user-0001", "originator": "codex_exec", "session-id": "0199",
               "x-codex-turn-metadata": "{}"}
    history: list[Any] = [{"type": "message", "id": "msg_1f2e", "role": "user",
                           "content": [{"type": "input_text", "text": "Fix the bug: apply a patch."}]}]
    body = codex_request(MODELS[kind], history)
    body["tool_choice"] = {"type": "custom", "name": "apply_patch"} if kind != "responses" else "auto"
    r = httpx.post(gw.url + "/v1/responses", json=body, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    items, types = _sse_items(r.text)
    assert types[0] == "response.created" and types[-1] == "response.completed"
    call = next(i for i in items if i["type"] == "custom_tool_call")
    assert call["name"] == "apply_patch" and isinstance(call["input"], str)
    if kind != "responses":
        assert "web_search" in r.headers["x-polyrelay-dropped"]
    history += items
    history.append({"type": "custom_tool_call_output", "call_id": call["call_id"], "output": "patched"})
    r2 = httpx.post(gw.url + "/v1/responses", json=codex_request(MODELS[kind], history), headers=headers, timeout=30)
    assert r2.status_code == 200, r2.text
    items2, types2 = _sse_items(r2.text)
    assert types2[-1] == "response.completed"
    assert any(i["type"] == "message" for i in items2)


@pytest.mark.parametrize("kind", ["chat"])   # Anthropic and Gemini search: tests/e2e/test_web_search.py
def test_forcing_web_search_where_no_channel_searches_is_refused(gw: Server, kind: str) -> None:
    body = {"model": MODELS[kind], "input": "news?", "tools": [{"type": "web_search"}],
            "tool_choice": {"type": "web_search"}}
    r = httpx.post(gw.url + "/v1/responses", json=body, headers={"Authorization": "Bearer sk-resp-user-0001"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "tool_choice"


def test_every_request_is_billed_and_logged(gw: Server, client: openai.OpenAI) -> None:
    admin = Admin(gw.url)
    r = client.responses.create(model="gpt-resp", input="Bill me [[sim:words=4,cached=2]]")
    row = admin.logs(1)[0]
    assert (row["model"], row["channel"], row["surface"]) == ("gpt-resp", "resp", "openai_responses")
    assert (row["prompt_tokens"], row["completion_tokens"], row["cached_tokens"]) == (
        r.usage.input_tokens, r.usage.output_tokens, 2)
    assert row["cost_micros"] > 0
    assert r.usage.input_tokens_details.cached_tokens == 2


def test_quota_sets_max_output_tokens(gw: Server, sim: Server) -> None:
    """A key with a small balance and no max_output_tokens: the reservation's cap goes upstream."""
    admin = Admin(gw.url)
    key = admin.create_key("resp-small", quota=0.0002)
    c = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    c.responses.create(model="gpt-resp", input="hi [[sim:words=3]]")
    sent = json.loads(httpx.get(sim.url + "/sim/requests").json()[-1]["body"])
    assert 16 <= sent["max_output_tokens"] < 4096


def test_input_tokens(client: openai.OpenAI) -> None:
    for model in MODELS.values():
        n = client.responses.input_tokens.count(model=model, input="How many tokens is this?")
        assert n.input_tokens > 0


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_other_clients_reach_a_responses_only_model(gw: Server, stream: bool) -> None:
    chat = openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-resp-user-0001", max_retries=0)
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in chat.chat.completions.create(
            model="gpt-resp", messages=[{"role": "user", "content": "hi [[sim:words=4]]"}], stream=True)
            if c.choices)
    else:
        text = chat.chat.completions.create(model="gpt-resp", messages=[
            {"role": "user", "content": "hi [[sim:words=4]]"}]).choices[0].message.content or ""
    assert len(text.split()) == 4
    claude = anthropic.Anthropic(base_url=gw.url, api_key="sk-resp-user-0001", max_retries=0)
    msg = claude.messages.create(model="gpt-resp", max_tokens=100, messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].text  # type: ignore[union-attr]
    g = genai.Client(api_key="sk-resp-user-0001", http_options={"base_url": gw.url})
    assert g.models.generate_content(model="gpt-resp", contents="hi").text


SDKS = ["openai", "anthropic", "gemini"]


def _sdk(name: str, gw: Server) -> Any:
    from sdk_clients import AnthropicClient, GeminiClient, OpenAIClient

    return {"openai": OpenAIClient, "anthropic": AnthropicClient, "gemini": GeminiClient}[name](
        gw.url, "sk-resp-user-0001")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("sdk", SDKS)
def test_other_clients_tool_and_thinking_loops_on_a_responses_channel(gw: Server, sim: Server, sdk: str,
                                                                     stream: bool) -> None:
    """Converted to Responses upstream: the call id comes back with the result, and the upstream's
    encrypted reasoning (with its item id) survives the client's own signature slot."""
    client = _sdk(sdk, gw)
    first, second = client.tool_round_trip("gpt-resp", stream)
    assert first.tool_calls and first.tool_calls[0][0] == "get_weather" and first.finish == "tool_calls"
    assert "sunny" in second.text
    first, second = client.thinking_round_trip("gpt-resp", stream)
    assert first.thinking and "sunny" in second.text
    replayed = json.loads(httpx.get(sim.url + "/sim/requests").json()[-1]["body"])["input"]
    reasoning = [i for i in replayed if i.get("type") == "reasoning"]
    assert reasoning and reasoning[0]["id"].startswith("rs_") and reasoning[0]["encrypted_content"]


@pytest.mark.parametrize("sdk", SDKS)
def test_other_clients_structured_output_and_images_on_a_responses_channel(gw: Server, sdk: str) -> None:
    client = _sdk(sdk, gw)
    assert json.loads(client.structured("gpt-resp").text)
    assert client.image("gpt-resp").text


def test_fast_path_passes_the_body_as_it_came(gw: Server, sim: Server) -> None:
    """A Responses client on a Responses channel: only the model is renamed; Codex's fields and
    headers reach the upstream as they were; the answer names the public model."""
    body = codex_request("gpt-resp", [{"type": "message", "id": "msg_1f2e", "role": "user",
                                       "content": [{"type": "input_text", "text": "hello [[sim:words=3]]"}]}])
    headers = {"Authorization": "Bearer sk-resp-user-0001", "originator": "codex_exec", "session-id": "0199",
               "x-codex-turn-metadata": '{"turn": 1}'}
    r = httpx.post(gw.url + "/v1/responses", json=body, headers=headers, timeout=30)
    assert r.status_code == 200 and "x-polyrelay-dropped" not in r.headers
    seen = httpx.get(sim.url + "/sim/requests").json()[-1]
    sent = json.loads(seen["body"])
    assert sent == {**body, "model": "gpt-5-upstream"}
    assert seen["path"] == "/v1/responses" and seen["headers"]["authorization"] == "Bearer sk-up-resp"
    assert seen["headers"]["originator"] == "codex_exec" and seen["headers"]["x-codex-turn-metadata"] == '{"turn": 1}'
    assert '"model":"gpt-5-upstream"' not in r.text and '"model":"gpt-resp"' in r.text
    whole = httpx.post(gw.url + "/v1/responses", json={**body, "stream": False}, headers=headers, timeout=30)
    assert whole.json()["model"] == "gpt-resp"


FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("turn", [1, 2])
@pytest.mark.parametrize("kind", KINDS)
def test_recorded_codex_requests(gw: Server, sim: Server, kind: str, turn: int) -> None:
    """Requests the real `@openai/codex` 0.171 CLI sent through the gateway (`codex exec`, a custom
    provider with wire_api "responses"; long texts replaced): the first turn, and the second with the
    reasoning item, the function call and its output replayed, `store: false`. Every channel kind
    answers; the answer ends on response.completed with its items in output_item.done."""
    body = json.loads((FIXTURES / f"codex-0.171-turn{turn}.json").read_text())
    body["model"] = MODELS[kind]
    headers = {"Authorization": "Bearer sk-resp-user-0001",
               **json.loads((FIXTURES / "codex-0.171-headers.json").read_text())}
    r = httpx.post(gw.url + "/v1/responses", json=body, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    items, types = _sse_items(r.text)
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed"
    assert items
    upstream = json.loads(httpx.get(sim.url + "/sim/requests").json()[-1]["body"])
    if kind == "responses":
        assert upstream == {**body, "model": "gpt-5-upstream"}   # the fast path: as it came
    else:
        assert "web_search" in r.headers["x-polyrelay-dropped"]
    if turn == 2:
        assert any(i["type"] == "message" for i in items)   # the tool's output answered


@pytest.mark.parametrize("kind", KINDS)
def test_a_stream_cut_upstream_ends_in_an_error_the_client_sees(gw: Server, kind: str) -> None:
    body = {"model": MODELS[kind], "input": "long answer [[sim:words=30,cut=6]]", "stream": True}
    r = httpx.post(gw.url + "/v1/responses", json=body, headers={"Authorization": "Bearer sk-resp-user-0001"},
                   timeout=30)
    _, types = _sse_items(r.text)
    assert "response.completed" not in types and "error" in types
    if kind != "responses":   # converted: the encoder closes the response it opened
        assert types[-1] == "response.failed"
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-resp-user-0001", max_retries=0)
    seen = []
    # the SDK's own words for a failed stream
    with (pytest.raises(RuntimeError, match=r"response\.completed"),
          client.responses.stream(model=MODELS[kind], input="long answer [[sim:words=30,cut=6]]") as events):
        seen = [e.type for e in events]
        events.get_final_response()
    assert "error" in seen


ECHOED = {"instructions": "Answer in one line.", "tools": [WEATHER], "tool_choice": "none",
          "parallel_tool_calls": False, "temperature": 0.25, "top_p": 0.5, "max_output_tokens": 300,
          "text": {"format": {"type": "text"}, "verbosity": "medium"}, "reasoning": {"effort": "low"},
          "metadata": {"ticket": "T-7", "team": "ops"}, "store": False, "truncation": "disabled"}


def _echoed(r: Any) -> dict[str, Any]:
    return {"instructions": r.instructions, "tools": [t.model_dump(exclude_none=True) for t in r.tools],
            "tool_choice": r.tool_choice, "parallel_tool_calls": r.parallel_tool_calls,
            "temperature": r.temperature, "top_p": r.top_p, "max_output_tokens": r.max_output_tokens,
            "text": r.text.model_dump(exclude_none=True), "effort": r.reasoning.effort, "metadata": r.metadata,
            "store": r.store, "truncation": r.truncation, "previous_response_id": r.previous_response_id}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("kind", ["anthropic", "chat", "gemini"])
def test_converted_answers_echo_the_request_fields(client: openai.OpenAI, kind: str, stream: bool) -> None:
    """The Response repeats what the client asked for, as OpenAI's does: in the whole answer and in
    the stream's created / in_progress / completed objects."""
    want = {**{k: v for k, v in ECHOED.items() if k != "reasoning"}, "effort": "low", "previous_response_id": None}
    if not stream:
        r = client.responses.create(model=MODELS[kind], input="Weather? [[sim:words=3]]", **ECHOED)
        assert _echoed(r) == want
        return
    with client.responses.stream(model=MODELS[kind], input="Weather? [[sim:words=3]]", **ECHOED) as events:
        carried = [e.response for e in events if e.type in ("response.created", "response.in_progress")]
        final = events.get_final_response()
    assert len(carried) == 2
    for r in [*carried, final]:
        assert _echoed(r) == want


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_converted_answers_echo_the_api_defaults(client: openai.OpenAI, stream: bool) -> None:
    r = _create(client, stream, model=MODELS["anthropic"], input="Hi [[sim:words=2]]")
    assert _echoed(r) == {"instructions": None, "tools": [], "tool_choice": "auto", "parallel_tool_calls": True,
                          "temperature": 1.0, "top_p": 1.0, "max_output_tokens": None,
                          "text": {"format": {"type": "text"}}, "effort": None, "metadata": {}, "store": True,
                          "truncation": "disabled", "previous_response_id": None}
