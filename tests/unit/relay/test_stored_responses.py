"""Stored Responses API responses in the gateway process, on SQLite and on Postgres: what `remember`
keeps (JSON bodies and streams), what `expand` rebuilds from a chain, who may use an id, the size
bound, the write queue, retention. The same over HTTP with the openai SDK: tests/e2e/test_stored_responses_sdk.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import update

from polyrelay.config import Config, KeyConfig, ResponsesConfig
from polyrelay.errors import GatewayError
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.replies import Reply, StreamReply, Write
from polyrelay.relay.response_store import ResponseStore
from polyrelay.relay.stored_responses import (
    NOT_STORED,
    TerminalEvent,
    expand,
    listed_input_items,
    remember,
    response_json,
    wants_store,
)
from polyrelay.store.db import create_engine, migrate
from polyrelay.store.keys import KeyRecord, find_by_hash, hash_key, upsert_config_keys
from polyrelay.store.tables import responses

KEYS = [KeyConfig(name="alice", key="sk-alice-stored"), KeyConfig(name="bob", key="sk-bob-stored")]


def encode(value: object) -> bytes:
    return msgspec.json.encode(value)


def response_object(rid: str, output: list[dict[str, Any]], status: str = "completed") -> dict[str, Any]:
    return {"id": rid, "object": "response", "created_at": 1_760_000_000, "status": status, "model": "gpt-4o-mini",
            "instructions": None, "output": output, "previous_response_id": None, "tools": [],
            "usage": {"input_tokens": 12, "output_tokens": 5, "total_tokens": 17,
                      "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}}


CALL = {"type": "function_call", "id": "fc_1", "call_id": "call_weather", "name": "get_weather",
        "arguments": '{"city":"Paris"}', "status": "completed"}
ANSWER = {"type": "message", "id": "msg_a1", "role": "assistant", "status": "completed",
          "content": [{"type": "output_text", "text": "It is 21 C in Paris.", "annotations": []}]}


@pytest.fixture
async def gw(new_database_url, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gateway]:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("POLYRELAY_JOURNAL_DIR", str(tmp_path / "journal"))
    engine = create_engine(new_database_url("stored"))
    await migrate(engine)
    await upsert_config_keys(engine, KEYS)
    gateway = Gateway(Config(keys=KEYS), engine)
    await gateway.start()
    yield gateway
    await gateway.stop()
    await engine.dispose()


async def key(gw: Gateway, name: str) -> KeyRecord:
    record = await find_by_hash(gw.engine, hash_key(f"sk-{name}-stored"))
    assert record is not None
    return record


async def settle(gw: Gateway) -> None:
    """Let remember's scheduled work run, then write the queue."""
    await asyncio.sleep(0)
    assert await gw.responses.flush()


async def test_a_function_tool_loop_is_rebuilt_oldest_first_with_the_call_its_output_answers(gw: Gateway) -> None:
    alice = await key(gw, "alice")
    first = {"model": "gpt-4o-mini", "input": "What is the weather in Paris?", "instructions": "Be brief.",
             "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]}
    remember(gw, alice, encode(first), Reply(200, encode(response_object("resp_turn1", [CALL]))))
    await settle(gw)
    output = [{"type": "function_call_output", "call_id": "call_weather", "output": '{"c":21}'}]
    second = {"model": "gpt-4o-mini", "previous_response_id": "resp_turn1", "input": output}
    expanded = msgspec.json.decode(await expand(gw, alice, encode(second)))
    assert "previous_response_id" not in expanded and "instructions" not in expanded   # not inherited
    assert [i.get("type") for i in expanded["input"]] == ["message", "function_call", "function_call_output"]
    assert expanded["input"][0]["content"] == [{"type": "input_text", "text": "What is the weather in Paris?"}]
    assert expanded["input"][1] == CALL
    # the second turn is stored from the client's own body (previous id and all), and the third
    # continues both: every turn's input and output, oldest first
    remember(gw, alice, encode(second), Reply(200, encode(response_object("resp_turn2", [ANSWER]))))
    await settle(gw)
    third = {"model": "gpt-4o-mini", "previous_response_id": "resp_turn2", "instructions": "Now in French.",
             "input": [{"role": "user", "content": "Thanks!"}]}
    expanded = msgspec.json.decode(await expand(gw, alice, encode(third)))
    assert expanded["instructions"] == "Now in French."
    assert [(i.get("type"), i.get("role")) for i in expanded["input"]] == [
        ("message", "user"), ("function_call", None), ("function_call_output", None),
        ("message", "assistant"), (None, "user")]
    stored = await gw.responses.find("resp_turn2")
    assert stored is not None and stored.previous_response_id == "resp_turn1"
    assert msgspec.json.decode(response_json(stored))["previous_response_id"] == "resp_turn1"
    listed = listed_input_items(await gw.responses.chain("resp_turn2"))
    assert [i["type"] for i in listed] == ["message", "function_call", "function_call_output"]
    assert all(i["id"] for i in listed) and len({i["id"] for i in listed}) == 3


async def test_another_keys_response_is_not_found_even_where_unknown_ids_pass_through(gw: Gateway) -> None:
    alice, bob = await key(gw, "alice"), await key(gw, "bob")
    remember(gw, alice, encode({"model": "m", "input": "secret plans"}),
             Reply(200, encode(response_object("resp_alice", [ANSWER]))))
    await settle(gw)
    body = encode({"model": "m", "previous_response_id": "resp_alice", "input": "tell me"})
    for passthrough in (None, lambda model: True):
        with pytest.raises(GatewayError) as caught:
            await expand(gw, bob, body, passthrough)
        err = caught.value
        assert (err.status, err.code, err.param) == (404, "previous_response_not_found", "previous_response_id")
        assert "resp_alice" in err.message and "secret" not in err.message


async def test_an_unknown_id_is_404_unless_an_upstream_responses_channel_may_know_it(gw: Gateway) -> None:
    alice = await key(gw, "alice")
    body = encode({"model": "gpt-4o-mini", "previous_response_id": "resp_upstream_made", "input": "go on"})
    with pytest.raises(GatewayError) as caught:
        await expand(gw, alice, body, lambda model: False)
    assert caught.value.status == 404
    asked: list[str] = []
    assert await expand(gw, alice, body, lambda model: asked.append(model) or True) is body
    assert asked == ["gpt-4o-mini"]
    plain = encode({"model": "m", "input": "no previous id"})
    assert await expand(gw, alice, plain) is plain
    with pytest.raises(GatewayError) as bad:
        await expand(gw, alice, encode({"model": "m", "previous_response_id": 7, "input": "x"}))
    assert bad.value.status == 400 and bad.value.param == "previous_response_id"


async def test_store_false_keeps_nothing_and_errors_are_not_kept(gw: Gateway) -> None:
    alice = await key(gw, "alice")
    remember(gw, alice, encode({"model": "m", "input": "x", "store": False}),
             Reply(200, encode(response_object("resp_unstored", [ANSWER]))))
    remember(gw, alice, encode({"model": "m", "input": "x"}), Reply(400, b'{"error": {"message": "no"}}'))
    await settle(gw)
    assert await gw.responses.find("resp_unstored") is None


def sse(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + encode({"type": kind, **data}) + b"\n\n"


def a_stream(rid: str, text: str) -> tuple[bytes, dict[str, Any]]:
    final = response_object(rid, [{"type": "message", "id": "msg_s", "role": "assistant", "status": "completed",
                                   "content": [{"type": "output_text", "text": text, "annotations": []}]}])
    created = {**final, "status": "in_progress", "output": [], "usage": None}
    body = (sse("response.created", {"response": created, "sequence_number": 0})
            + b"".join(sse("response.output_text.delta", {"delta": word, "item_id": "msg_s", "sequence_number": n})
                       for n, word in enumerate(text.split(" "), 1))
            # a delta that talks about the final event must not be taken for it
            + sse("response.output_text.delta", {"delta": '"response.completed"', "sequence_number": 90})
            + sse("response.completed", {"response": final, "sequence_number": 99}))
    return body, final


def caught(chunks: list[bytes], limit: int = 1 << 20) -> TerminalEvent:
    catcher = TerminalEvent(limit)
    for chunk in chunks:
        catcher.feed(chunk)
    catcher.close()
    return catcher


def test_the_final_event_is_caught_however_the_stream_is_cut() -> None:
    body, final = a_stream("resp_cut", "one two three four five")
    # CRLF lines; no blank line at the end; a comment and a [DONE] after the final event
    variants = (body, body.replace(b"\n", b"\r\n"), body[:-2], body + b": done\n\ndata: [DONE]\n\n")
    for variant in variants:
        for cut in range(1, len(variant)):
            catcher = caught([variant[:cut], variant[cut:]])
            assert catcher.response is not None and msgspec.json.decode(catcher.response) == final, cut
            assert catcher.response_id == "resp_cut"
        one_by_one = caught([variant[i:i + 1] for i in range(len(variant))])
        assert one_by_one.response is not None and msgspec.json.decode(one_by_one.response)["id"] == "resp_cut"
    assert caught([body[:-300]]).response is None   # cut before its final event: nothing to keep


def test_the_catcher_holds_at_most_its_limit_and_knows_whose_response_outgrew_it() -> None:
    body, _ = a_stream("resp_big", "word " * 2000)
    catcher = TerminalEvent(4096)
    held = 0
    for i in range(0, len(body), 1000):
        catcher.feed(body[i:i + 1000])
        held = max(held, sum(map(len, catcher._parts)) + catcher._held)
    catcher.close()
    assert catcher.response is None and catcher.oversize and catcher.response_id == "resp_big"
    assert held <= 2 * 4096
    # a stream sent in one read: the final event alone is kept if it fits, whatever came before it
    small, final = a_stream("resp_one_read", "short")
    padded = sse("response.output_text.done", {"text": "x" * 8000}) + small
    whole = caught([padded], limit=len(small))
    assert whole.response is not None and msgspec.json.decode(whole.response) == final
    # a group outgrown over several reads, whose last read also begins the final event
    split = caught([padded[:3000], padded[3000:6000], padded[6000:]], limit=len(small))
    assert split.response is not None and msgspec.json.decode(split.response) == final


def streaming(body: bytes, chunk: int) -> StreamReply:
    async def produce(write: Write) -> None:
        for i in range(0, len(body), chunk):
            await write(body[i:i + chunk])
    return StreamReply(produce)


async def test_a_stream_is_stored_from_its_final_event_and_sent_unchanged(gw: Gateway) -> None:
    alice = await key(gw, "alice")
    body, final = a_stream("resp_streamed", "streamed answer here")
    reply = remember(gw, alice, encode({"model": "m", "input": "stream please", "stream": True}), streaming(body, 37))
    assert isinstance(reply, StreamReply)
    sent: list[bytes] = []

    async def write(chunk: bytes) -> None:
        sent.append(chunk)

    await reply.produce(write)
    assert b"".join(sent) == body
    await settle(gw)
    stored = await gw.responses.find("resp_streamed")
    assert stored is not None and stored.key_id == alice.id
    assert msgspec.json.decode(response_json(stored)) == {**final, "previous_response_id": None, "store": True}


async def test_a_response_over_the_bound_is_served_not_stored_and_stays_its_keys(gw: Gateway) -> None:
    alice, bob = await key(gw, "alice"), await key(gw, "bob")
    gw.responses.settings = ResponsesConfig(max_stored_mb=0.01)   # 10 KB
    big = response_object("resp_big", [{**ANSWER, "content": [{"type": "output_text", "text": "x" * 20_000}]}])
    reply = remember(gw, alice, encode({"model": "m", "input": "long"}), Reply(200, encode(big)))
    assert dict(reply.headers)[NOT_STORED] == b"larger than 0.01 MB (responses.max_stored_mb)"
    body, _ = a_stream("resp_big_stream", "word " * 5000)
    streamed = remember(gw, alice, encode({"model": "m", "input": "long", "stream": True}), streaming(body, 512))
    assert isinstance(streamed, StreamReply)

    async def discard(chunk: bytes) -> None:
        pass

    await streamed.produce(discard)
    await settle(gw)
    for rid in ("resp_big", "resp_big_stream"):
        stub = await gw.responses.find(rid)
        assert stub is not None and not stub.stored and stub.key_id == alice.id and stub.output_items == "[]"
        body = encode({"model": "m", "previous_response_id": rid, "input": "more"})
        with pytest.raises(GatewayError) as owner:
            await expand(gw, alice, body)
        assert owner.value.status == 400 and "too large" in owner.value.message
        assert await expand(gw, alice, body, lambda model: True) is body   # the upstream may hold it
        with pytest.raises(GatewayError) as other:
            await expand(gw, bob, body, lambda model: True)
        assert other.value.status == 404


async def test_queued_responses_are_read_and_deleted_before_they_are_written(gw: Gateway) -> None:
    alice, bob = await key(gw, "alice"), await key(gw, "bob")
    remember(gw, alice, encode({"model": "m", "input": "hi"}), Reply(200, encode(response_object("resp_q", [ANSWER]))))
    await asyncio.sleep(0)   # scheduled, not yet written: the writer has not run
    assert "resp_q" in gw.responses._queue
    assert (await gw.responses.find("resp_q")) is not None
    assert not await gw.responses.delete("resp_q", bob.id)
    assert await gw.responses.delete("resp_q", alice.id)
    await settle(gw)
    assert await gw.responses.find("resp_q") is None


async def test_written_responses_outlive_the_store_and_expired_ones_are_purged(gw: Gateway) -> None:
    alice = await key(gw, "alice")
    for rid in ("resp_keep", "resp_old"):
        remember(gw, alice, encode({"model": "m", "input": rid}), Reply(200, encode(response_object(rid, [ANSWER]))))
    await settle(gw)
    async with gw.engine.begin() as conn:
        await conn.execute(update(responses).where(responses.c.id == "resp_old")
                           .values(expires_at=int(time.time()) - 1))
    fresh = ResponseStore(gw.engine, ResponsesConfig())   # another process's view of the same database
    assert (await fresh.find("resp_keep")) is not None
    assert await fresh.find("resp_old") is None            # past its retention: gone before the purge runs
    assert await fresh.purge() == 1
    stored = await fresh.find("resp_keep")
    assert stored is not None and stored.expires_at - stored.created_at >= 0
    assert abs(stored.expires_at - int(time.time()) - 30 * 86400) < 60


async def test_a_long_chain_is_read_across_queue_and_database_and_stops_where_a_turn_was_deleted(gw: Gateway) -> None:
    alice = await key(gw, "alice")
    previous = None
    for n in range(1, 31):
        body: dict[str, Any] = {"model": "m", "input": f"turn {n}"}
        if previous:
            body["previous_response_id"] = previous
        remember(gw, alice, encode(body), Reply(200, encode(response_object(f"resp_long{n}", [ANSWER]))))
        previous = f"resp_long{n}"
        if n == 25:
            await settle(gw)   # 1-25 written; 26-30 still queued
    await asyncio.sleep(0)
    assert "resp_long30" in gw.responses._queue and "resp_long25" not in gw.responses._queue

    def user_texts(expanded: bytes) -> list[str]:
        return [i["content"][0]["text"] for i in msgspec.json.decode(expanded)["input"] if i.get("role") == "user"]

    nxt = encode({"model": "m", "previous_response_id": "resp_long30", "input": "turn 31"})
    assert user_texts(await expand(gw, alice, nxt)) == [f"turn {n}" for n in range(1, 32)]
    assert await gw.responses.delete("resp_long10", alice.id)
    await settle(gw)
    assert user_texts(await expand(gw, alice, nxt)) == [f"turn {n}" for n in range(11, 32)]


def test_the_responses_settings_are_checked_and_named() -> None:
    from polyrelay.config import ConfigError, parse_config

    assert parse_config("responses: {retention_days: 7, max_stored_mb: 0.5}").responses == ResponsesConfig(7, 0.5)
    assert parse_config("keys: []").responses == ResponsesConfig(30.0, 8.0)
    for bad, field in (("{retention_days: 0}", "responses.retention_days"),
                       ("{max_stored_mb: -1}", "responses.max_stored_mb"),
                       ("{max_stored_mb: .nan}", "responses.max_stored_mb"), ("{retention: 3}", "responses.retention")):
        with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
            parse_config(f"responses: {bad}")


async def test_the_callers_decoded_top_level_gives_the_same_answers_without_searching_the_body(gw: Gateway) -> None:
    alice = await key(gw, "alice")
    first = Reply(200, encode(response_object("resp_top", [CALL])))
    remember(gw, alice, encode({"model": "m", "input": "first"}), first)
    await settle(gw)
    bodies = [
        b'{ "model" : "m", "previous_response_id" : "resp_top", "input" : [ {"type": "function_call_output",'
        b' "call_id": "call_weather", "output": "21"} ] , "store": false}',
        b'{"model":"m","previous_response_id":"resp_top","input":[]}',
        b'{"model":"m","previous_response_id":"resp_top","input":"a string"}',
        b'{"model":"m","previous_response_id":"resp_top"}',
        b'{"model":"m","previous_response_id":null,"input":"x"}',
    ]
    for body in bodies:
        top = msgspec.json.decode(body, type=dict[str, msgspec.Raw])
        by_search, by_top = await expand(gw, alice, body), await expand(gw, alice, body, top=top)
        assert msgspec.json.decode(by_search) == msgspec.json.decode(by_top), body
        expanded = msgspec.json.decode(by_top)
        assert "previous_response_id" not in expanded or expanded["previous_response_id"] is None
        if b'"resp_top"' in body:
            assert expanded["input"][:2] == [
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "first"}]}, CALL]
        assert wants_store(body) == wants_store(body, top) == (b'"store": false' not in body)


async def test_values_the_columns_cannot_hold_never_reach_the_database(gw: Gateway) -> None:
    alice = await key(gw, "alice")
    long_id = "resp_" + "x" * 200
    remember(gw, alice, encode({"model": "m", "input": "a"}), Reply(200, encode(response_object(long_id, [ANSWER]))))
    odd = {**response_object("resp_odd", [ANSWER]), "created_at": 10**30, "status": "s" * 100, "output": {"no": 1}}
    remember(gw, alice, encode({"model": "m", "input": "b", "previous_response_id": long_id}), Reply(200, encode(odd)))
    await settle(gw)
    assert await gw.responses.find(long_id) is None   # an id longer than any we store: not kept
    stored = await gw.responses.find("resp_odd")
    assert stored is not None and stored.previous_response_id is None and stored.output_items == "[]"
    assert len(stored.status) == 32 and abs(stored.created_at - time.time()) < 60


async def test_a_row_the_database_refuses_cannot_hold_the_queue(gw: Gateway) -> None:
    from polyrelay.relay.response_store import MAX_ATTEMPTS
    from polyrelay.relay.stored_responses import stored_row

    alice = await key(gw, "alice")

    def row(rid: str) -> Any:
        made = stored_row(alice.id, encode({"model": "m", "input": rid}), encode(response_object(rid, [ANSWER])),
                          int(time.time()), 3600)
        assert made is not None
        return made

    store = ResponseStore(gw.engine, ResponsesConfig())   # no writer task: the test writes
    store.put(msgspec.structs.replace(row("resp_bad"), key_id=None))   # NOT NULL: both databases refuse it
    store.put(row("resp_good"))
    assert await store.flush()               # the good one is written, the bad one dropped
    assert not store._queue and await ResponseStore(gw.engine, ResponsesConfig()).find("resp_good")
    store.put(msgspec.structs.replace(row("resp_alone"), key_id=None))
    for _ in range(MAX_ATTEMPTS - 1):        # alone, it might be the database that is down: kept ...
        assert not await store.flush()
    assert "resp_alone" in store._queue
    assert not await store.flush()           # ... until it has been refused MAX_ATTEMPTS times
    assert not store._queue and store._queued_bytes == 0


async def test_the_first_response_under_an_id_keeps_it(gw: Gateway) -> None:
    """An upstream that reuses ids (they are the upstream's on the fast path) cannot hand one key's
    stored response to another: queued or written, the first owner keeps it."""
    from polyrelay.relay.stored_responses import stored_row

    alice, bob = await key(gw, "alice"), await key(gw, "bob")
    store = ResponseStore(gw.engine, ResponsesConfig())   # no writer task: the test writes

    def row(owner: KeyRecord, rid: str) -> Any:
        made = stored_row(owner.id, encode({"model": "m", "input": f"{owner.name}'s"}),
                          encode(response_object(rid, [ANSWER])), int(time.time()), 3600)
        assert made is not None
        return made

    store.put(row(alice, "resp_same_queued"))
    store.put(row(bob, "resp_same_queued"))       # while alice's is still queued
    store.put(row(alice, "resp_same_written"))
    assert await store.flush()
    store.put(row(bob, "resp_same_written"))      # after alice's was written
    assert await store.flush()
    for rid in ("resp_same_queued", "resp_same_written"):
        stored = await store.find(rid)
        assert stored is not None and stored.key_id == alice.id and "alice's" in stored.input_items
