"""The gateway's stored Responses API responses: a write queue in front of store/responses.py.

A response to keep is queued (`put`) and written by a background writer that wakes at once and takes
whatever has queued meanwhile in one statement: under load the rows of many requests share a
transaction, and no request waits for the database. Until its row is written a queued response is
read from the queue, so a client that asks for it (or continues it) right after its answer finds it.
A periodic purge deletes the responses whose retention ended (config `responses.retention_days`).

What the queue holds is lost if the process is killed before the writer ran (a few milliseconds;
unlike spend, stored responses are not journaled). A failed write is retried every second, row by
row (a row the database refuses while it takes others is dropped, logged); meanwhile the queue holds
at most MAX_QUEUED_BYTES and refuses more (logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sqlalchemy.ext.asyncio import AsyncEngine

from polyrelay.config import ResponsesConfig
from polyrelay.store.db import driver_reason
from polyrelay.store.responses import (
    StoredResponse,
    delete_response,
    find_chain,
    find_response,
    insert_responses,
    purge_expired,
)

log = logging.getLogger("polyrelay.responses")

PURGE_INTERVAL_S = 3600.0
RETRY_S = 1.0
STOP_TIMEOUT_S = 10.0
MAX_QUEUED_BYTES = 256 * 1024 * 1024
MAX_ATTEMPTS = 30                  # failed writes (one a second) before a row the database refuses is dropped


class ResponseStore:
    def __init__(self, engine: AsyncEngine, settings: ResponsesConfig) -> None:
        self._engine = engine
        self.settings = settings
        self._queue: dict[str, StoredResponse] = {}
        self._queued_bytes = 0
        self._attempts: dict[str, int] = {}   # failed writes of a queued row, while the database refused all
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()       # one write (or delete) at a time
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def max_bytes(self) -> int:
        """The most one response (its request and response JSON) may take to be stored."""
        return int(self.settings.max_stored_mb * 1024 * 1024)

    @property
    def retention_s(self) -> int:
        return int(self.settings.retention_days * 86400)

    # ---- writing ----------------------------------------------------------------------------

    def put(self, row: StoredResponse) -> None:
        size = row.size()
        if self._queued_bytes + size > MAX_QUEUED_BYTES:
            log.error("response %s not stored: %d MB of responses are waiting for the database",
                      row.id, self._queued_bytes // (1024 * 1024))
            return
        if row.id in self._queue:
            return   # the first response under an id keeps it, as in the database (insert ... do nothing)
        self._queue[row.id] = row
        self._queued_bytes += size
        self._wake.set()

    async def flush(self) -> bool:
        """Write what is queued; False if the database refused (the rows stay queued)."""
        async with self._lock:
            if not self._queue:
                return True
            batch = list(self._queue.values())
            try:
                await insert_responses(self._engine, batch)
            except Exception as exc:
                log.warning("could not store %d responses: %s", len(batch), driver_reason(exc))
                if not await self._one_by_one(batch):
                    return False
            for row in batch:
                self._unqueue(row)
            return True

    async def _one_by_one(self, batch: list[StoredResponse]) -> bool:
        """After a failed batch: write each row alone. A row the database refuses while it takes
        another, or for the MAX_ATTEMPTS-th time, is dropped (logged), so one bad row cannot hold
        the queue; if it takes none, everything stays queued (retried)."""
        refused: list[StoredResponse] = []
        for row in batch:
            try:
                await insert_responses(self._engine, [row])
            except Exception:
                refused.append(row)
        if len(refused) == len(batch):
            for row in refused:
                self._attempts[row.id] = self._attempts.get(row.id, 0) + 1
            hopeless = [row for row in refused if self._attempts[row.id] >= MAX_ATTEMPTS]
            for row in hopeless:
                log.error("response %s dropped: the database refused it %d times", row.id, MAX_ATTEMPTS)
                self._unqueue(row)
            return False
        for row in refused:
            log.error("response %s dropped: the database refused it (and took the others)", row.id)
        return True

    def _unqueue(self, row: StoredResponse) -> None:
        self._attempts.pop(row.id, None)
        if self._queue.get(row.id) is row:
            del self._queue[row.id]
            self._queued_bytes -= row.size()

    async def _write_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not await self.flush():
                await asyncio.sleep(RETRY_S)
                self._wake.set()

    async def purge(self) -> int:
        """Delete the responses whose retention ended; return how many."""
        return await purge_expired(self._engine, int(time.time()))

    async def _purge_forever(self) -> None:
        while True:
            try:
                purged = await self.purge()
                if purged:
                    log.info("purged %d stored responses past their retention", purged)
            except Exception as exc:
                log.warning("purging expired responses failed: %s", driver_reason(exc))
            await asyncio.sleep(PURGE_INTERVAL_S)

    # ---- reading ----------------------------------------------------------------------------

    async def find(self, response_id: str) -> StoredResponse | None:
        """The unexpired response stored under `response_id` (queued or written), whoever owns it."""
        now = int(time.time())
        row = self._queue.get(response_id)
        if row is not None:
            return row if row.expires_at > now else None
        return await find_response(self._engine, response_id, now)

    async def chain(self, response_id: str) -> list[StoredResponse]:
        """`response_id` and the responses it continues, newest first (store.responses.find_chain)."""
        return await find_chain(self._engine, response_id, int(time.time()), self._queue)

    async def delete(self, response_id: str, key_id: int) -> bool:
        """Delete `key_id`'s response `response_id`, queued or written; False when it has none."""
        async with self._lock:   # not while a write holding it is under way
            row = self._queue.get(response_id)
            queued = row is not None and row.key_id == key_id
            if row is not None and queued:
                del self._queue[response_id]
                self._queued_bytes -= row.size()
            written = await delete_response(self._engine, response_id, key_id)
        return queued or written

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._write_forever(), name="responses-writer"),
                       asyncio.create_task(self._purge_forever(), name="responses-purge")]

    async def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop the background tasks and write what is queued, in bounded time."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        try:
            if not await asyncio.wait_for(self.flush(), timeout):
                log.error("%d stored responses could not be written at shutdown", len(self._queue))
        except TimeoutError:
            log.error("the database did not answer within %.0fs at shutdown: %d stored responses lost",
                      timeout, len(self._queue))
