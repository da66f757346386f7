"""Key lookup with a short-lived cache (a disabled key stops working within about `ttl` seconds).

One database look-up per key at a time: a busy key's entry is refreshed in the background shortly
before it expires, so requests never wait for it (a look-up for every request that arrived after the
expiry stalled the loop under load); an unknown or expired key is looked up once however many
requests bring it at the same moment.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy.ext.asyncio import AsyncEngine

from polyrelay.errors import GatewayError
from polyrelay.store.keys import KeyRecord, find_by_hash, hash_key

_MAX_ENTRIES = 10_000


class _Entry:
    __slots__ = ("record", "refresh_at", "expires", "refreshing")

    def __init__(self, record: KeyRecord | None, now: float, ttl: float) -> None:
        self.record = record
        self.refresh_at = now + ttl * 0.8
        self.expires = now + ttl
        self.refreshing = False


class KeyCache:
    def __init__(self, engine: AsyncEngine, ttl: float = 5.0) -> None:
        self._engine = engine
        self._ttl = ttl
        self._entries: dict[str, _Entry] = {}   # by the key itself: no hashing on a hit
        self._pending: dict[str, asyncio.Future[KeyRecord | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def authenticate(self, key: str | None) -> KeyRecord:
        """The enabled key record for `key`, or a 401 GatewayError."""
        if not key:
            raise GatewayError(401, "authentication", "missing API key: send 'Authorization: Bearer <key>'")
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is None or entry.expires <= now:
            record = await self._lookup(key)
        else:
            record = entry.record
            if entry.refresh_at <= now and not entry.refreshing:
                entry.refreshing = True
                task = asyncio.create_task(self._refresh(key, entry))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        if record is None:
            raise GatewayError(401, "authentication", "invalid API key")
        if not record.enabled:
            raise GatewayError(401, "authentication", "this API key is disabled")
        return record

    async def _lookup(self, key: str) -> KeyRecord | None:
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[KeyRecord | None] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            record = await find_by_hash(self._engine, hash_key(key))  # stored hashed: no timing leak
            self._store(key, record)
            future.set_result(record)
            return record
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must log it
            raise
        finally:
            del self._pending[key]

    async def _refresh(self, key: str, entry: _Entry) -> None:
        try:
            self._store(key, await find_by_hash(self._engine, hash_key(key)))
        except Exception:
            entry.refreshing = False  # keep serving the old record; try again on a later request

    def _store(self, key: str, record: KeyRecord | None) -> None:
        if len(self._entries) >= _MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = _Entry(record, time.monotonic(), self._ttl)

    def invalidate(self) -> None:
        self._entries.clear()
