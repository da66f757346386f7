"""Durable holds: a reservation that must outlive the process that made it (a video job runs for
minutes; the gateway may restart meanwhile).

A reservation comes out of this process's lease (billing/ledger.py), which a restart returns to the
key (graceful stop) or the sweep refunds (crash). `take_over` moves it out of the lease row in the
caller's transaction, the one that also writes the job row that records it: the key's
`leased_micros` keeps counting it, but no lease does, so nothing but `close` ever gives it back.
`close` runs in the transaction that flips the job's `billed` flag by compare-and-set, so a hold is
closed once, whichever process (or poll) gets there first."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from polyrelay.billing.ledger import Reservation
from polyrelay.errors import GatewayError
from polyrelay.store.tables import api_keys, leases


async def take_over(conn: AsyncConnection, holder: str, res: Reservation) -> int:
    """Move `res` out of the lease of `holder` into a hold the caller records; return its amount
    (0 for an unlimited key: nothing was held)."""
    if not res.leased:
        return 0
    moved = await conn.execute(update(leases).where(
        leases.c.holder == holder, leases.c.key_id == res.key_id, leases.c.amount_micros >= res.amount,
    ).values(amount_micros=leases.c.amount_micros - res.amount))
    if moved.rowcount == 1:
        return res.amount
    # the lease row is gone (swept while this process stalled): its amount went back to the key,
    # so hold the amount afresh, if the key still has it
    remaining = api_keys.c.quota_micros - api_keys.c.spent_micros - api_keys.c.leased_micros
    held = await conn.execute(update(api_keys).where(api_keys.c.id == res.key_id, remaining >= res.amount)
                              .values(leased_micros=api_keys.c.leased_micros + res.amount))
    if held.rowcount != 1:
        raise GatewayError(429, "insufficient_quota", "this key no longer has the quota the video needs")
    return res.amount


async def close(conn: AsyncConnection, key_id: int, held: int, charged: int) -> None:
    """End a hold: `charged` (at most `held` for a key with a quota) becomes spend, the rest is free
    again. Call it only in the transaction whose compare-and-set won the right to close."""
    if held or charged:
        await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(
            leased_micros=api_keys.c.leased_micros - held, spent_micros=api_keys.c.spent_micros + charged))
