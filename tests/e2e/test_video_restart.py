"""A gateway restart while a video job runs (issue 13): the job's quota hold survives the stop that
returns the process's lease (or a kill -9, whose lease is later swept), and when two gateways on the
same database then poll the job (their background pollers and a client asking both), it is settled
exactly once."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import openai
import pytest

from servers import Admin, Server, start_gateway

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

COST = 12 * 100_000   # 12 s at 0.10 $/s


def _config(sim_url: str) -> str:
    return f"""
channels:
  - name: sora
    type: openai
    base_url: {sim_url}/v1
    api_keys: [sk-up-sora]
    models: [sora-2]
prices:
  sora-2: {{per_second: 0.1}}
"""


def _key_row(db: Path) -> tuple[int, int, int]:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT id, spent_micros, leased_micros FROM api_keys WHERE name = 'restarter'").fetchone()
    return int(row[0]), int(row[1]), int(row[2])


def _video_logs(db: Path, key_id: int) -> list[tuple[int, int]]:
    with sqlite3.connect(db) as conn:
        return [(int(s), int(c)) for s, c in conn.execute(
            "SELECT status, charged_micros FROM request_logs WHERE key_id = ? AND surface LIKE '%:videos'",
            (key_id,))]


def _leases(db: Path, key_id: int) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COALESCE(SUM(amount_micros), 0) FROM leases WHERE key_id = ?",
                                (key_id,)).fetchone()[0])


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["graceful", "killed"])
def test_a_restart_while_a_job_runs_settles_it_exactly_once(sim: Server, tmp_path: Path, stop: signal.Signals,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYRELAY_VIDEO_POLL_S", "0.2")
    db = tmp_path / "restart.db"
    config = _config(sim.url)
    first = start_gateway(config, tmp_path, db_name=db.name)
    key = Admin(first.url).create_key("restarter", quota=10.0)
    client = openai.OpenAI(api_key=key, base_url=first.url + "/v1", max_retries=0)
    video = client.videos.create(model="sora-2", seconds="12", prompt="a long take [[sim:video_ms=4000]]")
    assert video.status in ("queued", "in_progress")
    # graceful: the process gives its lease back (not the job's hold); killed: its lease stays until
    # swept, and the hold never was in it
    assert first.stop(stop) in (0, -stop)

    key_id, spent, leased = _key_row(db)
    assert spent == 0 and leased == COST and _leases(db, key_id) == 0   # only the hold is left, durable

    others = [start_gateway(config, tmp_path, db_name=db.name) for _ in range(2)]
    try:
        clients = [openai.OpenAI(api_key=key, base_url=g.url + "/v1", max_retries=0) for g in others]
        deadline = time.monotonic() + 20
        seen: list[str] = []
        while time.monotonic() < deadline:
            for c in clients:
                seen.append(c.videos.retrieve(video.id).status)
            if seen[-1] == "completed" and seen[-2] == "completed":
                break
            time.sleep(0.05)
        assert seen[-2:] == ["completed", "completed"]
        time.sleep(0.6)   # both pollers and both clients have had their go at the finished job
        key_id, spent, leased = _key_row(db)
        assert spent == COST
        assert _video_logs(db, key_id) == [(200, COST)]   # one settlement, one log row
        assert leased == _leases(db, key_id)   # no hold left behind: what is leased is in live leases
    finally:
        for g in others:
            g.stop()
    assert _key_row(db)[1:] == (COST, 0)
