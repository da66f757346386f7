"""The ledger (reserve -> settle -> refund, never below zero), on a real database (SQLite and Postgres)."""

from __future__ import annotations

import time

import pytest

from polyrelay.billing.ledger import Ledger
from polyrelay.config import KeyConfig
from polyrelay.errors import GatewayError
from polyrelay.store.db import create_engine, migrate
from polyrelay.store.keys import find_by_hash, hash_key, upsert_config_keys
from polyrelay.store.tables import api_keys, leases


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


# ---- the ledger's own guards (unit, on SQLite and Postgres) ----------------------------------

@pytest.fixture
async def ledger_key(new_database_url):  # type: ignore[no-untyped-def]
    from polyrelay.config import KeyConfig
    from polyrelay.store.db import create_engine, migrate
    from polyrelay.store.keys import find_by_hash, hash_key, upsert_config_keys

    engine = create_engine(new_database_url("guards"))
    await migrate(engine)
    await upsert_config_keys(engine, [KeyConfig(name="k", key="sk-guards-key", quota=0.001),
                                      KeyConfig(name="free", key="sk-guards-free")])
    yield engine, await find_by_hash(engine, hash_key("sk-guards-key")), \
        await find_by_hash(engine, hash_key("sk-guards-free"))
    await engine.dispose()


async def test_ledger_refuses_non_positive_reservations_and_negative_costs(ledger_key) -> None:
    from polyrelay.billing.ledger import Ledger

    engine, key, unlimited = ledger_key
    ledger = Ledger(engine)
    for amount in (0, -1, -60_720):
        for k in (key, unlimited):
            with pytest.raises(ValueError):
                await ledger.reserve(k, amount)
    held = await ledger.reserve(key, 100)
    with pytest.raises(ValueError):
        await ledger.settle(held, -5)
    assert await ledger.settle(held, 40) == 40
    await ledger.stop()
    row = next(k for k in await _keys(engine) if k["name"] == "k")
    assert (row["spent_micros"], row["leased_micros"]) == (40, 0)


async def test_ledger_holds_what_is_left_down_to_a_minimum_and_names_the_balance(ledger_key) -> None:
    from polyrelay.billing.ledger import Ledger
    from polyrelay.errors import GatewayError

    engine, key, _ = ledger_key
    ledger = Ledger(engine)
    first = await ledger.reserve(key, 5_000, minimum=300)     # the key has 1,000
    assert first.amount == 1_000
    with pytest.raises(GatewayError) as caught:
        await ledger.reserve(key, 5_000, minimum=300, what=" (test)")
    assert caught.value.status == 429 and "has $0.000000 left" in caught.value.message
    assert "$0.000300 this request may cost (test)" in caught.value.message
    assert await ledger.settle(first, 700) == 700
    again = await ledger.reserve(key, 5_000, minimum=300)
    assert again.amount == 300
    ledger.refund(again)
    with pytest.raises(GatewayError) as caught:
        await ledger.reserve(key, 301)
    assert "has $0.000300 left, less than the $0.000301" in caught.value.message
    await ledger.stop()
    row = next(k for k in await _keys(engine) if k["name"] == "k")
    assert (row["spent_micros"], row["leased_micros"]) == (700, 0)


async def _keys(engine):  # type: ignore[no-untyped-def]
    from polyrelay.store.keys import list_keys

    return await list_keys(engine)
