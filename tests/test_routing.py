"""Channel choice: priority, weighted random within a priority, circuit breaking, key rotation."""

from __future__ import annotations

import random
from collections import Counter

import httpx

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


def test_channel_keys_rotate(client, sim_http: httpx.Client) -> None:
    sim_http.post("/sim/reset")
    for _ in range(4):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    keys = [r["headers"]["authorization"] for r in sim_http.get("/sim/requests").json()]
    assert keys.count("Bearer sk-up-1") == 2 and keys.count("Bearer sk-up-2") == 2


def test_disabled_channel_serves_nothing() -> None:
    off = build_channel(ChannelConfig(name="off", base_url="http://x/v1", models=["m"], enabled=False))
    assert Router([off]).candidates("m", "generate") == [] and not Router([off]).serves("m")


async def test_key_cache_looks_a_key_up_once_however_many_requests_bring_it(tmp_path) -> None:
    import asyncio

    from polyrelay.config import KeyConfig
    from polyrelay.relay import auth
    from polyrelay.store.db import create_engine, migrate
    from polyrelay.store.keys import upsert_config_keys

    engine = create_engine(f"sqlite:///{tmp_path}/keys.db")
    await migrate(engine)
    await upsert_config_keys(engine, [KeyConfig(name="k", key="sk-cache-test")])
    calls = 0
    real = auth.find_by_hash

    async def counting(*args):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return await real(*args)

    auth.find_by_hash = counting  # type: ignore[assignment]
    try:
        cache = auth.KeyCache(engine, ttl=0.2)
        records = await asyncio.gather(*(cache.authenticate("sk-cache-test") for _ in range(50)))
        assert calls == 1 and {r.name for r in records} == {"k"}
        await asyncio.sleep(0.17)             # past the refresh point, before expiry
        await asyncio.gather(*(cache.authenticate("sk-cache-test") for _ in range(50)))
        await asyncio.sleep(0.02)
        assert calls == 2                     # one background refresh, nobody waited for it
        unknown = await asyncio.gather(*(cache.authenticate("sk-nope") for _ in range(20)), return_exceptions=True)
        assert calls == 3 and all(getattr(e, "status", None) == 401 for e in unknown)
    finally:
        auth.find_by_hash = real  # type: ignore[assignment]
        await engine.dispose()
