"""The key cache (relay/auth.py): one database look-up per key however many requests bring it, and
bounded memory whatever keys arrive."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest


def test_key_cache_memory_is_bounded_whatever_keys_arrive(tmp_path: Path) -> None:
    """Keys over 256 characters are refused without a look-up or an entry; misses are capped."""
    from polyrelay.config import KeyConfig
    from polyrelay.errors import GatewayError
    from polyrelay.relay import auth
    from polyrelay.store.db import create_engine, migrate
    from polyrelay.store.keys import hash_key, upsert_config_keys

    async def run() -> None:
        engine = create_engine(f"sqlite:///{tmp_path}/keys.db")
        await migrate(engine)
        await upsert_config_keys(engine, [KeyConfig(name="k", key="sk-real-0001")])
        lookups = 0
        real = auth.find_by_hash

        async def counting(*args):  # type: ignore[no-untyped-def]
            nonlocal lookups
            lookups += 1
            return await real(*args)

        auth.find_by_hash = counting  # type: ignore[assignment]
        try:
            cache = auth.KeyCache(engine)
            for i in range(50):
                with pytest.raises(GatewayError) as err:
                    await cache.authenticate(f"{i:04d}" + "k" * (1 << 20))
                assert err.value.status == 401
            assert lookups == 0 and not cache._entries and not cache._misses
            for i in range(auth.MAX_MISSES + 500):
                with pytest.raises(GatewayError):
                    await cache.authenticate(f"sk-bogus-{i}")
            assert len(cache._misses) == auth.MAX_MISSES
            assert (await cache.authenticate("sk-real-0001")).name == "k"
            # keyed by the SHA-256 the database stores: no key a caller sent stays in memory
            assert [digest.hex() for digest in cache._entries] == [hash_key("sk-real-0001")]
            assert all(isinstance(k, bytes) and len(k) == 32 for k in (*cache._entries, *cache._misses))
        finally:
            auth.find_by_hash = real  # type: ignore[assignment]
            await engine.dispose()

    asyncio.run(run())


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
