"""Gateway API keys: stored hashed (SHA-256 of the key; keys are high-entropy), shown by prefix only."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time

import msgspec
from sqlalchemy import case, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from polyrelay.config import KeyConfig
from polyrelay.store.db import lock_for_start
from polyrelay.store.tables import api_keys

log = logging.getLogger("polyrelay.keys")

# `source` values: keys of the YAML config, keys that left it (revoked at start), and keys made or
# taken over by hand (`polyrelay keys create|enable`, the admin API).
CONFIG = "config"
LEFT_CONFIG = "config-removed"
MANUAL = "cli"


class KeyRecord(msgspec.Struct, frozen=True):
    id: int
    name: str
    prefix: str
    quota_micros: int | None      # None = unlimited
    models: frozenset[str]        # empty = every model
    enabled: bool


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str:
    return key[:7] + "..."


def generate_key() -> str:
    return "sk-pr-" + secrets.token_urlsafe(32)


def usd_to_micros(usd: float | None) -> int | None:
    return None if usd is None else round(usd * 1_000_000)


def _record(row) -> KeyRecord:  # type: ignore[no-untyped-def]
    return KeyRecord(id=row.id, name=row.name, prefix=row.key_prefix, quota_micros=row.quota_micros,
                     models=frozenset(json.loads(row.models)), enabled=bool(row.enabled))


async def find_by_hash(engine: AsyncEngine, digest: str) -> KeyRecord | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(api_keys).where(api_keys.c.key_hash == digest))).first()
    return _record(row) if row else None


async def upsert_config_keys(engine: AsyncEngine, keys: list[KeyConfig]) -> None:
    """Make the store match the config's keys (by name); spend already recorded is kept.

    A key that came from the config and is no longer in it is revoked: disabled, not deleted (its
    spend and logs stay), with one warning per key, and marked LEFT_CONFIG, so that enabling it by
    hand later makes it a manually managed key that later starts leave alone (see set_enabled).
    Keys made by the CLI or admin API are not touched. A revoked key that comes back in the config
    is a config key again, enabled by the upsert below.
    """
    now = int(time.time())
    hash_by_name = {k.name: hash_key(k.key) for k in keys}
    hashes = set(hash_by_name.values())
    revoked: list[str] = []
    async with engine.begin() as conn:
        await lock_for_start(conn)   # Postgres: another node starting now waits, then finds the keys
        # disabled ones too: keys revoked before LEFT_CONFIG existed are still marked CONFIG
        from_config = (await conn.execute(select(
            api_keys.c.id, api_keys.c.name, api_keys.c.enabled, api_keys.c.key_hash).where(
            api_keys.c.source == CONFIG))).all()
        for row in from_config:
            if row.name not in hash_by_name and row.key_hash not in hashes:   # (same value: a rename, below)
                await conn.execute(update(api_keys).where(api_keys.c.id == row.id).values(
                    enabled=False, source=LEFT_CONFIG))
                if row.enabled:
                    revoked.append(row.name)
        for k in keys:
            values = dict(key_hash=hash_by_name[k.name], key_prefix=key_prefix(k.key),
                          quota_micros=usd_to_micros(k.quota), models=json.dumps(sorted(k.models)),
                          enabled=k.enabled, source=CONFIG)
            found = (await conn.execute(select(api_keys.c.id).where(api_keys.c.name == k.name))).first()
            if found is None:   # the same key value under another name: renamed in the config (or made
                # by hand first): that row, with its spend and logs, takes the config's name
                found = (await conn.execute(select(api_keys.c.id).where(
                    api_keys.c.key_hash == values["key_hash"]))).first()
                if found is not None:
                    values["name"] = k.name
            if found:
                await conn.execute(update(api_keys).where(api_keys.c.id == found.id).values(**values))
            else:
                await conn.execute(api_keys.insert().values(name=k.name, created_at=now, **values))
    for name in revoked:  # after the commit: only keys really disabled are reported
        log.warning("polyrelay: key '%s' is no longer in the config: disabled (spend and logs kept)", name)


async def create_key(engine: AsyncEngine, name: str, quota_usd: float | None,
                     models: list[str], key: str | None = None) -> str:
    """Store a new key and return its plain value (shown once)."""
    key = key or generate_key()
    async with engine.begin() as conn:
        await conn.execute(api_keys.insert().values(
            name=name, key_hash=hash_key(key), key_prefix=key_prefix(key),
            quota_micros=usd_to_micros(quota_usd), models=json.dumps(sorted(models)),
            enabled=True, source=MANUAL, created_at=int(time.time())))
    return key


async def set_enabled(engine: AsyncEngine, name: str, enabled: bool) -> bool:
    """Enable or disable a key by name; False if there is no such key.

    Enabling a key revoked because it left the config makes it a manually managed key (MANUAL), so
    the next start does not disable it again. A key still in the config stays a config key.
    """
    values: dict[str, object] = {"enabled": enabled}
    if enabled:
        values["source"] = case((api_keys.c.source == LEFT_CONFIG, MANUAL), else_=api_keys.c.source)
    async with engine.begin() as conn:
        result = await conn.execute(update(api_keys).where(api_keys.c.name == name).values(**values))
    return result.rowcount == 1


async def list_keys(engine: AsyncEngine) -> list[dict[str, object]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(api_keys).order_by(api_keys.c.id))).all()
    return [dict(name=r.name, prefix=r.key_prefix, quota_micros=r.quota_micros,
                 spent_micros=r.spent_micros, leased_micros=r.leased_micros,
                 models=json.loads(r.models), enabled=bool(r.enabled), source=r.source) for r in rows]


async def spent_micros(engine: AsyncEngine, key_id: int) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(
            select(api_keys.c.spent_micros).where(api_keys.c.id == key_id))).scalar_one())
