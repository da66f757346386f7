"""Channel choice: candidates for a model and an operation by priority (higher first), weighted
random within a priority, skipping channels that cannot serve the operation (their `Capabilities`)
and channels whose circuit is open (unless every such channel's is)."""

from __future__ import annotations

import random
import time
from typing import get_args

from polyrelay.channels import Channel, Operation

_OPERATIONS: tuple[Operation, ...] = get_args(Operation)

_FAILURES_TO_OPEN = 5     # consecutive failures that open a channel's circuit
_OPEN_SECONDS = 30.0      # how long an open circuit skips the channel


class _Health:
    __slots__ = ("failures", "open_until")

    def __init__(self) -> None:
        self.failures = 0
        self.open_until = 0.0


class Router:
    def __init__(self, channels: list[Channel], rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._health = {ch.name: _Health() for ch in channels}
        enabled = [ch for ch in channels if ch.config.enabled]
        self._models = frozenset(m for ch in enabled for m in ch.models)
        # operation -> model -> tiers of the channels that can serve it, highest priority first
        self._tiers = {op: _tiers([ch for ch in enabled if ch.serves(op)]) for op in _OPERATIONS}

    def models(self) -> list[str]:
        return sorted(self._models)

    def serves(self, model: str) -> bool:
        """Some channel serves `model` (for some operation: a request for one no channel can do is
        still the model's, and answered by the operation's fallback or a 503)."""
        return model in self._models

    def candidates(self, model: str, operation: Operation) -> list[Channel]:
        """Every channel serving `model` that can do `operation`, in the order to try them."""
        ordered: list[Channel] = []
        for tier in self._tiers[operation].get(model, ()):
            ordered.extend(self._weighted_order(tier) if len(tier) > 1 else tier)
        now = time.monotonic()
        healthy = [ch for ch in ordered if self._health[ch.name].open_until <= now]
        return healthy or ordered

    def _weighted_order(self, tier: list[Channel]) -> list[Channel]:
        pool = list(tier)
        out: list[Channel] = []
        while pool:
            pick = self._rng.choices(range(len(pool)), weights=[c.config.weight for c in pool])[0]
            out.append(pool.pop(pick))
        return out

    def report(self, channel: Channel, ok: bool) -> None:
        health = self._health[channel.name]
        if ok:
            health.failures = 0
            return
        health.failures += 1
        if health.failures >= _FAILURES_TO_OPEN:
            health.open_until = time.monotonic() + _OPEN_SECONDS
            health.failures = 0


def _tiers(channels: list[Channel]) -> dict[str, list[list[Channel]]]:
    by_model: dict[str, dict[int, list[Channel]]] = {}
    for ch in channels:
        for model in ch.models:
            by_model.setdefault(model, {}).setdefault(ch.config.priority, []).append(ch)
    return {m: [tiers[p] for p in sorted(tiers, reverse=True)] for m, tiers in by_model.items()}
