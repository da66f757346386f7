"""The quota ledger: reserve before calling upstream, settle to the real cost after, refund on failure.

The database invariant is `quota - spent - leased >= 0` for every key with a quota, kept by one atomic
conditional UPDATE per lease. A gateway process leases part of a key's remaining quota and serves
reservations from that lease in memory (asyncio: no await between check and take, so no race). Spend
and request logs are written in batches by a background flusher; each flush moves the settled amount
from `leased` to `spent`. On graceful shutdown the unused lease is returned. A crashed process's lease
expires and is refunded by the next sweep (its unflushed spend, at most one flush interval, is lost
in the key holder's favour — never charged twice, never below zero).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from polyrelay.errors import GatewayError
from polyrelay.store.keys import KeyRecord
from polyrelay.store.logs import insert_logs
from polyrelay.store.tables import api_keys, leases

log = logging.getLogger("polyrelay.ledger")

LEASE_TTL_S = 30
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


class Ledger:
    def __init__(self, engine: AsyncEngine, flush_interval: float = 0.1) -> None:
        self._engine = engine
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"
        self._flush_interval = flush_interval
        self._leases: dict[int, _Lease] = {}
        self._spend: dict[int, int] = {}          # settled, not yet written
        self._leased_spend: dict[int, int] = {}   # the part of _spend that came out of a lease
        self._logs: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        self._last_heartbeat = 0.0

    # ---- request path -----------------------------------------------------------------------

    async def reserve(self, key: KeyRecord, amount: int, minimum: int | None = None, what: str = "") -> Reservation:
        """Hold `amount` micro-dollars of `key`'s quota. With `minimum`, when the key cannot cover
        `amount`, hold all it has left if that is at least `minimum` (the Reservation says how much).
        Otherwise raise 429 insufficient_quota naming the balance and what was needed (`what` says
        what the amount covers). A non-positive amount is a bug upstream of here: ValueError."""
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
                                       f"less than the {usd(minimum or asked)} this request may cost{what}")
            lease.left -= amount
        return Reservation(key.id, amount, leased=True)

    async def settle(self, res: Reservation, cost: int) -> int:
        """Charge `cost` against the reservation; return what was charged (less only if quota ran out)."""
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
            self._leased_spend[res.key_id] = self._leased_spend.get(res.key_id, 0) + charged
        if charged:
            self._spend[res.key_id] = self._spend.get(res.key_id, 0) + charged
        return charged

    def refund(self, res: Reservation) -> None:
        if res.leased:
            self._leases[res.key_id].left += res.amount

    def record(self, row: dict[str, Any]) -> None:
        """Queue a request log row; written by the next flush."""
        self._logs.append(row)

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
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.quota_micros.is_not(None), remaining >= amount)
                .values(leased_micros=api_keys.c.leased_micros + amount))
            if result.rowcount != 1:
                return False
            await self._add_to_lease_row(conn, key_id, amount)
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

    async def flush(self) -> None:
        """Write settled spend and queued log rows; refresh this process's leases."""
        async with self._flush_lock:
            spend, leased_spend, logs = self._spend, self._leased_spend, self._logs
            if not (spend or logs) and time.monotonic() - self._last_heartbeat < LEASE_TTL_S / 3:
                return
            self._spend, self._leased_spend, self._logs = {}, {}, []
            try:
                async with self._engine.begin() as conn:
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
                    await insert_logs(conn, logs)
                    await conn.execute(update(leases).where(leases.c.holder == self._holder).values(
                        expires_at=int(time.time()) + LEASE_TTL_S))
                self._last_heartbeat = time.monotonic()
            except Exception:
                log.exception("ledger flush failed; will retry")
                for key_id, amount in spend.items():
                    self._spend[key_id] = self._spend.get(key_id, 0) + amount
                for key_id, amount in leased_spend.items():
                    self._leased_spend[key_id] = self._leased_spend.get(key_id, 0) + amount
                self._logs[:0] = logs

    async def sweep_expired_leases(self) -> int:
        """Refund leases whose holder stopped refreshing them (a crashed process). Returns how many."""
        now = int(time.time())
        swept = 0
        async with self._engine.begin() as conn:
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

    async def release_leases(self) -> None:
        """Return what this process leased and did not spend (graceful shutdown)."""
        await self.flush()
        async with self._engine.begin() as conn:
            rows = (await conn.execute(select(leases).where(leases.c.holder == self._holder)
                                       .order_by(leases.c.key_id))).all()
            for row in rows:
                await conn.execute(update(api_keys).where(api_keys.c.id == row.key_id).values(
                    leased_micros=api_keys.c.leased_micros - row.amount_micros))
            await conn.execute(delete(leases).where(leases.c.holder == self._holder))
        self._leases.clear()

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
                except Exception:
                    log.exception("lease sweep failed")

    async def start(self) -> None:
        await self.sweep_expired_leases()
        self._task = asyncio.create_task(self._run(), name="ledger-flusher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.release_leases()
