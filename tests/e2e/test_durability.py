"""Nothing settled is lost when the gateway process dies: kill -9 under load, SIGTERM while the database
cannot be written. Real processes, real signals; the database is reconciled with what the clients got."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from polyrelay.store.db import create_engine
from polyrelay.store.tables import api_keys, request_logs
from servers import Admin, Server, start_gateway, start_simulator

CLIENTS = 50
KEY = "sk-durable-0001"


def _config(sim_url: str) -> str:
    # one micro-dollar per token: the cost of an answer is its total token count
    return f"""
channels:
  - name: sim
    base_url: {sim_url}/v1
    api_keys: [sk-up-durable]
    models: [gpt-4o]
keys:
  - name: durable
    key: {KEY}
    quota: 10.0
  - name: untouched
    key: sk-durable-untouched-0001
    quota: 10.0
prices:
  gpt-4o: {{input: 1.0, output: 1.0}}
"""


class Load:
    """CLIENTS concurrent clients sending small chat requests until stopped; what each one got back."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: list[tuple[str | None, int]] = []   # (x-request-id, total tokens) per 200
        self.errors = 0
        self._stop = asyncio.Event()

    async def _client(self, http: httpx.AsyncClient, n: int) -> None:
        body = {"model": "gpt-4o", "max_tokens": 40,
                "messages": [{"role": "user", "content": f"client {n} [[sim:words=8]]"}]}
        while not self._stop.is_set():
            try:
                r = await http.post("/v1/chat/completions", json=body,
                                    headers={"Authorization": f"Bearer {KEY}"})
            except httpx.HTTPError:
                self.errors += 1
                await asyncio.sleep(0.05)
                continue
            if r.status_code == 200:
                self.answers.append((r.headers.get("x-request-id"), r.json()["usage"]["total_tokens"]))
            else:
                self.errors += 1
                await asyncio.sleep(0.01)

    async def run(self, until: Any) -> None:
        """Run the clients while `until()` (a coroutine) runs; stop them when it returns."""
        async with httpx.AsyncClient(base_url=self.url, timeout=30,
                                     limits=httpx.Limits(max_connections=CLIENTS)) as http:
            tasks = [asyncio.create_task(self._client(http, n)) for n in range(CLIENTS)]
            try:
                await until()
            finally:
                self._stop.set()
                await asyncio.wait(tasks, timeout=30)


async def _stored(url: str) -> tuple[dict[str, int], dict[str | None, int], int]:
    """(the key's row, charged per request id, number of log rows) as the database has them."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            key = (await conn.execute(select(api_keys).where(api_keys.c.name == "durable"))).one()
            rows = (await conn.execute(select(request_logs.c.request_id, request_logs.c.charged_micros)
                                       .where(request_logs.c.key_id == key.id))).all()
            # served requests only: refused or failed ones (a 503 while the lease cannot be written)
            # are logged too, without reaching the simulator
            total = (await conn.execute(select(func.count()).select_from(request_logs)
                                        .where(request_logs.c.status == 200))).scalar_one()
        return dict(key._mapping), {r.request_id: r.charged_micros for r in rows}, total
    finally:
        await engine.dispose()


def _reconcile(load: Load, sim_served: int, url: str, what: str) -> dict[str, int]:
    """The database after a restart against the answers the clients received."""
    key, charged, rows = asyncio.run(_stored(url))
    received = sum(tokens for _, tokens in load.answers)
    logged_spend = sum(charged.values())
    figures = {"answers": len(load.answers), "received_micros": received, "spent_micros": key["spent_micros"],
               "log_rows": rows, "sim_served": sim_served,
               "lost_micros": max(0, received - key["spent_micros"]),
               "lost_rows": max(0, len(load.answers) - rows)}
    print(f"\n{what}: {figures}")
    assert load.answers, "the load got no answers at all"
    # every answer a client received was settled before it was sent: each has its log row and charge
    missing = [rid for rid, _ in load.answers if rid not in charged]
    assert not missing, f"{len(missing)} of {len(load.answers)} answered requests have no log row ({figures})"
    wrong = [(rid, tokens, charged[rid]) for rid, tokens in load.answers if charged[rid] != tokens]
    assert not wrong, wrong[:5]
    # requests settled but killed before their answer went out are billed too, never more than served
    assert len(load.answers) <= rows <= sim_served
    assert key["spent_micros"] == logged_spend, "spend and log rows are written together"
    assert received <= key["spent_micros"]
    assert key["leased_micros"] == 0, "the dead process's lease went back to the key with its replay"
    return figures


def _sim_served(sim: Server) -> int:
    return int(httpx.get(sim.url + "/sim/stats").json()["requests"])


def _kill9_under_load(tmp_path: Path, database_url: str) -> None:
    sim = start_simulator(tmp_path)
    gateway = start_gateway(_config(sim.url), tmp_path, database_url=database_url)
    try:
        load = Load(gateway.url)

        async def then_kill() -> None:
            deadline = time.monotonic() + 20
            while len(load.answers) < 400 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert gateway.proc is not None
            gateway.proc.send_signal(signal.SIGKILL)   # mid-load: ~50 requests in flight
            gateway.proc.wait(10)

        asyncio.run(load.run(then_kill))
        served = _sim_served(sim)
        again = Server(gateway.args, gateway.port, tmp_path, env=gateway.env).start()  # replays the journal
        try:
            Admin(again.url).logs(1)   # the restart is serving; its start-up replay is committed
        finally:
            assert again.stop() in (0, -signal.SIGTERM)
        _reconcile(load, served, database_url, "kill -9")
    finally:
        gateway.stop()
        sim.stop()


@pytest.mark.slow
def test_kill_9_under_50_clients_loses_no_settled_spend_or_log_row(tmp_path: Path, new_database_url) -> None:
    _kill9_under_load(tmp_path, new_database_url("kill9"))


# ---- SIGTERM while the database cannot be written -------------------------------------------------

class ReadOnly:
    """Make the gateway's database unwritable and writable again, under the gateway's feet."""

    def __init__(self, database: str, url: str, request: pytest.FixtureRequest) -> None:
        self.database, self.url = database, url
        self.cluster = request.getfixturevalue("pg_cluster") if database == "postgres" else None

    def _psql(self, sql: str) -> None:
        assert self.cluster is not None
        done = subprocess.run([str(self.cluster.bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                               "-h", "127.0.0.1", "-p", str(self.cluster.port), "-U", "postgres",
                               "-d", "postgres", "-c", sql], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr

    def _files(self) -> list[str]:
        path = self.url.removeprefix("sqlite:///")
        # not the -shm file: SQLite writes it through a memory map, where EPERM is a SIGBUS
        return [p for p in (path, path + "-wal") if Path(p).exists()]

    def on(self) -> None:
        if self.database == "postgres":
            name = self.url.rsplit("/", 1)[1]
            self._psql(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
            # the gateway's pooled sessions reconnect, read-only
            self._psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        else:   # EPERM on every write, even through the descriptors SQLite holds open (root; ext4)
            subprocess.run(["chattr", "+i", *self._files()], check=True)

    def off(self) -> None:
        if self.database == "postgres":
            name = self.url.rsplit("/", 1)[1]
            self._psql(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        else:
            subprocess.run(["chattr", "-i", *self._files()], check=True)


@pytest.mark.slow
def test_sigterm_while_the_database_is_read_only_keeps_spend_and_logs_for_the_next_start(
        tmp_path: Path, database: str, new_database_url, request: pytest.FixtureRequest) -> None:
    url = new_database_url("readonly")
    sim = start_simulator(tmp_path)
    gateway = start_gateway(_config(sim.url), tmp_path, database_url=url)
    read_only = ReadOnly(database, url, request)
    try:
        load = Load(gateway.url)

        async def read_only_then_stop() -> None:
            deadline = time.monotonic() + 20
            while len(load.answers) < 100 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            await asyncio.to_thread(read_only.on)
            before = len(load.answers)
            deadline = time.monotonic() + 20
            while len(load.answers) < before + 300 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)   # served from the quota lease: settled, not yet written

        asyncio.run(load.run(read_only_then_stop))
        # a key with no lease in this process yet needs the database to reserve: 503, not 500
        for path, headers in (("/v1/chat/completions", {"Authorization": "Bearer sk-durable-untouched-0001"}),
                              ("/v1/messages", {"x-api-key": "sk-durable-untouched-0001"})):
            r = httpx.post(gateway.url + path, headers=headers, timeout=30,
                           json={"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})
            assert r.status_code == 503, r.text
            assert "database" in r.text and (r.json().get("type") == "error" or "error" in r.json()), r.text
        assert gateway.proc is not None
        started = time.monotonic()
        gateway.proc.send_signal(signal.SIGTERM)
        gateway.proc.wait(60)
        stopped_in = time.monotonic() - started
        served = _sim_served(sim)
        read_only.off()
        assert stopped_in < 20, f"shutdown took {stopped_in:.1f}s with an unwritable database"
        again = Server(gateway.args, gateway.port, tmp_path, env=gateway.env).start()
        try:
            Admin(again.url).logs(1)
        finally:
            assert again.stop() in (0, -signal.SIGTERM)
        _reconcile(load, served, url, f"SIGTERM, read-only {database}, stopped in {stopped_in:.1f}s")
    finally:
        read_only.off() if gateway.proc and gateway.proc.poll() is None else None
        gateway.stop()
        sim.stop()
