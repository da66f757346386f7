"""Recovering what stopped gateway processes left behind: their journals (spend and log rows they
settled but did not write, replayed exactly once, see billing/journal.py) and their quota leases
(refunded once they expire). Any live process runs these at start and periodically; they touch only
the database and the journal directory, never a ledger's in-memory state.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from polyrelay.billing.journal import DeadJournal, dead_journals
from polyrelay.store.logs import insert_logs
from polyrelay.store.tables import api_keys, leases, ledger_batches

log = logging.getLogger("polyrelay.ledger")


async def replay_dead_journals(engine: AsyncEngine, journal_dir: Path | None, tag: str) -> int:
    """Write what dead processes settled and their flushes had not written; returns how many
    journals were replayed. Their leases go back to the keys here (a dead process spends no more)."""
    replayed = 0
    for dead in dead_journals(journal_dir, tag):
        try:
            await _replay(engine, dead)
        except BaseException:
            dead.release(delete=False)
            raise
        dead.release(delete=True)
        async with engine.begin() as conn:   # only now: the files are gone
            await conn.execute(delete(ledger_batches).where(ledger_batches.c.holder == dead.holder))
        replayed += 1
    return replayed

async def _replay(engine: AsyncEngine, dead: DeadJournal) -> None:
    async with engine.begin() as conn:
        done = await committed_seq(conn, dead.holder)
        spend: dict[int, int] = {}
        rows: list[dict[str, Any]] = []
        for seq, lines in dead.batches:
            if seq <= done:
                continue
            for key_id, charged, _from_lease, row in lines:
                if charged and key_id is not None:
                    spend[key_id] = spend.get(key_id, 0) + charged
                if row is not None:
                    rows.append(row)
        # The dead holder's lease rows, if not swept yet, go back whole (its unflushed spend is
        # inside them): leased -= the row's amount, spent += what was settled. Swept or not, the
        # key ends the same.
        held = (await conn.execute(select(leases).where(leases.c.holder == dead.holder)
                                   .order_by(leases.c.key_id))).all()
        refund: dict[int, int] = {}
        for lease in held:
            claimed = await conn.execute(delete(leases).where(
                leases.c.holder == lease.holder, leases.c.key_id == lease.key_id))
            if claimed.rowcount == 1:
                refund[lease.key_id] = lease.amount_micros
        for key_id in sorted(set(spend) | set(refund)):
            await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(
                spent_micros=api_keys.c.spent_micros + spend.get(key_id, 0),
                leased_micros=api_keys.c.leased_micros - refund.get(key_id, 0)))
        await insert_logs(conn, rows)
        if dead.batches:
            await set_committed_seq(conn, dead.holder, max(done, dead.batches[-1][0]))
    if spend or rows:
        log.warning("replayed the journal of stopped gateway process %s: %d micro-dollars of spend "
                    "and %d log rows it had not written", dead.holder, sum(spend.values()), len(rows))

async def sweep_expired_leases(engine: AsyncEngine) -> int:
    """Refund leases whose holder stopped refreshing them (a crashed process). Returns how many."""
    now = int(time.time())
    swept = 0
    async with engine.begin() as conn:
        rows = (await conn.execute(select(leases).where(leases.c.expires_at < now)
                                   .order_by(leases.c.key_id, leases.c.holder))).all()
        for row in rows:
            claimed = await conn.execute(delete(leases).where(
                leases.c.holder == row.holder, leases.c.key_id == row.key_id,
                leases.c.expires_at < now))
            if claimed.rowcount == 1:
                await conn.execute(update(api_keys).where(api_keys.c.id == row.key_id).values(
                    leased_micros=api_keys.c.leased_micros - row.amount_micros))
                swept += 1
    if swept:
        log.warning("refunded %d expired quota lease(s) of stopped gateway processes", swept)
    return swept


async def committed_seq(conn: AsyncConnection, holder: str) -> int:
    seq = (await conn.execute(select(ledger_batches.c.last_seq)
                              .where(ledger_batches.c.holder == holder))).scalar()
    return int(seq or 0)


async def set_committed_seq(conn: AsyncConnection, holder: str, seq: int) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(ledger_batches).values(holder=holder, last_seq=seq)
    await conn.execute(stmt.on_conflict_do_update(index_elements=[ledger_batches.c.holder],
                                                  set_={"last_seq": stmt.excluded.last_seq}))
