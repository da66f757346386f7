"""Channel choice: candidates for a model by priority (higher first), weighted random within a
priority, skipping channels whose circuit is open (unless every channel's is).

A model's channels are the ones naming it exactly; only a name no channel names exactly goes to the
channels of the most specific pattern matching it (routing/patterns.py), resolved once per name."""

from __future__ import annotations

import random
import time

from polyrelay.channels import Channel
from polyrelay.routing.patterns import PatternTable, is_pattern

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
        by_model: dict[str, dict[int, list[Channel]]] = {}
        for ch in channels:
            if not ch.config.enabled:
                continue
            for model in ch.models:
                by_model.setdefault(model, {}).setdefault(ch.config.priority, []).append(ch)
        # model -> tiers of channels, highest priority first; patterns apart, looked up only on a miss
        ordered = {m: [tiers[p] for p in sorted(tiers, reverse=True)] for m, tiers in by_model.items()}
        self._tiers = {m: tiers for m, tiers in ordered.items() if not is_pattern(m)}
        self._patterns = PatternTable({m: tiers for m, tiers in ordered.items() if is_pattern(m)})

    def models(self) -> list[str]:
        """The exact names served (what model lists show; a pattern is no model)."""
        return sorted(self._tiers)

    def serves(self, model: str) -> bool:
        return model in self._tiers or self._patterns.lookup(model) is not None

    def candidates(self, model: str) -> list[Channel]:
        """Every channel serving `model`, in the order to try them."""
        ordered: list[Channel] = []
        tiers = self._tiers.get(model)
        if tiers is None:   # exact names first: a dict hit; a pattern only for a name no channel lists
            tiers = self._patterns.lookup(model) or []
        for tier in tiers:
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
