"""The quota ledger: reserve before calling upstream, settle to the real cost after, refund on failure.

The database invariant is `quota - spent - leased >= 0` for every key with a quota, kept by one atomic
conditional UPDATE per lease. A gateway process leases part of a key's remaining quota and serves
reservations from that lease in memory (asyncio: no await between check and take, so no race). Spend
and request logs are written in batches by a background flusher; each flush moves the settled amount
from `leased` to `spent`. On graceful shutdown the unused lease is returned. A crashed process's lease
expires and is refunded by the next sweep.

Every settled request is also one line in this process's journal (billing/journal.py) before its
answer goes out, and every flush is a numbered batch whose number the flush transaction stores. A
process that dies (kill -9) or cannot write the database at shutdown leaves its journal; the next
start (or any live process's periodic check) replays the batches the database does not have, so no
settled spend or log row is lost and none is written twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from polyrelay.billing import recovery
from polyrelay.billing.journal import Journal, database_tag
from polyrelay.errors import GatewayError
from polyrelay.store.db import driver_reason
from polyrelay.store.keys import KeyRecord
from polyrelay.store.logs import insert_logs
from polyrelay.store.tables import api_keys, leases, ledger_batches

log = logging.getLogger("polyrelay.ledger")

LEASE_TTL_S = 30
STOP_TIMEOUT_S = 10.0            # the final flush at shutdown; past it the journal is kept for replay
_MAX_CHUNK_MICROS = 1_000_000    # lease at most $1 ahead of need ...
_CHUNK_DIVISOR = 100              # ... and at most 1% of the quota, so other processes are not starved


def usd(micros: int) -> str:
    """Micro-dollars as dollars, exactly: 420 -> "$0.000420"."""
    return f"${micros // 1_000_000:,}.{micros % 1_000_000:06d}"


class Reservation:
    __slots__ = ("key_id", "amount", "leased")

    def __init__(self, key_id: int, amount: int, leased: bool) -> None:
        self.key_id = key_id
        self.amount = amount
        self.leased = leased       # False for unlimited keys: nothing was held


class _Lease:
    __slots__ = ("left", "lock")

    def __init__(self) -> None:
        self.left = 0               # leased from the store, not yet reserved or spent
        self.lock = asyncio.Lock()  # one store round trip per key at a time


class _Batch:
    """What one flush writes: settled spend per key (and the part from a lease) and log rows."""

    __slots__ = ("seq", "spend", "leased_spend", "logs")

    def __init__(self, seq: int, spend: dict[int, int], leased_spend: dict[int, int],
                 logs: list[dict[str, Any]]) -> None:
        self.seq, self.spend, self.leased_spend, self.logs = seq, spend, leased_spend, logs


class Ledger:
    def __init__(self, engine: AsyncEngine, flush_interval: float = 0.1,
                 journal_dir: Path | None = None) -> None:
        self._engine = engine
        self._holder = f"{socket.gethostname()[:40]}:{os.getpid()}:{os.urandom(4).hex()}"
        self._flush_interval = flush_interval
        self._leases: dict[int, _Lease] = {}
        self._spend: dict[int, int] = {}          # settled, not yet written
        self._leased_spend: dict[int, int] = {}   # the part of _spend that came out of a lease
        self._logs: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        self._last_heartbeat = 0.0
        self._seq = 0
        # the batch seq the database holds for this holder, when known for sure (after a flush that
        # committed); None after a failed one, whose COMMIT may or may not have landed: then it is read
        self._committed: int | None = None
        self._pending: list[_Batch] = []          # taken out of the queues, not yet committed
        self._failing_since: float | None = None
        self._journal_dir = journal_dir
        self._tag = database_tag(engine.url.render_as_string(hide_password=True))
        self._journal: Journal | None = None
        if journal_dir is not None:
            try:
                self._journal = Journal(journal_dir, self._tag, self._holder)
            except OSError as e:   # e.g. a read-only working directory: serve, but say what is at stake
                log.error("ledger journal directory %s cannot be used (%s): spend settled in the last "
                          "100 ms is lost if this process is killed; set POLYRELAY_JOURNAL_DIR to a "
                          "writable local directory", journal_dir, e.strerror)

    @property
    def holder(self) -> str:
        """This process's name on its lease rows (billing/holds.py moves a reservation out of them)."""
        return self._holder

    # ---- request path -----------------------------------------------------------------------

    async def reserve(self, key: KeyRecord, amount: int, minimum: int | None = None,
                      what: str | Callable[[], str] = "") -> Reservation:
        """Hold `amount` micro-dollars of `key`'s quota. With `minimum`, when the key cannot cover
        `amount`, hold all it has left if that is at least `minimum` (the Reservation says how much).
        Otherwise raise 429 insufficient_quota naming the balance and what was needed (`what` says
        what the amount covers; a callable is only called for that message, so the request path
        formats nothing). A non-positive amount is a bug upstream of here: ValueError."""
        if amount <= 0 or (minimum is not None and not 0 < minimum <= amount):
            raise ValueError(f"reservation of {amount} (minimum {minimum}) micro-dollars: must be positive")
        if key.quota_micros is None:
            return Reservation(key.id, amount, leased=False)
        asked = amount
        # more than the whole quota can never be held (and past 2^63 the database could not store it)
        amount = min(amount, key.quota_micros + 1)
        lease = self._leases.get(key.id)
        if lease is None:
            lease = self._leases[key.id] = _Lease()
        if lease.left >= amount:
            lease.left -= amount
            return Reservation(key.id, amount, leased=True)
        async with lease.lock:
            if lease.left < amount and not await self._extend_lease(key, lease, amount - lease.left):
                if minimum is not None:
                    await self._lease_the_rest(key.id, lease, amount - lease.left)
                    amount = min(amount, lease.left)
                if minimum is None or amount < minimum:
                    balance = lease.left + await self._unleased(key.id)
                    raise GatewayError(429, "insufficient_quota", f"key '{key.name}' has {usd(balance)} left, "
                                       f"less than the {usd(minimum or asked)} this request may cost"
                                       f"{what() if callable(what) else what}")
            lease.left -= amount
        return Reservation(key.id, amount, leased=True)

    async def settle(self, res: Reservation, cost: int, row: dict[str, Any] | None = None) -> int:
        """Charge `cost` against the reservation; return what was charged (less only if quota ran out).

        `row`, the request's log row, is queued with the charge (its `charged_micros` filled in): one
        journal line holds both, so a process that dies loses neither."""
        if cost < 0:   # usage is clamped to >= 0 before pricing: a negative cost is a bug, never a credit
            raise ValueError(f"negative cost {cost} for key {res.key_id}")
        charged = cost
        if res.leased:
            lease = self._leases[res.key_id]
            if cost > res.amount:
                extra = cost - res.amount
                if lease.left < extra:
                    async with lease.lock:
                        if lease.left < extra:
                            await self._extend_lease_by_id(res.key_id, lease, extra - lease.left)
                taken = min(extra, lease.left)
                lease.left -= taken
                charged = res.amount + taken
                if charged < cost:
                    log.warning("key %s: cost %d exceeds what its quota had left; charged %d",
                                res.key_id, cost, charged)
            else:
                lease.left += res.amount - cost
        if row is not None:
            row["charged_micros"] = charged
        self._book(res.key_id, charged, res.leased, row)
        return charged

    def refund(self, res: Reservation) -> None:
        if res.leased:
            self._leases[res.key_id].left += res.amount

    def record(self, row: dict[str, Any]) -> None:
        """Queue a request log row (nothing charged); written by the next flush."""
        self._book(row.get("key_id"), 0, False, row)

    def _book(self, key_id: int | None, charged: int, from_lease: bool, row: dict[str, Any] | None) -> None:
        # No await in here: a flush takes the queues whole between two requests, never half of one.
        if row is not None:
            self._logs.append(row)
        if charged and key_id is not None:
            self._spend[key_id] = self._spend.get(key_id, 0) + charged
            if from_lease:
                self._leased_spend[key_id] = self._leased_spend.get(key_id, 0) + charged
        if self._journal is not None:
            self._journal.append(key_id, charged, from_lease, row)

    # ---- leasing ----------------------------------------------------------------------------

    async def _extend_lease(self, key: KeyRecord, lease: _Lease, shortfall: int) -> bool:
        assert key.quota_micros is not None
        chunk = min(_MAX_CHUNK_MICROS, key.quota_micros // _CHUNK_DIVISOR)
        if chunk > shortfall and await self._lease(key.id, chunk):
            lease.left += chunk
            return True
        if await self._lease(key.id, shortfall):
            lease.left += shortfall
            return True
        return False

    async def _lease_the_rest(self, key_id: int, lease: _Lease, wanted: int) -> None:
        """Lease up to `wanted` from what the key has left (a few tries: other holders race us)."""
        for _ in range(3):
            take = min(wanted, await self._unleased(key_id))
            if take <= 0 or await self._lease(key_id, take):
                lease.left += max(0, take)
                return

    async def _unleased(self, key_id: int) -> int:
        """What the key has left that no gateway process holds."""
        remaining = api_keys.c.quota_micros - api_keys.c.spent_micros - api_keys.c.leased_micros
        async with self._engine.connect() as conn:
            value = (await conn.execute(select(remaining).where(api_keys.c.id == key_id))).scalar()
        return max(0, value or 0)

    async def _extend_lease_by_id(self, key_id: int, lease: _Lease, shortfall: int) -> None:
        if await self._lease(key_id, shortfall):
            lease.left += shortfall

    async def _lease(self, key_id: int, amount: int) -> bool:
        remaining = api_keys.c.quota_micros - api_keys.c.spent_micros - api_keys.c.leased_micros
        try:
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    update(api_keys)
                    .where(api_keys.c.id == key_id, api_keys.c.quota_micros.is_not(None), remaining >= amount)
                    .values(leased_micros=api_keys.c.leased_micros + amount))
                if result.rowcount != 1:
                    return False
                await self._add_to_lease_row(conn, key_id, amount)
        except DBAPIError as exc:
            # read-only, full or unreachable: the caller's protocol says 503, not "internal error"
            log.warning("database unavailable: could not lease quota for key %s: %s", key_id, driver_reason(exc))
            raise GatewayError(503, "overloaded", "the gateway cannot reserve quota right now (its "
                               "database cannot be written); try again later") from None
        return True

    async def _add_to_lease_row(self, conn: AsyncConnection, key_id: int, amount: int) -> None:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(leases).values(
            holder=self._holder, key_id=key_id, amount_micros=amount,
            expires_at=int(time.time()) + LEASE_TTL_S)
        stmt = stmt.on_conflict_do_update(
            index_elements=[leases.c.holder, leases.c.key_id],
            set_={"amount_micros": leases.c.amount_micros + amount,
                  "expires_at": stmt.excluded.expires_at})
        await conn.execute(stmt)

    # ---- persistence ------------------------------------------------------------------------

    async def flush(self) -> bool:
        """Write settled spend and queued log rows; refresh this process's leases. False if the
        database refused (the batches stay queued, and in the journal, for the next try)."""
        async with self._flush_lock:
            if self._spend or self._logs:
                self._seq += 1
                self._pending.append(_Batch(self._seq, self._spend, self._leased_spend, self._logs))
                self._spend, self._leased_spend, self._logs = {}, {}, []
                if self._journal is not None:
                    self._journal.mark(self._seq)   # same step as the take: the batch is exactly these lines
            elif not self._pending and time.monotonic() - self._last_heartbeat < LEASE_TTL_S / 3:
                return True
            batches = list(self._pending)
            try:
                async with self._engine.begin() as conn:
                    if batches:
                        done = self._committed   # None: an earlier COMMIT raised; it may have landed
                        if done is None:
                            done = await recovery.committed_seq(conn, self._holder)
                        await self._write(conn, [b for b in batches if b.seq > done])
                        await recovery.set_committed_seq(conn, self._holder, batches[-1].seq)
                    await conn.execute(update(leases).where(leases.c.holder == self._holder).values(
                        expires_at=int(time.time()) + LEASE_TTL_S))
            except Exception:
                self._committed = None
                self._flush_failed()
                return False
            if batches:
                self._committed = batches[-1].seq
            del self._pending[:len(batches)]
            if batches and self._journal is not None:
                self._journal.committed(batches[-1].seq)
            self._last_heartbeat = time.monotonic()
            if self._failing_since is not None:
                log.warning("ledger flush succeeded again after %.1fs of failures",
                            time.monotonic() - self._failing_since)
                self._failing_since = None
            return True

    def _flush_failed(self) -> None:
        if self._failing_since is None:   # once per outage, not ten times a second
            self._failing_since = time.monotonic()
            log.exception("ledger flush failed; spend and log rows are kept (journal: %s) and retried",
                          self._journal_dir or "none")

    async def _write(self, conn: AsyncConnection, batches: list[_Batch]) -> None:
        spend: dict[int, int] = {}
        leased_spend: dict[int, int] = {}
        for b in batches:
            for key_id, amount in b.spend.items():
                spend[key_id] = spend.get(key_id, 0) + amount
            for key_id, amount in b.leased_spend.items():
                leased_spend[key_id] = leased_spend.get(key_id, 0) + amount
        # Keys in one order in every process: on Postgres, two processes flushing the
        # same keys in different orders would deadlock (one flush aborted, retried).
        for key_id, amount in sorted(spend.items()):
            from_lease = leased_spend.get(key_id, 0)
            await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(
                spent_micros=api_keys.c.spent_micros + amount,
                leased_micros=api_keys.c.leased_micros - from_lease))
            if from_lease:
                await conn.execute(update(leases).where(
                    leases.c.holder == self._holder, leases.c.key_id == key_id,
                ).values(amount_micros=leases.c.amount_micros - from_lease))
        await insert_logs(conn, [row for b in batches for row in b.logs])

    async def replay_dead_journals(self) -> int:
        """Write what dead processes settled and had not written (billing/recovery.py)."""
        return await recovery.replay_dead_journals(self._engine, self._journal_dir, self._tag)

    async def sweep_expired_leases(self) -> int:
        """Refund leases whose holder stopped refreshing them (billing/recovery.py)."""
        return await recovery.sweep_expired_leases(self._engine)

    async def release_leases(self) -> bool:
        """Return what this process leased and did not spend (graceful shutdown); False, leaving the
        journal for the next start, if the settled spend could not be written first."""
        if not await self.flush():
            return False
        async with self._engine.begin() as conn:
            rows = (await conn.execute(select(leases).where(leases.c.holder == self._holder)
                                       .order_by(leases.c.key_id))).all()
            for row in rows:
                await conn.execute(update(api_keys).where(api_keys.c.id == row.key_id).values(
                    leased_micros=api_keys.c.leased_micros - row.amount_micros))
            await conn.execute(delete(leases).where(leases.c.holder == self._holder))
        self._leases.clear()
        return True

    async def _run(self) -> None:
        sweep_every = LEASE_TTL_S / 2
        next_sweep = time.monotonic() + sweep_every
        while True:
            await asyncio.sleep(self._flush_interval)
            # Shielded: stop() cancels this task, and a flush cut off mid-write would lose the rows
            # and spend it had taken out of the queue; stop()'s own flush waits for it on the lock.
            await asyncio.shield(self.flush())
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + sweep_every
                try:
                    await asyncio.shield(self.sweep_expired_leases())
                    await asyncio.shield(self.replay_dead_journals())   # a sibling worker that died
                except Exception:
                    if self._failing_since is None:
                        log.exception("lease sweep or journal replay failed")

    async def start(self) -> None:
        await self.replay_dead_journals()
        await self.sweep_expired_leases()
        self._task = asyncio.create_task(self._run(), name="ledger-flusher")

    async def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Write what is settled and return the leases, in bounded time. If the database refuses or
        does not answer, the journal stays for the next start (the leases expire and are swept)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        released = False
        try:
            released = await asyncio.wait_for(self.release_leases(), timeout)
        except TimeoutError:
            log.error("the database did not answer within %.0fs at shutdown", timeout)
        except Exception:
            log.exception("returning quota leases at shutdown failed")
        if self._journal is not None:
            self._journal.close(delete=released and not self._pending)
            if not released:
                log.error("settled spend and log rows not yet in the database stay in the journal "
                          "in %s; the next start replays them", self._journal_dir)
            else:
                try:
                    async with asyncio.timeout(timeout):
                        async with self._engine.begin() as conn:
                            await conn.execute(delete(ledger_batches).where(
                                ledger_batches.c.holder == self._holder))
                except Exception:
                    pass   # a leftover row is harmless: its holder never writes again
