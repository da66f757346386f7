"""The ledger's journal and its replay, unit by unit, on SQLite and Postgres: what a dead process
settled but had not flushed reaches the database once. (The kill -9 and SIGTERM runs over real
processes are in tests/e2e/test_durability.py.)"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from polyrelay.store.db import create_engine
from polyrelay.store.tables import api_keys, request_logs

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
