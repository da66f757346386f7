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


# ---- the journal and its replay, unit by unit (SQLite and Postgres) -------------------------------

@pytest.fixture
async def ledger_db(new_database_url):  # type: ignore[no-untyped-def]
    from polyrelay.config import KeyConfig
    from polyrelay.store.db import migrate
    from polyrelay.store.keys import upsert_config_keys

    engine = create_engine(new_database_url("journal"))
    await migrate(engine)
    await upsert_config_keys(engine, [KeyConfig(name="durable", key="sk-journal-key", quota=1.0)])
    yield engine
    await engine.dispose()


def _row(key_id: int, n: int) -> dict[str, Any]:
    return {"created_at": int(time.time() * 1000), "key_id": key_id, "surface": "openai", "model": "m",
            "upstream_model": "m", "channel": "c", "status": 200, "stream": False, "prompt_tokens": n,
            "completion_tokens": 1, "cached_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0,
            "usage_estimated": False, "cost_micros": n, "charged_micros": 0, "latency_ms": 1,
            "ttfb_ms": 1, "attempts": 1, "error": "control\r\nchars", "request_id": f"req-{n}"}


async def _key_state(engine) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        key = (await conn.execute(select(api_keys))).one()
        rows = (await conn.execute(select(func.count()).select_from(request_logs))).scalar_one()
    return key.spent_micros, key.leased_micros, rows


async def _die_after(engine, journal_dir: Path, flushed: list[int], unflushed: list[int]):  # type: ignore[no-untyped-def]
    """A ledger that settles `flushed` (then flushes) and `unflushed` (not flushed), then dies: its
    journal's files are closed without a word to the database, as the kernel does for kill -9."""
    from polyrelay.billing.ledger import Ledger
    from polyrelay.store.keys import find_by_hash, hash_key

    key = await find_by_hash(engine, hash_key("sk-journal-key"))
    dying = Ledger(engine, journal_dir=journal_dir)
    for costs in (flushed, unflushed):
        for cost in costs:
            await dying.settle(await dying.reserve(key, 5_000), cost, _row(key.id, cost))
        if costs is flushed:
            assert await dying.flush()
    assert dying._journal is not None
    dying._journal.close(delete=False)
    return dying


async def test_replay_writes_only_what_the_dead_process_had_not_and_returns_its_lease(
        ledger_db, tmp_path: Path) -> None:
    from polyrelay.billing.ledger import Ledger

    await _die_after(ledger_db, tmp_path, flushed=[10, 20, 30], unflushed=[40, 50])
    spent, leased, rows = await _key_state(ledger_db)
    assert (spent, rows) == (60, 3) and leased > 0        # the lease is still held by the dead process
    survivor = Ledger(ledger_db, journal_dir=tmp_path)
    assert await survivor.replay_dead_journals() == 1
    assert await _key_state(ledger_db) == (150, 0, 5)
    assert await survivor.replay_dead_journals() == 0    # the files are gone: nothing twice
    assert await _key_state(ledger_db) == (150, 0, 5)
    assert len(list(tmp_path.glob("*.journal"))) == 1, "only the survivor's own journal is left"
    await survivor.stop()
    assert list(tmp_path.glob("*.journal")) == [], "a clean stop leaves no journal"


async def test_replay_after_the_lease_was_swept_charges_the_spend_without_refunding_twice(
        ledger_db, tmp_path: Path) -> None:
    from polyrelay.billing.ledger import Ledger
    from polyrelay.store.tables import leases

    await _die_after(ledger_db, tmp_path, flushed=[7], unflushed=[11, 13])
    async with ledger_db.begin() as conn:
        await conn.execute(leases.update().values(expires_at=int(time.time()) - 1))
    survivor = Ledger(ledger_db, journal_dir=tmp_path)
    assert await survivor.sweep_expired_leases() == 1     # first the lease goes back whole ...
    assert await _key_state(ledger_db) == (7, 0, 1)
    assert await survivor.replay_dead_journals() == 1     # ... then the spend it held is charged
    assert await _key_state(ledger_db) == (31, 0, 3)
    await survivor.stop()


async def test_replay_interrupted_before_the_files_went_is_not_applied_twice(
        ledger_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from polyrelay.billing import journal
    from polyrelay.billing.ledger import Ledger

    await _die_after(ledger_db, tmp_path, flushed=[5], unflushed=[6, 7])
    real_release = journal.DeadJournal.release

    class Died(Exception):
        pass

    def die_before_unlinking(self: journal.DeadJournal, delete: bool) -> None:
        real_release(self, delete=False)
        if delete:
            raise Died

    monkeypatch.setattr(journal.DeadJournal, "release", die_before_unlinking)
    first = Ledger(ledger_db, journal_dir=tmp_path)
    with pytest.raises(Died):
        await first.replay_dead_journals()   # committed, then the replaying process died
    assert await _key_state(ledger_db) == (18, 0, 3)
    monkeypatch.setattr(journal.DeadJournal, "release", real_release)
    second = Ledger(ledger_db, journal_dir=tmp_path)
    assert await second.replay_dead_journals() == 1     # the same files again: every batch is known
    assert await _key_state(ledger_db) == (18, 0, 3)
    await first.stop()
    await second.stop()


async def test_a_live_process_journal_is_never_replayed_by_another(ledger_db, tmp_path: Path) -> None:
    from polyrelay.billing.ledger import Ledger
    from polyrelay.store.keys import find_by_hash, hash_key

    key = await find_by_hash(ledger_db, hash_key("sk-journal-key"))
    alive = Ledger(ledger_db, journal_dir=tmp_path)
    await alive.settle(await alive.reserve(key, 100), 9, _row(key.id, 9))
    other = Ledger(ledger_db, journal_dir=tmp_path)
    assert await other.replay_dead_journals() == 0       # flock held by its owner
    await alive.stop()
    assert await _key_state(ledger_db) == (9, 0, 1)
    await other.stop()


async def test_a_commit_that_raised_after_it_committed_is_not_written_again(
        ledger_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection drops as COMMIT returns: the flush sees an error, but the batch is in."""
    from polyrelay.billing import recovery as recovery_module
    from polyrelay.billing.ledger import Ledger
    from polyrelay.store.keys import find_by_hash, hash_key

    key = await find_by_hash(ledger_db, hash_key("sk-journal-key"))
    led = Ledger(ledger_db, journal_dir=tmp_path)
    await led.settle(await led.reserve(key, 100), 4, _row(key.id, 4))
    real = recovery_module.set_committed_seq
    failed = []

    async def commit_then_fail(conn, holder, seq):  # type: ignore[no-untyped-def]
        await real(conn, holder, seq)
        await conn.commit()
        if not failed:
            failed.append(seq)
            raise ConnectionError("connection lost after COMMIT")

    monkeypatch.setattr(recovery_module, "set_committed_seq", commit_then_fail)
    assert not await led.flush()
    spent, _, rows = await _key_state(ledger_db)
    assert (spent, rows) == (4, 1)   # in the database although the flush failed
    monkeypatch.setattr(recovery_module, "set_committed_seq", real)
    await led.settle(await led.reserve(key, 100), 3, _row(key.id, 3))
    assert await led.flush()
    await led.stop()
    assert await _key_state(ledger_db) == (7, 0, 2)


def test_journal_directory_defaults_next_to_the_sqlite_file_and_follows_the_environment(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from polyrelay.billing.journal import database_tag, journal_dir_for

    monkeypatch.delenv("POLYRELAY_JOURNAL_DIR", raising=False)
    assert journal_dir_for("sqlite+aiosqlite:////var/lib/p/gw.db") == Path("/var/lib/p/gw.db.ledger")
    assert journal_dir_for("sqlite+aiosqlite:///./gw.db") == Path("./gw.db.ledger")
    assert journal_dir_for("sqlite+aiosqlite://") is None
    assert journal_dir_for("postgresql+asyncpg://u:***@h/db") == Path("polyrelay-ledger")
    monkeypatch.setenv("POLYRELAY_JOURNAL_DIR", str(tmp_path))
    assert journal_dir_for("postgresql+asyncpg://u:***@h/db") == tmp_path
    # a journal is replayed into its own database only; the password is not part of the name
    assert database_tag("postgresql+asyncpg://u:a@h/db") == database_tag("postgresql+asyncpg://u:b@h/db")
    assert database_tag("postgresql+asyncpg://u@h/db1") != database_tag("postgresql+asyncpg://u@h/db2")


async def test_an_unusable_journal_directory_is_named_and_the_ledger_still_works(
        ledger_db, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from polyrelay.billing.ledger import Ledger
    from polyrelay.store.keys import find_by_hash, hash_key

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    led = Ledger(ledger_db, journal_dir=blocker / "journal")
    assert any("POLYRELAY_JOURNAL_DIR" in r.getMessage() and str(blocker) in r.getMessage()
               for r in caplog.records), caplog.text
    key = await find_by_hash(ledger_db, hash_key("sk-journal-key"))
    await led.settle(await led.reserve(key, 100), 12, _row(key.id, 12))
    await led.stop()
    assert await _key_state(ledger_db) == (12, 0, 1)


async def test_the_committed_batch_is_read_back_only_after_a_flush_that_failed(
        ledger_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flush that committed knows what the database holds: no query for it on the next one (it ran
    on every flush, ten times a second); after a failed flush it is read again."""
    from polyrelay.billing import recovery as recovery_module
    from polyrelay.billing.ledger import Ledger
    from polyrelay.store.keys import find_by_hash, hash_key

    key = await find_by_hash(ledger_db, hash_key("sk-journal-key"))
    led = Ledger(ledger_db, journal_dir=tmp_path)
    real_read, real_set = recovery_module.committed_seq, recovery_module.set_committed_seq
    reads: list[str] = []

    async def counted(conn, holder):  # type: ignore[no-untyped-def]
        reads.append(holder)
        return await real_read(conn, holder)

    monkeypatch.setattr(recovery_module, "committed_seq", counted)
    for cost in (1, 2, 3):
        await led.settle(await led.reserve(key, 100), cost, _row(key.id, cost))
        assert await led.flush()
    assert len(reads) == 1   # the first flush of the process only

    async def fail(conn, holder, seq):  # type: ignore[no-untyped-def]
        raise ConnectionError("lost")

    monkeypatch.setattr(recovery_module, "set_committed_seq", fail)
    await led.settle(await led.reserve(key, 100), 4, _row(key.id, 4))
    assert not await led.flush()
    monkeypatch.setattr(recovery_module, "set_committed_seq", real_set)
    assert await led.flush()
    assert len(reads) == 2   # read again after the failure
    await led.stop()
    assert await _key_state(ledger_db) == (10, 0, 4)
