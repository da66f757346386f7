"""The database, on SQLite and Postgres: the migrations' head, 64-bit money and log ids, engines that
hide SQL parameters from their errors and logs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from polyrelay.config import KeyConfig
from polyrelay.store.db import create_engine, migrate
from polyrelay.store.keys import upsert_config_keys
from polyrelay.store.tables import api_keys


@pytest.fixture
async def engine(new_database_url):  # type: ignore[no-untyped-def]
    """A migrated, empty database, on SQLite and on Postgres (see conftest's `database`)."""
    engine = create_engine(new_database_url("schema"))
    await migrate(engine)
    yield engine
    await engine.dispose()


def _log_row(key_id: int) -> dict[str, object]:
    return {"created_at": int(time.time() * 1000), "key_id": key_id, "surface": "openai", "model": "m",
            "upstream_model": "m", "channel": "c", "status": 200, "stream": True, "prompt_tokens": 1,
            "completion_tokens": 1, "cached_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0,
            "usage_estimated": False, "cost_micros": 120, "charged_micros": 120, "latency_ms": 1,
            "ttfb_ms": 1, "attempts": 1, "error": None}


def test_head_revision_constant_matches_the_migration_scripts() -> None:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    from polyrelay.store import db

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(db._MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == db.HEAD_REVISION
async def test_migrated_schema_holds_64_bit_money_and_log_ids(engine) -> None:
    """Micro-dollar columns and request log ids are 64-bit on both databases (Postgres INTEGER is not)."""
    from sqlalchemy import inspect, text

    from polyrelay.store.db import HEAD_REVISION
    from polyrelay.store.keys import list_keys
    from polyrelay.store.logs import insert_logs, recent_logs

    await upsert_config_keys(engine, [KeyConfig(name="k", key="sk-ledger-key", quota=0.001),
                                      KeyConfig(name="rich", key="sk-ledger-rich", quota=1e12)])
    async with engine.begin() as conn:
        assert (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar() == HEAD_REVISION
        if conn.dialect.name == "postgresql":
            types = await conn.run_sync(lambda sync: {
                (table, c["name"]): str(c["type"]) for table in ("api_keys", "leases", "request_logs")
                for c in inspect(sync).get_columns(table)})
            for column in [("api_keys", "quota_micros"), ("api_keys", "spent_micros"),
                           ("api_keys", "leased_micros"), ("leases", "amount_micros"),
                           ("request_logs", "id"), ("request_logs", "cost_micros"),
                           ("request_logs", "charged_micros"), ("request_logs", "created_at")]:
                assert types[column] == "BIGINT", (column, types[column])
            await conn.execute(text("SELECT setval(pg_get_serial_sequence('request_logs', 'id'), 3000000000)"))
        big = 3 * 10**15    # $3 billion in micro-dollars: past 32 bits
        rich = next(k for k in await list_keys(engine) if k["name"] == "rich")
        await conn.execute(api_keys.update().where(api_keys.c.name == "rich").values(spent_micros=big))
        await insert_logs(conn, [{**_log_row(1), "charged_micros": big, "cost_micros": big}])
    assert rich["quota_micros"] == 10**18
    assert next(k for k in await list_keys(engine) if k["name"] == "rich")["spent_micros"] == big
    [row] = await recent_logs(engine, 1)
    assert row["charged_micros"] == big and row["stream"] is True and row["usage_estimated"] is False
    if engine.dialect.name == "postgresql":
        assert row["id"] > 2**31


def test_engines_never_show_sql_parameters(tmp_path: Path) -> None:
    from polyrelay.store.db import create_engine

    assert create_engine(f"sqlite:///{tmp_path}/x.db").sync_engine.hide_parameters
    assert create_engine("postgresql://u:p@127.0.0.1:1/db").sync_engine.hide_parameters
