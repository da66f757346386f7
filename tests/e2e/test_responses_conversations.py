"""Conversations on the Responses API with `previous_response_id`, over every channel kind, with the
official openai SDK against the gateway and the simulator: a function-tool loop continued turn by turn
(the gateway rebuilds the earlier turns, the call a `function_call_output` answers included, before
converting), stored responses read back, listed and deleted, another key refused, ids the gateway never
saw passed on only to an OpenAI Responses channel, `store: false` keeping nothing, and a restart
keeping stored responses (SQLite and Postgres). The rules: docs/responses.md."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from servers import Server, four_kinds_channels, start_gateway

MODELS = {"responses": "gpt-resp", "chat": "gpt-chat", "anthropic": "claude-sim-sonnet",
          "gemini": "gemini-3-pro-preview"}
KINDS = list(MODELS)
WEATHER = {"type": "function", "name": "get_weather", "description": "weather of a city", "strict": False,
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
ALICE, BOB = "sk-conv-alice-0001", "sk-conv-bob-0001"


def config(sim_url: str) -> str:
    return f"""
{four_kinds_channels(sim_url)}
keys:
  - name: alice
    key: {ALICE}
  - name: bob
    key: {BOB}
prices:
  gpt-resp: {{input: 1.0, output: 2.0}}
  gpt-chat: {{input: 1.0, output: 2.0}}
  claude-sim-sonnet: {{input: 3.0, output: 15.0}}
  gemini-3-pro-preview: {{input: 2.0, output: 12.0}}
"""


@pytest.fixture(scope="module")
def gw(sim: Server, workdir: Path) -> Iterator[Server]:
    server = start_gateway(config(sim.url), workdir, db_name="conversations.db")
    yield server
    server.stop()


def sdk(server: Server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def create(client: openai.OpenAI, stream: bool, **kw: Any) -> Any:
    if not stream:
        return client.responses.create(**kw)
    with client.responses.stream(**kw) as events:
        for _ in events:
            pass
        return events.get_final_response()


def tool_loop(client: openai.OpenAI, model: str, stream: bool) -> tuple[Any, Any, Any]:
    """Three turns, each sending only what is new: the question, the tool's output, a follow-up."""
    first = create(client, stream, model=model, input="Weather in Paris?", tools=[WEATHER])
    calls = [i for i in first.output if i.type == "function_call"]
    assert len(calls) == 1 and json.loads(calls[0].arguments)["city"]
    # the upstream needs the call this output answers (the simulators refuse an orphan output, as the
    # real APIs do): only the gateway can put it back
    second = create(client, stream, model=model, previous_response_id=first.id, tools=[WEATHER],
                    input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny, 21 C"}])
    assert second.output_text and not [i for i in second.output if i.type == "function_call"]
    third = create(client, stream, model=model, previous_response_id=second.id, input="Thanks! [[sim:words=3]]")
    assert len(third.output_text.split()) == 3
    return first, second, third


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_function_tool_loop_continues_with_previous_response_id(gw: Server, kind: str, stream: bool) -> None:
    alice = sdk(gw, ALICE)
    first, second, third = tool_loop(alice, MODELS[kind], stream)
    # each turn's prompt holds the turns before it
    assert first.usage.input_tokens < second.usage.input_tokens < third.usage.input_tokens
    assert (alice.responses.retrieve(second.id).output_text, alice.responses.retrieve(third.id).previous_response_id) \
        == (second.output_text, second.id)
    if kind != "responses":   # a converted answer repeats the id it continues, as OpenAI's does (whole and stream)
        assert [r.previous_response_id for r in (first, second, third)] == [None, first.id, second.id]
    # (a reasoning item, where the model thinks, comes back too: Gemini's thought signature rides in it)
    items = [i for i in alice.responses.input_items.list(third.id, order="asc") if i.type != "reasoning"]
    assert [i.type for i in items] == ["message", "function_call", "function_call_output", "message", "message"]
    assert [getattr(i, "role", None) for i in items] == ["user", None, None, "assistant", "user"]
    assert items[1].call_id == items[2].call_id   # type: ignore[union-attr]


@pytest.mark.parametrize("kind", KINDS)
def test_a_stored_response_is_read_back_and_deleted_and_another_key_is_refused(gw: Server, kind: str) -> None:
    alice, bob = sdk(gw, ALICE), sdk(gw, BOB)
    made = alice.responses.create(model=MODELS[kind], input="Remember this [[sim:words=4]]")
    back = alice.responses.retrieve(made.id)
    assert (back.id, back.model, back.output_text, back.usage.output_tokens) == (
        made.id, MODELS[kind], made.output_text, made.usage.output_tokens)
    for refused in (lambda: bob.responses.retrieve(made.id), lambda: bob.responses.input_items.list(made.id),
                    lambda: bob.responses.delete(made.id)):
        with pytest.raises(openai.NotFoundError):
            refused()
    # nor can another key continue it, not even on the Responses channel that would accept an id it
    # issued: the gateway knows whose it is
    for model in MODELS.values():
        with pytest.raises(openai.NotFoundError) as caught:
            bob.responses.create(model=model, previous_response_id=made.id, input="what did alice say?")
        assert caught.value.body["code"] == "previous_response_not_found"   # type: ignore[index]
        assert caught.value.body["param"] == "previous_response_id"   # type: ignore[index]
    assert alice.responses.retrieve(made.id).id == made.id   # bob's delete changed nothing
    alice.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        alice.responses.retrieve(made.id)
    if kind == "responses":   # now an id the gateway does not know: left to the upstream that issued it
        assert alice.responses.create(model=MODELS[kind], previous_response_id=made.id, input="go on").output_text
    else:
        with pytest.raises(openai.NotFoundError):
            alice.responses.create(model=MODELS[kind], previous_response_id=made.id, input="go on")


def test_an_id_the_gateway_never_saw_goes_only_to_a_responses_channel(gw: Server) -> None:
    alice = sdk(gw, ALICE)
    for kind in ("chat", "anthropic", "gemini"):
        with pytest.raises(openai.NotFoundError) as caught:
            alice.responses.create(model=MODELS[kind], previous_response_id="resp_made_elsewhere", input="hi")
        assert "resp_made_elsewhere" in caught.value.message
    # the Responses upstream gets the request as sent (the simulator keeps no state: it answers)
    passed = alice.responses.create(model=MODELS["responses"], previous_response_id="resp_made_elsewhere",
                                    input="hi [[sim:words=2]]")
    assert len(passed.output_text.split()) == 2


def test_input_tokens_count_the_whole_conversation(gw: Server) -> None:
    alice, bob = sdk(gw, ALICE), sdk(gw, BOB)
    for model in MODELS.values():
        made = alice.responses.create(model=model, input="a long question about the weather " * 40)
        alone = alice.responses.input_tokens.count(model=model, input="and then?")
        whole = alice.responses.input_tokens.count(model=model, input="and then?", previous_response_id=made.id)
        assert whole.input_tokens > alone.input_tokens + 100, model
        with pytest.raises(openai.NotFoundError):
            bob.responses.input_tokens.count(model=model, input="and then?", previous_response_id=made.id)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_store_false_keeps_nothing(gw: Server, stream: bool) -> None:
    alice = sdk(gw, ALICE)
    for model in MODELS.values():
        made = create(alice, stream, model=model, input="forget me", store=False)
        with pytest.raises(openai.NotFoundError):
            alice.responses.retrieve(made.id)


@pytest.mark.slow
def test_stored_responses_survive_a_restart_and_continue(  # type: ignore[no-untyped-def]
        sim: Server, new_database_url, tmp_path: Path) -> None:
    url = new_database_url("conversations")
    server = start_gateway(config(sim.url), tmp_path, database_url=url)
    try:
        made = {kind: tool_loop(sdk(server, ALICE), model, kind == "anthropic")[1] for kind, model in MODELS.items()}
    finally:
        server.stop()
    again = start_gateway(config(sim.url), tmp_path, database_url=url)
    try:
        alice, bob = sdk(again, ALICE), sdk(again, BOB)
        for kind, second in made.items():
            assert alice.responses.retrieve(second.id).output_text == second.output_text
            later = alice.responses.create(model=MODELS[kind], previous_response_id=second.id,
                                           input="More? [[sim:words=2]]")
            assert len(later.output_text.split()) == 2 and later.usage.input_tokens > second.usage.input_tokens
            with pytest.raises(openai.NotFoundError):
                bob.responses.retrieve(second.id)
    finally:
        again.stop()
