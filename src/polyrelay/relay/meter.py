"""One request's bookkeeping: its reservation, timings and the log row written when it ends."""

from __future__ import annotations

import time

from polyrelay import ir
from polyrelay.billing.ledger import Ledger, Reservation
from polyrelay.billing.prices import Price, bounded_usage, cost_micros
from polyrelay.store.keys import KeyRecord


class Meter:
    __slots__ = ("_ledger", "reservation", "_price", "key", "surface", "model", "stream",
                 "started", "ttfb", "attempts", "channel", "upstream_model", "_closed")

    def __init__(self, ledger: Ledger, reservation: Reservation | None, price: Price | None, key: KeyRecord,
                 surface: str, model: str, stream: bool, started: float) -> None:
        self._ledger = ledger
        self.reservation = reservation   # None until held (a request refused for quota holds nothing)
        self._price = price
        self.key = key
        self.surface = surface
        self.model = model
        self.stream = stream
        self.started = started
        self.ttfb: float | None = None
        self.attempts = 0
        self.channel: str | None = None
        self.upstream_model: str | None = None
        self._closed = False

    def first_byte(self) -> None:
        if self.ttfb is None:
            self.ttfb = time.perf_counter()

    async def succeed(self, usage: ir.Usage, status: int = 200, error: str | None = None) -> None:
        """Settle the reservation to the cost of `usage` and log the request."""
        if self._closed:
            return
        self._closed = True
        usage = bounded_usage(usage)
        cost = cost_micros(self._price, usage)
        assert self.reservation is not None, "settling a request that holds no reservation"
        charged = await self._ledger.settle(self.reservation, cost)
        self._log(status, usage, cost, charged, error)

    def fail(self, status: int, error: str) -> None:
        """Refund the whole reservation and log the failure (never billed)."""
        if self._closed:
            return
        self._closed = True
        if self.reservation is not None:
            self._ledger.refund(self.reservation)
        self._log(status, None, 0, 0, error)

    def _log(self, status: int, usage: ir.Usage | None, cost: int, charged: int, error: str | None) -> None:
        now = time.perf_counter()
        u = usage or ir.Usage()
        self._ledger.record({
            "created_at": int(time.time() * 1000),
            "key_id": self.key.id,
            "surface": self.surface,
            "model": self.model,
            "upstream_model": self.upstream_model,
            "channel": self.channel,
            "status": status,
            "stream": self.stream,
            "prompt_tokens": u.input_tokens,
            "completion_tokens": u.output_tokens,
            "cached_tokens": u.cache_read_tokens,
            "cache_write_tokens": u.cache_write_tokens,
            "reasoning_tokens": u.reasoning_tokens,
            "usage_estimated": u.estimated,
            "cost_micros": cost,
            "charged_micros": charged,
            "latency_ms": round((now - self.started) * 1000),
            "ttfb_ms": None if self.ttfb is None else round((self.ttfb - self.started) * 1000),
            "attempts": self.attempts,
            "error": error[:500] if error else None,
        })
