"""Key lookup with a short-lived cache (a disabled key stops working within `ttl` seconds)."""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncEngine

from polyrelay.errors import GatewayError
from polyrelay.store.keys import KeyRecord, find_by_hash, hash_key

_MAX_ENTRIES = 10_000


class KeyCache:
    def __init__(self, engine: AsyncEngine, ttl: float = 5.0) -> None:
        self._engine = engine
        self._ttl = ttl
        self._entries: dict[str, tuple[KeyRecord | None, float]] = {}

    async def authenticate(self, key: str | None) -> KeyRecord:
        """The enabled key record for `key`, or a 401 GatewayError."""
        if not key:
            raise GatewayError(401, "authentication", "missing API key: send 'Authorization: Bearer <key>'")
        digest = hash_key(key)  # lookups by hash: no timing leak of the stored value
        now = time.monotonic()
        entry = self._entries.get(digest)
        if entry is None or entry[1] < now:
            record = await find_by_hash(self._engine, digest)
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries.clear()
            self._entries[digest] = (record, now + self._ttl)
        else:
            record = entry[0]
        if record is None:
            raise GatewayError(401, "authentication", "invalid API key")
        if not record.enabled:
            raise GatewayError(401, "authentication", "this API key is disabled")
        return record

    def invalidate(self) -> None:
        self._entries.clear()
