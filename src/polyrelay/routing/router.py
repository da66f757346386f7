"""Channel choice: candidates for a model and an operation by priority (higher first), weighted
random within a priority, skipping channels that cannot serve the operation (their `Capabilities`)
and channels whose circuit is open (unless every such channel's is).

A model's channels are the ones naming it exactly; only a name no channel names exactly goes to the
channels of the most specific pattern matching it (routing/patterns.py), resolved once per name."""

from __future__ import annotations

import random
import time
from typing import get_args

from polyrelay.channels import Channel, Operation
from polyrelay.routing.patterns import PatternTable, is_pattern

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
        self._models = frozenset(m for ch in enabled for m in ch.models if not is_pattern(m))
        # operation -> (exact model -> tiers, pattern -> tiers) of the channels that can serve it,
        # highest priority first; patterns are looked up only for a name no channel lists exactly
        self._tiers = {op: _tiers([ch for ch in enabled if ch.serves(op)]) for op in _OPERATIONS}
        # models a channel marks as image models (`image_models`): chat requests to them make images
        marked = {m for ch in enabled for m in ch.config.image_models}
        self._image_patterns: PatternTable[bool] = PatternTable({m: True for m in marked if is_pattern(m)})
        # exact names resolved here (a pattern may mark a name listed exactly): one set look-up per request
        self._image_models = frozenset(m for m in self._models
                                       if m in marked or self._image_patterns.lookup(m))
        self.has_image_models = bool(marked)

    def is_image_model(self, model: str) -> bool:
        if model in self._image_models:
            return True
        return model not in self._models and bool(self._image_patterns.lookup(model))

    def models(self) -> list[str]:
        """The exact names served (what model lists show; a pattern is no model)."""
        return sorted(self._models)

    def serves(self, model: str) -> bool:
        """Some channel serves `model` (for some operation: a request for one no channel can do is
        still the model's, and answered by the operation's fallback or a 503)."""
        return model in self._models or any(patterns.lookup(model) is not None
                                            for _, patterns in self._tiers.values())

    def candidates(self, model: str, operation: Operation) -> list[Channel]:
        """Every channel serving `model` that can do `operation`, in the order to try them."""
        ordered: list[Channel] = []
        exact, patterns = self._tiers[operation]
        tiers = exact.get(model)
        if tiers is None:   # exact names first: a dict hit; a pattern only for a name no channel lists
            tiers = patterns.lookup(model) or []
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


_Tiers = list[list[Channel]]


def _tiers(channels: list[Channel]) -> tuple[dict[str, _Tiers], PatternTable[_Tiers]]:
    by_model: dict[str, dict[int, list[Channel]]] = {}
    for ch in channels:
        for model in ch.models:
            by_model.setdefault(model, {}).setdefault(ch.config.priority, []).append(ch)
    ordered = {m: [tiers[p] for p in sorted(tiers, reverse=True)] for m, tiers in by_model.items()}
    return ({m: tiers for m, tiers in ordered.items() if not is_pattern(m)},
            PatternTable({m: tiers for m, tiers in ordered.items() if is_pattern(m)}))
