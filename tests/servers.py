"""Real servers for tests: the simulator and the gateway as subprocesses on free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ADMIN_TOKEN = "admin-test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    proc.wait()   # reaped: no zombie, and no "still running" warning when the Popen is collected
    raise RuntimeError(f"server did not start in {timeout}s: {log.read_text()[-2000:]}")


class Server:
    """A polyrelay subprocess (`polyrelay <args>`), stopped by its own PID."""

    def __init__(self, args: list[str], port: int, workdir: Path, env: dict[str, str] | None = None,
                 ready_path: str = "/health") -> None:
        self.args, self.port, self.workdir = args, port, workdir
        self.env = {**os.environ, **(env or {})}
        # the server runs in `workdir`: a relative PYTHONPATH (`PYTHONPATH=src`) would silently load
        # the installed package instead of the source under test
        if self.env.get("PYTHONPATH"):
            self.env["PYTHONPATH"] = os.pathsep.join(
                os.path.abspath(p) for p in self.env["PYTHONPATH"].split(os.pathsep) if p)
        self.url = f"http://127.0.0.1:{port}"
        self.ready_path = ready_path
        self.log = workdir / f"server-{port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "polyrelay.cli", *self.args],
                                         cwd=self.workdir, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        _wait_ready(self.url + self.ready_path, self.proc, self.log)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_simulator(workdir: Path) -> Server:
    port = free_port()
    return Server(["simulate", "--port", str(port)], port, workdir, ready_path="/sim/stats").start()


def start_gateway(config_text: str, workdir: Path, db_name: str = "gateway.db",
                  extra_args: list[str] | None = None, database_url: str | None = None) -> Server:
    """A gateway on `database_url` (any POLYRELAY_DATABASE_URL), else on SQLite file `db_name`."""
    port = free_port()
    config = workdir / f"config-{port}.yaml"
    config.write_text(config_text)
    env = {"POLYRELAY_DATABASE_URL": database_url or f"sqlite:///{workdir / db_name}",
           "POLYRELAY_ADMIN_TOKEN": ADMIN_TOKEN,
           "POLYRELAY_MEDIA_ALLOW_PRIVATE": "1"}  # the test image server listens on loopback
    return Server(["serve", "--config", str(config), "--port", str(port), *(extra_args or [])],
                  port, workdir, env=env).start()


class _OneShotHttp:
    """`get` / `post` as on an httpx.Client, each on its own connection, closed after the answer:
    tests make an Admin wherever they need one, and none leaves a socket to the garbage collector."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        self.base_url, self.headers = base_url, headers

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with httpx.Client(base_url=self.base_url, headers=self.headers) as http:
            return http.request(method, path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)


class Admin:
    """The gateway's admin API, used by tests to make keys with exact quotas and read logs."""

    def __init__(self, gateway_url: str) -> None:
        self.http = _OneShotHttp(gateway_url, {"Authorization": f"Bearer {ADMIN_TOKEN}"})

    def create_key(self, name: str, quota: float | None = None, models: list[str] | None = None) -> str:
        r = self.http.post("/admin/keys", json={"name": name, "quota": quota, "models": models or []})
        r.raise_for_status()
        return r.json()["key"]

    def key(self, name: str) -> dict:
        return next(k for k in self.http.get("/admin/keys").json()["data"] if k["name"] == name)

    def logs(self, limit: int = 50) -> list[dict]:
        return self.http.get("/admin/logs", params={"limit": limit}).json()["data"]


def four_kinds_channels(sim_url: str, resp_upstream: str | None = None) -> str:
    """The `channels:` block of a gateway with one channel of each kind on the simulator: `gpt-resp`
    on an OpenAI Responses channel (renamed to `resp_upstream` upstream when given), `gpt-chat` on a
    chat-only OpenAI channel, `claude-sim-sonnet` on Anthropic, `gemini-3-pro-preview` on Gemini."""
    renamed = f"\n    model_map: {{gpt-resp: {resp_upstream}}}" if resp_upstream else ""
    return f"""channels:
  - name: resp
    type: openai
    api: responses
    base_url: {sim_url}/v1
    api_keys: [sk-up-resp]
    models: [gpt-resp]{renamed}
  - name: chat
    type: openai
    base_url: {sim_url}/v1
    api_keys: [sk-up-chat]
    models: [gpt-chat]
  - name: claude
    type: anthropic
    base_url: {sim_url}
    api_keys: [sk-ant-upstream]
    models: [claude-sim-sonnet]
  - name: gemini
    type: gemini
    base_url: {sim_url}
    api_keys: [gemini-upstream-key]
    models: [gemini-3-pro-preview]"""
