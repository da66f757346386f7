"""One request's bookkeeping: its reservation, timings and the log row written when it ends."""

from __future__ import annotations

import time

from polyrelay import ir, logs
from polyrelay.billing.ledger import Ledger, Reservation
from polyrelay.billing.prices import Price, bounded_usage, cost_micros
from polyrelay.store.keys import KeyRecord


class Meter:
    __slots__ = ("_ledger", "reservation", "_price", "key", "surface", "model", "stream",
                 "started", "ttfb", "attempts", "channel", "upstream_model", "dropped", "_closed", "_ctx")

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
        self.dropped: str | None = None   # what a conversion could not carry (x-polyrelay-dropped)
        self._closed = False
        self._ctx = logs.CURRENT.get()

    @property
    def price(self) -> Price | None:
        """The price the request was reserved at (what it is settled at, even after a reload)."""
        return self._price

    def first_byte(self) -> None:
        if self.ttfb is None:
            self.ttfb = time.perf_counter()

    async def succeed(self, usage: ir.Usage, status: int = 200, error: str | None = None,
                      cost: int | None = None) -> None:
        """Settle the reservation to the cost of `usage` (or to `cost`, an operation priced in
        another unit: images) and log the request."""
        if self._closed:
            return
        self._closed = True
        usage = bounded_usage(usage)
        if cost is None:
            cost = cost_micros(self._price, usage)
        assert self.reservation is not None, "settling a request that holds no reservation"
        row = self._row(status, usage, cost, error)
        # the row goes with the charge: one journal line, so a process that dies keeps both
        await self._ledger.settle(self.reservation, cost, row)
        self._access(row)

    def hand_over(self) -> None:
        """The reservation now belongs to a durable hold (billing/holds.py: a video job settles or
        refunds it later, logging then): close the meter without settling, refunding or logging."""
        self._closed = True

    def fail(self, status: int, error: str) -> None:
        """Refund the whole reservation and log the failure (never billed)."""
        if self._closed:
            return
        self._closed = True
        if self.reservation is not None:
            self._ledger.refund(self.reservation)
        row = self._row(status, None, 0, error)
        self._ledger.record(row)
        self._access(row)

    def _access(self, row: dict[str, object]) -> None:
        logs.access(self._ctx, self.key.name, self.surface, self.model, self.channel, row["status"],  # type: ignore[arg-type]
                    row["prompt_tokens"], row["completion_tokens"], row["charged_micros"],  # type: ignore[arg-type]
                    row["latency_ms"])  # type: ignore[arg-type]

    def _row(self, status: int, usage: ir.Usage | None, cost: int, error: str | None) -> dict[str, object]:
        """The request log row; `charged_micros` is filled in by the ledger's settle."""
        now = time.perf_counter()
        u = usage or ir.Usage()
        return {
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
            "charged_micros": 0,
            "latency_ms": round((now - self.started) * 1000),
            "ttfb_ms": None if self.ttfb is None else round((self.ttfb - self.started) * 1000),
            "attempts": self.attempts,
            "error": error[:500] if error else None,
            "request_id": self._ctx.id if self._ctx is not None else None,
            "dropped": self.dropped,
        }
