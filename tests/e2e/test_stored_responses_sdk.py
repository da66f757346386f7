"""GET /v1/responses/{id}, GET /v1/responses/{id}/input_items and DELETE /v1/responses/{id} over real
HTTP with the official openai SDK, on SQLite and on Postgres: responses put in the store through its
own API (as `remember` writes them) are read back, listed page by page, deleted; another key gets
404 for all three; a restart keeps them. (How they get stored by POST /v1/responses: the unit tests
in tests/unit/relay/test_stored_responses.py and, with the route, the end-to-end loop tests.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import openai
import pytest

from polyrelay.relay.stored_responses import stored_row
from polyrelay.store.db import create_engine
from polyrelay.store.keys import find_by_hash, hash_key
from polyrelay.store.responses import insert_responses
from servers import Server, free_port, start_gateway

pytestmark = pytest.mark.slow

ALICE, BOB = "sk-alice-responses-1", "sk-bob-responses-1"
DAY = 86400


def config() -> str:
    return f"""
channels:
  - name: nowhere
    base_url: http://127.0.0.1:{free_port()}/v1
    api_keys: [sk-up-nowhere]
    models: [gpt-4o-mini]
keys:
  - name: alice
    key: {ALICE}
  - name: bob
    key: {BOB}
prices:
  gpt-4o-mini: {{input: 0.15, output: 0.60}}
"""


def response(rid: str, output: list[dict[str, Any]]) -> bytes:
    return msgspec.json.encode({
        "id": rid, "object": "response", "created_at": 1_760_000_000, "status": "completed",
        "model": "gpt-4o-mini", "output": output, "instructions": None, "tools": [], "parallel_tool_calls": True,
        "tool_choice": "auto", "previous_response_id": None,
        "usage": {"input_tokens": 30, "output_tokens": 9, "total_tokens": 39,
                  "input_tokens_details": {"cached_tokens": 4}, "output_tokens_details": {"reasoning_tokens": 0}}})


CALL = {"type": "function_call", "id": "fc_e2e", "call_id": "call_1", "name": "get_weather",
        "arguments": '{"city": "Paris"}', "status": "completed"}
ANSWER = {"type": "message", "id": "msg_e2e", "role": "assistant", "status": "completed",
          "content": [{"type": "output_text", "text": "It is 21 C in Paris.", "annotations": []}]}


async def _put(url: str) -> None:
    """A two-turn tool loop for alice, and one response of hers already past its retention."""
    engine = create_engine(url)
    try:
        alice = await find_by_hash(engine, hash_key(ALICE))
        assert alice is not None
        now = int(time.time())
        turn1 = {"model": "gpt-4o-mini", "input": "Weather in Paris?", "instructions": "Be brief.",
                 "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]}
        turn2 = {"model": "gpt-4o-mini", "previous_response_id": "resp_e2e_1",
                 "input": [{"type": "function_call_output", "call_id": "call_1", "output": "21 C"}]}
        rows = [stored_row(alice.id, msgspec.json.encode(turn1), response("resp_e2e_1", [CALL]), now, 30 * DAY),
                stored_row(alice.id, msgspec.json.encode(turn2), response("resp_e2e_2", [ANSWER]), now, 30 * DAY),
                stored_row(alice.id, msgspec.json.encode({"model": "gpt-4o-mini", "input": "old"}),
                           response("resp_e2e_old", [ANSWER]), now - 31 * DAY, 30 * DAY)]
        await insert_responses(engine, [row for row in rows if row is not None])
    finally:
        await engine.dispose()


@pytest.fixture
def stored(new_database_url, tmp_path: Path) -> Iterator[tuple[Server, str]]:  # type: ignore[no-untyped-def]
    url = new_database_url("responses")
    server = start_gateway(config(), tmp_path, database_url=url)
    try:
        asyncio.run(_put(url))
        yield server, url
    finally:
        server.stop()


def sdk(server: Server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def test_a_stored_response_is_read_back_listed_and_deleted_by_its_key_only(
        stored: tuple[Server, str], tmp_path: Path) -> None:
    server, url = stored
    alice, bob = sdk(server, ALICE), sdk(server, BOB)

    got = alice.responses.retrieve("resp_e2e_2")
    assert (got.id, got.status, got.model, got.output_text) == ("resp_e2e_2", "completed", "gpt-4o-mini",
                                                                "It is 21 C in Paris.")
    assert got.previous_response_id == "resp_e2e_1"
    assert got.usage is not None and (got.usage.input_tokens, got.usage.input_tokens_details.cached_tokens) == (30, 4)
    first = alice.responses.retrieve("resp_e2e_1")
    assert first.output[0].type == "function_call" and first.output[0].call_id == "call_1"   # type: ignore[union-attr]

    # the input items of turn 2: turn 1's input and output, then its own; newest first by default
    page = alice.responses.input_items.list("resp_e2e_2")
    assert [i.type for i in page.data] == ["function_call_output", "function_call", "message"]
    assert page.data[2].content[0].text == "Weather in Paris?"   # type: ignore[union-attr]
    assert page.data[1].id == "fc_e2e" and not page.has_more
    assert (page.first_id, page.last_id) == (page.data[0].id, page.data[2].id)
    # one item per page, oldest first: the SDK follows `after` = last_id while has_more
    walked = list(alice.responses.input_items.list("resp_e2e_2", limit=1, order="asc"))
    assert [i.type for i in walked] == ["message", "function_call", "function_call_output"]
    assert [i.id for i in walked] == [i.id for i in reversed(page.data)]   # ids are stable
    for bad in ({"limit": 0}, {"limit": 101}, {"order": "sideways"}, {"after": "item_nope"}):
        with pytest.raises(openai.BadRequestError):
            alice.responses.input_items.list("resp_e2e_2", **bad)   # type: ignore[arg-type]

    # another key: every route says the id is unknown, and changes nothing
    for call in (lambda: bob.responses.retrieve("resp_e2e_2"), lambda: bob.responses.input_items.list("resp_e2e_2"),
                 lambda: bob.responses.delete("resp_e2e_2")):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.body["code"] == "response_not_found"   # type: ignore[index]
        assert "resp_e2e_2" in caught.value.message
    for gone in ("resp_nobody_made", "resp_e2e_old"):   # unknown, and past its retention
        with pytest.raises(openai.NotFoundError):
            alice.responses.retrieve(gone)

    # a restart keeps them
    server.stop()
    again = start_gateway(config(), tmp_path, database_url=url)
    try:
        alice = sdk(again, ALICE)
        assert alice.responses.retrieve("resp_e2e_2").output_text == "It is 21 C in Paris."
        deleted = alice.responses.with_raw_response.delete("resp_e2e_2")
        assert deleted.http_response.json() == {"id": "resp_e2e_2", "object": "response", "deleted": True}
        for call in (lambda: alice.responses.retrieve("resp_e2e_2"), lambda: alice.responses.delete("resp_e2e_2")):
            with pytest.raises(openai.NotFoundError):
                call()
        assert alice.responses.retrieve("resp_e2e_1").id == "resp_e2e_1"   # the turn before is its own
    finally:
        again.stop()
