"""Reloading the config of a running gateway: `POST /admin/reload`, SIGHUP and `polyrelay reload` re-read
the file the gateway was started with, validate it fully and swap channels, models, prices and config
keys at once; a file that does not validate changes nothing; a request under way finishes with what it
started with (channel and price)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from servers import ADMIN_TOKEN, Admin, Server, free_port, start_gateway

ALICE = {"authorization": "Bearer sk-reload-alice-01"}
BOB = {"authorization": "Bearer sk-reload-bob-0002"}


def first_config(sim_url: str) -> str:
    return f"""
channels:
  - name: first
    base_url: {sim_url}/v1
    api_keys: [sk-up-first]
    models: [model-a, shared]
keys:
  - name: reload-alice
    key: sk-reload-alice-01
prices:
  model-a: {{input: 1.0, output: 1.0}}
  shared: {{input: 1.0, output: 1.0}}
"""


def second_config(sim_url: str) -> str:
    """`first` and model-a gone; `second` and model-b new; shared 100 times dearer; a new key."""
    return f"""
channels:
  - name: second
    base_url: {sim_url}/v1
    api_keys: [sk-up-second]
    models: [model-b, shared]
keys:
  - name: reload-alice
    key: sk-reload-alice-01
  - name: reload-bob
    key: sk-reload-bob-0002
prices:
  model-b: {{input: 1.0, output: 1.0}}
  shared: {{input: 100.0, output: 100.0}}
"""


BROKEN = "channels:\n  - name: x\n    base_url: http://127.0.0.1:9/v1\n    models: [m]\n    priority: high\n"


@pytest.fixture
def gateway(sim: Server, tmp_path: Path) -> Iterator[Server]:
    server = start_gateway(first_config(sim.url), tmp_path)
    yield server
    server.stop()


def config_file(gateway: Server) -> Path:
    return Path(gateway.args[gateway.args.index("--config") + 1])


def chat(gateway: Server, model: str, headers: dict[str, str] = ALICE) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/chat/completions", headers=headers, timeout=30,
                      json={"model": model, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]})


def reload(gateway: Server, token: str = ADMIN_TOKEN) -> httpx.Response:
    return httpx.post(f"{gateway.url}/admin/reload", headers={"authorization": f"Bearer {token}"}, timeout=30)


def models(gateway: Server) -> list[str]:
    return sorted(m["id"] for m in httpx.get(f"{gateway.url}/v1/models", headers=ALICE).json()["data"])


def upstream_key(sim_http: httpx.Client) -> str:
    return str(sim_http.get("/sim/requests").json()[-1]["headers"]["authorization"])


def assert_serves_first_config(gateway: Server) -> None:
    assert models(gateway) == ["model-a", "shared"]
    assert chat(gateway, "model-a").status_code == 200
    r = chat(gateway, "model-b")
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert chat(gateway, "shared", BOB).status_code == 401


def assert_serves_second_config(gateway: Server, sim_http: httpx.Client, one_process: bool = True) -> None:
    assert models(gateway) == ["model-b", "shared"]
    r = chat(gateway, "model-a")
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert chat(gateway, "model-b").status_code == 200
    assert upstream_key(sim_http) == "Bearer sk-up-second"
    r = chat(gateway, "shared", BOB)   # the new key works at once
    assert r.status_code == 200, r.text
    if not one_process:   # the log row may still be in the other worker's batch
        return
    usage = r.json()["usage"]
    row = Admin(gateway.url).logs(limit=1)[0]
    assert (row["channel"], row["model"]) == ("second", "shared")
    assert row["cost_micros"] == 100 * (usage["prompt_tokens"] + usage["completion_tokens"])   # the new price


def test_admin_reload_swaps_channels_models_prices_and_keys(gateway: Server, sim: Server,
                                                            sim_http: httpx.Client) -> None:
    assert_serves_first_config(gateway)
    config_file(gateway).write_text(second_config(sim.url))
    r = reload(gateway)
    assert r.status_code == 200, r.text
    assert r.json() == {"reloaded": str(config_file(gateway).resolve()), "channels": 1, "models": 2,
                        "prices": 2, "keys": 2}
    assert_serves_second_config(gateway, sim_http)


def test_a_file_that_does_not_validate_is_a_400_naming_the_field_and_changes_nothing(
        gateway: Server, sim: Server) -> None:
    config_file(gateway).write_text(BROKEN)
    r = reload(gateway)
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    assert message.startswith("config not reloaded: ") and "channels[0].priority" in message, message
    config_file(gateway).write_text(second_config(sim.url).replace("models: [model-b, shared]", "models: []"))
    r = reload(gateway)
    assert r.status_code == 400 and "channels[0].models: must list at least one model" in r.json()["error"]["message"]
    assert_serves_first_config(gateway)


def test_reload_needs_the_admin_token(gateway: Server, sim: Server) -> None:
    config_file(gateway).write_text(second_config(sim.url))
    assert reload(gateway, token="wrong-token").status_code == 401
    assert httpx.post(f"{gateway.url}/admin/reload", headers=ALICE).status_code == 401
    assert_serves_first_config(gateway)


def wait_for(check: Any, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not reloaded in time"
        time.sleep(0.1)


@pytest.mark.slow
def test_sighup_reloads_and_a_broken_file_is_logged_and_ignored(gateway: Server, sim: Server,
                                                                sim_http: httpx.Client) -> None:
    assert gateway.proc is not None
    config_file(gateway).write_text(BROKEN)
    gateway.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "SIGHUP: config not reloaded" in gateway.log.read_text())
    assert gateway.proc.poll() is None
    assert "channels[0].priority" in gateway.log.read_text()
    assert_serves_first_config(gateway)

    config_file(gateway).write_text(second_config(sim.url))
    gateway.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "model-b" in models(gateway))
    assert "config reloaded from " in gateway.log.read_text()
    assert_serves_second_config(gateway, sim_http)


def cli(*args: str, token: str | None = ADMIN_TOKEN) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "POLYRELAY_ADMIN_TOKEN"}
    if token:
        env["POLYRELAY_ADMIN_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "polyrelay.cli", "reload", *args], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_the_reload_command(gateway: Server, sim: Server, sim_http: httpx.Client) -> None:
    config_file(gateway).write_text(BROKEN)
    done = cli("--url", gateway.url)
    assert done.returncode == 1
    assert done.stderr.startswith("polyrelay: reload refused (400): config not reloaded: ")
    assert "channels[0].priority" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert_serves_first_config(gateway)

    config_file(gateway).write_text(second_config(sim.url))
    done = cli("--url", gateway.url)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (f"reloaded {config_file(gateway).resolve()}: "
                           "1 channels, 2 models, 2 prices, 2 keys from config\n")
    assert_serves_second_config(gateway, sim_http)

    nobody = f"http://127.0.0.1:{free_port()}"
    done = cli("--url", nobody)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(f"polyrelay: cannot reach the gateway at {nobody}: ")
    assert len(done.stderr.strip().splitlines()) == 1
    done = cli("--url", gateway.url, token=None)
    assert done.returncode == 2 and "POLYRELAY_ADMIN_TOKEN" in done.stderr
    done = cli("--url", gateway.url, token="wrong-token")
    assert done.returncode == 1 and "reload refused (401): invalid admin token" in done.stderr


def test_a_stream_under_way_finishes_on_the_channel_and_price_it_started_with(
        gateway: Server, sim: Server, sim_http: httpx.Client) -> None:
    lines: list[str] = []
    started = threading.Event()

    def stream() -> None:
        body = {"model": "shared", "stream": True, "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": "go [[sim:words=30,delay_ms=60]]"}]}
        with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", headers=ALICE, json=body, timeout=30) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line:
                    lines.append(line)
                    started.set()

    reader = threading.Thread(target=stream)
    reader.start()
    assert started.wait(15)
    config_file(gateway).write_text(second_config(sim.url))
    assert reload(gateway).status_code == 200
    assert reader.is_alive()   # reloaded while the stream still runs
    assert models(gateway) == ["model-b", "shared"]
    reader.join(30)
    assert lines[-1] == "data: [DONE]"
    row = next(r for r in Admin(gateway.url).logs(limit=10) if r["stream"])
    assert (row["channel"], row["status"]) == ("first", 200)
    assert row["cost_micros"] == row["prompt_tokens"] + row["completion_tokens"]   # the old price
    assert_serves_second_config(gateway, sim_http)


@pytest.mark.slow
def test_with_workers_the_admin_call_restarts_every_worker_on_the_new_file(sim: Server, tmp_path: Path,
                                                                            sim_http: httpx.Client) -> None:
    gateway = start_gateway(first_config(sim.url), tmp_path, extra_args=["--workers", "2"])
    try:
        config_file(gateway).write_text(BROKEN)
        r = reload(gateway)
        assert r.status_code == 400 and "channels[0].priority" in r.json()["error"]["message"]
        config_file(gateway).write_text(second_config(sim.url))
        r = reload(gateway)
        assert r.status_code == 202, r.text
        assert r.json() == {"reloading": str(config_file(gateway).resolve()), "workers": "restarting one by one"}

        def every_worker_reloaded() -> bool:   # new connections each: both workers answer some of them
            return all(chat(gateway, "model-a").status_code == 404 for _ in range(8))

        wait_for(every_worker_reloaded, 60)
        assert_serves_second_config(gateway, sim_http, one_process=False)
    finally:
        gateway.stop()
