"""Gateway nodes (processes) starting together on one new Postgres database migrate it once."""

from __future__ import annotations

import time

import pytest

from polyrelay.store.db import create_engine

_NODE_START = """
import asyncio, sys, time
import alembic.command  # noqa: F401  (imported before the gate: the nodes start their work together)
from polyrelay.config import KeyConfig
from polyrelay.store.db import create_engine, migrate
from polyrelay.store.keys import upsert_config_keys

async def start():
    engine = create_engine(sys.argv[1])
    try:
        await migrate(engine)
        await upsert_config_keys(engine, [KeyConfig(name="a", key="sk-together-a1"),
                                          KeyConfig(name="b", key="sk-together-b1", quota=2.0)])
    finally:
        await engine.dispose()

time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
asyncio.run(start())
"""


@pytest.mark.slow
async def test_postgres_nodes_starting_together_on_one_new_database_migrate_once(pg_cluster) -> None:
    """Several gateway nodes (processes) starting at the same moment on one empty Postgres database,
    doing what `serve` and `migrate` do first: each succeeds, the schema is made once, each config key
    stored once. Without the start-up lock, most runs had nodes failing on a duplicate table or key.
    (Postgres only: SQLite is one node's database; `serve --workers` migrates before forking.)"""
    import subprocess
    import sys

    from polyrelay.store.keys import list_keys

    url = pg_cluster.database("together")
    gate = str(time.time() + 2.5)   # after the imports: the nodes' first queries go out together
    nodes = [subprocess.Popen([sys.executable, "-c", _NODE_START, url, gate], stderr=subprocess.PIPE, text=True)
             for _ in range(8)]
    errors = [node.communicate(timeout=60)[1] for node in nodes]
    assert [node.returncode for node in nodes] == [0] * 8, [e[-600:] for e in errors if e]
    engine = create_engine(url)
    try:
        stored = await list_keys(engine)
    finally:
        await engine.dispose()
    assert [(k["name"], k["quota_micros"]) for k in stored] == [("a", None), ("b", 2_000_000)]
