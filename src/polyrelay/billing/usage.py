"""What a key has spent, read for the caller (the OpenAI dashboard endpoints today; the console and
the control plane next): the one place a route asks billing a question."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from polyrelay.billing.ledger import Ledger
from polyrelay.store.logs import charged_between

DAY_MS = 86_400_000


async def spent_micros(ledger: Ledger, engine: AsyncEngine, key_id: int, start_ms: int, end_ms: int) -> int:
    """Micro-dollars charged to `key_id` for requests logged in [start_ms, end_ms), counting the
    charges this process still holds in its ledger batch (flushed first, so a caller sees its own
    last request)."""
    await ledger.flush()
    return await charged_between(engine, key_id, start_ms, end_ms)
