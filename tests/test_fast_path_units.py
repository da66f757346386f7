"""Units of the Chat fast path and the ledger, on real data and a real database (SQLite and Postgres)."""

from __future__ import annotations

import json
import time

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polyrelay import ir
from polyrelay.billing.ledger import Ledger
from polyrelay.billing.prices import Price, cost_micros
from polyrelay.config import KeyConfig
from polyrelay.errors import GatewayError
from polyrelay.protocols._passthrough import SseTap
from polyrelay.protocols.openai_chat.fastpath import ChatStreamTap, peek_request, upstream_body
from polyrelay.store.db import create_engine, migrate
from polyrelay.store.keys import find_by_hash, hash_key, upsert_config_keys
from polyrelay.store.tables import api_keys, leases


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None, choices: bool = True) -> bytes:
    body = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "upstream-name",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else [],
            "usage": usage}
    return b"data: " + msgspec.json.encode(body) + b"\n\n"


STREAM = (_chunk({"role": "assistant", "content": ""}) + _chunk({"content": "Hél"}) + _chunk({"content": "lo \"x\""})
          + b": keep-alive comment\n\n" + _chunk({"content": " more"}) + _chunk({"content": " text"})
          + _chunk({}, "stop")
          + _chunk({}, usage={"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10,
                              "prompt_tokens_details": {"cached_tokens": 2}}, choices=False)
          + b"data: [DONE]\n\n")


class EventByEventTap(ChatStreamTap):
    """The reference: no block shortcut, every event looked at on its own."""

    def _block(self, block: bytes) -> bytes:
        return SseTap._block(self, block)


def _run_tap(pieces: list[bytes], drop_usage: bool, tap_type: type = ChatStreamTap) -> tuple[bytes, ChatStreamTap]:
    tap = tap_type("public-name", drop_usage_chunk=drop_usage)
    out = b"".join(tap.feed(p) for p in pieces) + tap.close()
    return out, tap


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12), st.booleans())
def test_tap_output_does_not_depend_on_where_the_upstream_bytes_are_split(cuts: list[int], drop: bool) -> None:
    points = sorted(set(cuts))
    pieces = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    whole, whole_tap = _run_tap([STREAM], drop, EventByEventTap)
    split, split_tap = _run_tap(pieces, drop)
    assert split == whole
    assert split_tap.text_bytes == whole_tap.text_bytes
    assert split_tap.usage == whole_tap.usage == ir.Usage(input_tokens=7, output_tokens=3, cache_read_tokens=2)
    assert split_tap.done and split_tap.finished


SPACED = b"".join(  # the same stream from an upstream that prints `"key": "value"` (json.dumps defaults)
    b"data: " + json.dumps(json.loads(e[6:]), ensure_ascii=False).encode() + b"\n\n" if e.startswith(b"data: {")
    else e + b"\n\n"
    for e in STREAM.split(b"\n\n") if e)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(SPACED)), max_size=12))
def test_text_of_a_stream_printed_with_spaces_is_counted_whatever_the_split(cuts: list[int]) -> None:
    # blocks may begin with the comment event or any data event: each is judged by its first data event
    points = sorted(set(cuts))
    pieces = [SPACED[a:b] for a, b in zip([0, *points], [*points, len(SPACED)], strict=True)]
    _, compact = _run_tap([STREAM], False)
    _, reference = _run_tap([SPACED], False, EventByEventTap)
    _, split = _run_tap(pieces, False)
    assert split.text_bytes == reference.text_bytes == compact.text_bytes > 0


def test_tap_renames_the_model_and_drops_only_the_usage_chunk_it_was_told_to() -> None:
    out, tap = _run_tap([STREAM], drop_usage=True)
    events = [e for e in out.split(b"\n\n") if e]
    assert len(events) == 8 and events[-1] == b"data: [DONE]"
    assert all(b'"model":"public-name"' in e for e in events[:-1] if e.startswith(b"data:"))
    assert tap.text_bytes > 0
    kept, _ = _run_tap([STREAM], drop_usage=False)
    assert len([e for e in kept.split(b"\n\n") if e]) == 9


def test_upstream_body_only_renames_the_model_and_asks_for_usage() -> None:
    body = b'{"metadata":{"model":"keep-me"},"model":"pub","stream":true,"messages":[{"role":"user","content":"x"}]}'
    peek = peek_request(body)
    out = msgspec.json.decode(upstream_body(peek, "up-model", force_usage=True))
    assert out == {"metadata": {"model": "keep-me"}, "model": "up-model", "stream": True,
                   "messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": True}}


def test_cost_is_rounded_once_half_up_and_cache_is_priced_apart() -> None:
    price = Price(input=150_000, output=600_000, cached_input=75_000, cache_write=150_000, max_output=10)
    usage = ir.Usage(input_tokens=1000, output_tokens=500, cache_read_tokens=400)
    # 600*0.15 + 400*0.075 + 500*0.6 = 90 + 30 + 300 = 420 micro-dollars
    assert cost_micros(price, usage) == 420
    assert cost_micros(price, ir.Usage(input_tokens=3)) == 0    # 0.45 -> 0
    assert cost_micros(price, ir.Usage(input_tokens=4)) == 1    # 0.60 -> 1
    assert cost_micros(None, usage) == 0


@pytest.fixture
async def engine(new_database_url):  # type: ignore[no-untyped-def]
    """A migrated database with one key, on SQLite and on Postgres (see conftest's `database`)."""
    engine = create_engine(new_database_url("ledger"))
    await migrate(engine)
    await upsert_config_keys(engine, [KeyConfig(name="k", key="sk-ledger-key", quota=0.001)])
    yield engine
    await engine.dispose()


async def test_ledger_reserves_settles_and_refuses_beyond_quota(engine) -> None:
    key = await find_by_hash(engine, hash_key("sk-ledger-key"))
    ledger = Ledger(engine)
    first = await ledger.reserve(key, 600)
    with pytest.raises(GatewayError) as caught:
        await ledger.reserve(key, 600)
    assert caught.value.status == 429 and caught.value.kind == "insufficient_quota"
    assert await ledger.settle(first, 250) == 250
    second = await ledger.reserve(key, 600)      # the 350 returned by settling makes room
    ledger.refund(second)
    await ledger.stop()
    async with engine.connect() as conn:
        row = (await conn.execute(api_keys.select())).one()
    assert (row.spent_micros, row.leased_micros) == (250, 0)


def _log_row(key_id: int) -> dict[str, object]:
    return {"created_at": int(time.time() * 1000), "key_id": key_id, "surface": "openai", "model": "m",
            "upstream_model": "m", "channel": "c", "status": 200, "stream": True, "prompt_tokens": 1,
            "completion_tokens": 1, "cached_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0,
            "usage_estimated": False, "cost_micros": 120, "charged_micros": 120, "latency_ms": 1,
            "ttfb_ms": 1, "attempts": 1, "error": None}


async def test_stop_during_a_periodic_flush_loses_nothing(engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM's stop() used to cancel the flusher mid-write, dropping the rows it had taken."""
    import asyncio

    from polyrelay.billing import ledger as ledger_module
    from polyrelay.store.tables import request_logs

    real_insert = ledger_module.insert_logs
    writing = asyncio.Event()

    async def slow_insert(conn, rows):  # type: ignore[no-untyped-def]  # a busy database
        if rows:
            writing.set()
            await asyncio.sleep(0.3)
        await real_insert(conn, rows)

    monkeypatch.setattr(ledger_module, "insert_logs", slow_insert)
    key = await find_by_hash(engine, hash_key("sk-ledger-key"))
    ledger = Ledger(engine, flush_interval=0.01)
    await ledger.start()
    reservation = await ledger.reserve(key, 500)
    await ledger.settle(reservation, 120)
    ledger.record(_log_row(key.id))
    await asyncio.wait_for(writing.wait(), 5)   # the periodic flush is writing the row now
    await ledger.stop()
    async with engine.connect() as conn:
        row = (await conn.execute(api_keys.select())).one()
        logged = (await conn.execute(request_logs.select())).all()
    assert (row.spent_micros, row.leased_micros, len(logged)) == (120, 0, 1)


async def test_expired_lease_of_a_crashed_process_is_refunded(engine) -> None:
    key = await find_by_hash(engine, hash_key("sk-ledger-key"))
    crashed = Ledger(engine)
    await crashed.reserve(key, 900)  # then the process dies: no settle, no release
    async with engine.begin() as conn:
        await conn.execute(leases.update().values(expires_at=int(time.time()) - 1))
    survivor = Ledger(engine)
    assert await survivor.sweep_expired_leases() == 1
    again = await survivor.reserve(key, 900)
    assert again.amount == 900


def test_head_revision_constant_matches_the_migration_scripts() -> None:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    from polyrelay.store import db

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(db._MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == db.HEAD_REVISION



_NODE_START = """
import asyncio, sys, time
import alembic.command  # noqa: F401  (imported before the gate: the nodes start their work together)
from polyrelay.config import KeyConfig
from polyrelay.store.db import create_engine, migrate
from polyrelay.store.keys import upsert_config_keys

async def start():
    engine = create_engine(sys.argv[1])
    try:
        await migrate(engine)
        await upsert_config_keys(engine, [KeyConfig(name="a", key="sk-together-a1"),
                                          KeyConfig(name="b", key="sk-together-b1", quota=2.0)])
    finally:
        await engine.dispose()

time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
asyncio.run(start())
"""


@pytest.mark.slow
async def test_postgres_nodes_starting_together_on_one_new_database_migrate_once(pg_cluster) -> None:
    """Several gateway nodes (processes) starting at the same moment on one empty Postgres database,
    doing what `serve` and `migrate` do first: each succeeds, the schema is made once, each config key
    stored once. Without the start-up lock, most runs had nodes failing on a duplicate table or key.
    (Postgres only: SQLite is one node's database; `serve --workers` migrates before forking.)"""
    import subprocess
    import sys

    from polyrelay.store.keys import list_keys

    url = pg_cluster.database("together")
    gate = str(time.time() + 2.5)   # after the imports: the nodes' first queries go out together
    nodes = [subprocess.Popen([sys.executable, "-c", _NODE_START, url, gate], stderr=subprocess.PIPE, text=True)
             for _ in range(8)]
    errors = [node.communicate(timeout=60)[1] for node in nodes]
    assert [node.returncode for node in nodes] == [0] * 8, [e[-600:] for e in errors if e]
    engine = create_engine(url)
    try:
        stored = await list_keys(engine)
    finally:
        await engine.dispose()
    assert [(k["name"], k["quota_micros"]) for k in stored] == [("a", None), ("b", 2_000_000)]


async def test_migrated_schema_holds_64_bit_money_and_log_ids(engine) -> None:
    """Micro-dollar columns and request log ids are 64-bit on both databases (Postgres INTEGER is not)."""
    from sqlalchemy import inspect, text

    from polyrelay.store.db import HEAD_REVISION
    from polyrelay.store.keys import list_keys
    from polyrelay.store.logs import insert_logs, recent_logs

    await upsert_config_keys(engine, [KeyConfig(name="k", key="sk-ledger-key", quota=0.001),
                                      KeyConfig(name="rich", key="sk-ledger-rich", quota=1e12)])
    async with engine.begin() as conn:
        assert (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar() == HEAD_REVISION
        if conn.dialect.name == "postgresql":
            types = await conn.run_sync(lambda sync: {
                (table, c["name"]): str(c["type"]) for table in ("api_keys", "leases", "request_logs")
                for c in inspect(sync).get_columns(table)})
            for column in [("api_keys", "quota_micros"), ("api_keys", "spent_micros"),
                           ("api_keys", "leased_micros"), ("leases", "amount_micros"),
                           ("request_logs", "id"), ("request_logs", "cost_micros"),
                           ("request_logs", "charged_micros"), ("request_logs", "created_at")]:
                assert types[column] == "BIGINT", (column, types[column])
            await conn.execute(text("SELECT setval(pg_get_serial_sequence('request_logs', 'id'), 3000000000)"))
        big = 3 * 10**15    # $3 billion in micro-dollars: past 32 bits
        rich = next(k for k in await list_keys(engine) if k["name"] == "rich")
        await conn.execute(api_keys.update().where(api_keys.c.name == "rich").values(spent_micros=big))
        await insert_logs(conn, [{**_log_row(1), "charged_micros": big, "cost_micros": big}])
    assert rich["quota_micros"] == 10**18
    assert next(k for k in await list_keys(engine) if k["name"] == "rich")["spent_micros"] == big
    [row] = await recent_logs(engine, 1)
    assert row["charged_micros"] == big and row["stream"] is True and row["usage_estimated"] is False
    if engine.dialect.name == "postgresql":
        assert row["id"] > 2**31
