"""Video job transitions on SQLite and Postgres: however many polls race to apply the same final
state, the job moves once, its hold is closed once and one log row is written; a delete that races
a completion refunds only if it wins."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import func, insert, select

from polyrelay.protocols import openai_videos as wire
from polyrelay.relay.video_jobs import apply, bill
from polyrelay.store import videos as store
from polyrelay.store.db import create_engine, migrate
from polyrelay.store.tables import api_keys, request_logs

COST = 1_200_000


@pytest.fixture
async def engine(new_database_url):  # type: ignore[no-untyped-def]
    engine = create_engine(new_database_url("videos"))
    await migrate(engine)
    yield engine
    await engine.dispose()


async def _job(engine, job_id: str) -> None:  # type: ignore[no-untyped-def]
    """A key with $10 and a running job holding COST of it (as the create leaves them)."""
    now = int(time.time() * 1000)
    async with engine.begin() as conn:
        if (await conn.execute(select(api_keys.c.id).where(api_keys.c.id == 1))).first() is None:
            await conn.execute(insert(api_keys).values(id=1, name="k", key_hash="h" * 64, key_prefix="sk-",
                                                       quota_micros=10_000_000, spent_micros=0, leased_micros=0,
                                                       models="[]", enabled=True, source="cli", created_at=now))
        await conn.execute(api_keys.update().where(api_keys.c.id == 1).values(
            leased_micros=api_keys.c.leased_micros + COST))
        await store.insert_job(conn, {
            "id": job_id, "key_id": 1, "channel": "sora", "upstream_id": "up_" + job_id, "model": "sora-2",
            "upstream_model": "sora-2", "status": "in_progress", "progress": 10, "seconds": 12,
            "size": "720x1280", "prompt": "p", "remixed_from": None, "error": None, "held_micros": COST,
            "cost_micros": COST, "billed": False, "created_at": now, "completed_at": None, "polled_at": now})


async def _row(engine, job_id: str):  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return (await conn.execute(select(store.video_jobs).where(store.video_jobs.c.id == job_id))).first()


async def _apply(engine, job_id: str, status: str, row=None) -> bool:  # type: ignore[no-untyped-def]
    row = row or await _row(engine, job_id)
    async with engine.begin() as conn:
        return await apply(conn, row, wire.UpstreamJob("up_" + job_id, status, 100))


async def _money(engine) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        spent, leased = (await conn.execute(select(api_keys.c.spent_micros, api_keys.c.leased_micros))).one()
        logs = (await conn.execute(select(func.count()).select_from(request_logs))).scalar_one()
    return int(spent), int(leased), int(logs)


async def test_racing_polls_settle_a_completed_job_once(engine) -> None:  # type: ignore[no-untyped-def]
    await _job(engine, "video_a")
    results = await asyncio.gather(*(_apply(engine, "video_a", "completed") for _ in range(8)),
                                   return_exceptions=True)
    assert [r for r in results if r is True] == [True], results
    assert await _money(engine) == (COST, 0, 1)
    assert await _apply(engine, "video_a", "failed") is False   # a final state is final
    assert await _money(engine) == (COST, 0, 1)


async def test_a_failed_job_is_refunded_once(engine) -> None:  # type: ignore[no-untyped-def]
    await _job(engine, "video_b")
    assert await _apply(engine, "video_b", "failed")
    assert not await _apply(engine, "video_b", "failed")
    assert await _money(engine) == (0, 0, 1)


async def test_a_delete_after_completion_refunds_nothing_and_before_it_everything(engine) -> None:  # type: ignore[no-untyped-def]
    await _job(engine, "video_c")
    await _job(engine, "video_d")
    assert await _apply(engine, "video_c", "completed")
    stale = await _row(engine, "video_d")   # what a poll read just before the delete
    for job_id in ("video_c", "video_d"):
        row = await _row(engine, job_id)
        async with engine.begin() as conn:
            await bill(conn, row, completed=False, now=int(time.time() * 1000), error="deleted", status=499)
            await store.delete_job(conn, job_id)
    assert await _money(engine) == (COST, 0, 2)
    # a poll that read it before the delete changes nothing
    assert not await _apply(engine, "video_d", "completed", stale)
    assert await _money(engine) == (COST, 0, 2)
