"""Key lookup with a short-lived cache: a key disabled anywhere stops working in every worker within
KEY_CACHE_TTL seconds (1 s) of the change's commit.

One database look-up per key at a time: a busy key's entry is refreshed in the background shortly
before it expires, so requests never wait for it (a look-up for every request that arrived after the
expiry stalled the loop under load); an unknown or expired key is looked up once however many
requests bring it at the same moment. An entry expires KEY_CACHE_TTL after its look-up *started*, so
a read that raced with a disable is never served longer than that.

Memory is bounded whatever callers send: a key longer than MAX_KEY_LENGTH is refused without a
look-up or an entry; known keys are at most MAX_ENTRIES entries, unknown ones (misses, cached so a
misconfigured client retrying does not cost a query per request) at most MAX_MISSES, oldest dropped
first. The cache is keyed by the key's SHA-256 (the database stores the same hash, hex, see
store.keys.hash_key): no key a caller sent, valid or not, is kept in the process's memory, and one
digest per request (~0.3 µs for a 49-character key) is the whole cost of a hit.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

from sqlalchemy.ext.asyncio import AsyncEngine

from polyrelay.errors import GatewayError
from polyrelay.store.keys import KeyRecord, find_by_hash

KEY_CACHE_TTL = 1.0
MAX_KEY_LENGTH = 256     # generated keys are 49 characters
MAX_ENTRIES = 10_000
MAX_MISSES = 1_024


class _Entry:
    __slots__ = ("record", "refresh_at", "expires", "refreshing")

    def __init__(self, record: KeyRecord, started: float, ttl: float) -> None:
        self.record = record
        self.refresh_at = started + ttl * 0.8
        self.expires = started + ttl
        self.refreshing = False


class KeyCache:
    def __init__(self, engine: AsyncEngine, ttl: float = KEY_CACHE_TTL) -> None:
        self._engine = engine
        self._ttl = ttl
        # all by the key's SHA-256 digest, never the key itself
        self._entries: dict[bytes, _Entry] = {}
        self._misses: dict[bytes, float] = {}   # unknown key -> when the miss expires
        self._pending: dict[bytes, asyncio.Future[KeyRecord | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def authenticate(self, key: str | None) -> KeyRecord:
        """The enabled key record for `key`, or a 401 GatewayError."""
        if not key:
            raise GatewayError(401, "authentication", "missing API key: send 'Authorization: Bearer <key>'")
        if len(key) > MAX_KEY_LENGTH:
            raise GatewayError(401, "authentication", "invalid API key")
        digest = hashlib.sha256(key.encode()).digest()
        entry = self._entries.get(digest)
        now = time.monotonic()
        if entry is None or entry.expires <= now:
            record = await self._lookup(digest, now)
        else:
            record = entry.record
            if entry.refresh_at <= now and not entry.refreshing:
                entry.refreshing = True
                task = asyncio.create_task(self._refresh(digest, entry))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        if record is None:
            raise GatewayError(401, "authentication", "invalid API key")
        if not record.enabled:
            raise GatewayError(401, "authentication", "this API key is disabled")
        return record

    async def _lookup(self, key: bytes, now: float) -> KeyRecord | None:
        missed_until = self._misses.get(key)
        if missed_until is not None and missed_until > now:
            return None
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[KeyRecord | None] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            record = await find_by_hash(self._engine, key.hex())  # stored hashed: no timing leak
            self._store(key, record, now)
            future.set_result(record)
            return record
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must log it
            raise
        finally:
            del self._pending[key]

    async def _refresh(self, key: bytes, entry: _Entry) -> None:
        started = time.monotonic()
        try:
            self._store(key, await find_by_hash(self._engine, key.hex()), started)
        except Exception:
            entry.refreshing = False  # keep serving the old record until it expires; retry later

    def _store(self, key: bytes, record: KeyRecord | None, started: float) -> None:
        if record is None:
            self._entries.pop(key, None)
            misses = self._misses
            misses.pop(key, None)
            if len(misses) >= MAX_MISSES:
                del misses[next(iter(misses))]   # the oldest miss
            misses[key] = started + self._ttl
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = _Entry(record, started, self._ttl)

    def invalidate(self) -> None:
        self._entries.clear()
        self._misses.clear()
