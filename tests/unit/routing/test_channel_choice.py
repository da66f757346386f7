"""Channel choice: priority, weighted random within a priority, circuit breaking (key rotation over
HTTP: tests/e2e/test_channel_keys.py)."""

from __future__ import annotations

import random
from collections import Counter

from polyrelay.channels import build_channel
from polyrelay.config import ChannelConfig
from polyrelay.routing.router import Router


def channel(name: str, priority: int = 0, weight: int = 1, models: tuple[str, ...] = ("m",)):  # type: ignore[no-untyped-def]
    return build_channel(ChannelConfig(name=name, base_url="http://x/v1", models=list(models),
                                       priority=priority, weight=weight, api_keys=["k1", "k2"]))


def test_higher_priority_first_then_weighted_random_within_a_priority() -> None:
    router = Router([channel("low", 0), channel("a", 5, weight=3), channel("b", 5, weight=1)], random.Random(7))
    firsts = Counter(router.candidates("m", "generate")[0].name for _ in range(4000))
    assert set(firsts) == {"a", "b"}
    assert 2.6 < firsts["a"] / firsts["b"] < 3.4
    assert all(router.candidates("m", "generate")[-1].name == "low" for _ in range(50))
    assert router.candidates("other", "generate") == []


def test_a_failing_channel_is_skipped_while_its_circuit_is_open() -> None:
    bad, good = channel("bad", 9), channel("good", 0)
    router = Router([bad, good])
    for _ in range(5):
        router.report(bad, ok=False)
    assert [c.name for c in router.candidates("m", "generate")] == ["good"]
    router.report(good, ok=False)  # every channel failing: still try them all rather than none
    for _ in range(4):
        router.report(good, ok=False)
    assert {c.name for c in router.candidates("m", "generate")} == {"bad", "good"}


def test_disabled_channel_serves_nothing() -> None:
    off = build_channel(ChannelConfig(name="off", base_url="http://x/v1", models=["m"], enabled=False))
    assert Router([off]).candidates("m", "generate") == [] and not Router([off]).serves("m")
