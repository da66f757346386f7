"""The processes a benchmark run starts: nginx (canned upstream), the slow-stream upstream, and the
gateways under test. All listen on 127.0.0.1 and are stopped by their own PIDs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import fixtures

BENCH = Path(__file__).resolve().parent
LITELLM = BENCH / ".venv-litellm" / "bin" / "litellm"
TWO_CORES = (os.cpu_count() or 1) >= 2
GATEWAY_CORE = "1"   # the gateway under test gets one core ...
LOAD_CORE = "0"      # ... the load generator and the upstreams the other


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(core: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", core, *argv] if TWO_CORES and shutil.which("taskset") else argv


def post(url: str, body: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Authorization": "Bearer sk-bench-0001", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Process:
    def __init__(self, name: str, argv: list[str], workdir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log = workdir / f"{name}.log"
        full = dict(os.environ)
        for key, value in (env or {}).items():
            if value:
                full[key] = value
            else:
                full.pop(key, None)   # "" unsets
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(argv, cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=full)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def wait_ready(self, probe: Callable[[], bool], timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if probe():
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"{self.name} not ready within {timeout:.0f}s:\n{self.tail()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _ready_post(url: str, body: bytes) -> Callable[[], bool]:
    return lambda: post(url, body, timeout=5.0)[0] == 200


# ---- upstreams ------------------------------------------------------------------------------

def start_nginx(workdir: Path) -> tuple[Process, str]:
    """nginx answers POSTs with canned files. nginx will not serve a static file to a POST, so each
    location returns 405 and `error_page 405 =200` turns it into an internal GET of the file."""
    port = free_port()
    workdir.chmod(0o755)   # the nginx worker runs as nobody and must read the canned files
    www = workdir / "www"
    www.mkdir(exist_ok=True)
    (www / "chat.json").write_bytes(fixtures.openai_response())
    (www / "chat.sse").write_bytes(fixtures.openai_stream())
    (www / "messages.json").write_bytes(fixtures.anthropic_response())
    (www / "messages.sse").write_bytes(fixtures.anthropic_stream())
    (www / "responses.json").write_bytes(fixtures.responses_response())
    (www / "responses.sse").write_bytes(fixtures.responses_stream())
    (workdir / "nginx-tmp").mkdir(exist_ok=True)

    def canned(path: str, file: str) -> str:
        return f"location = {path} {{ error_page 405 =200 /canned/{file}; return 405; }}"

    conf = workdir / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 16384; }}
http {{
  access_log off;
  sendfile on;
  tcp_nodelay on;
  client_body_buffer_size 4m;
  client_max_body_size 64m;
  keepalive_requests 100000000;
  keepalive_timeout 300;
  client_body_temp_path {workdir}/nginx-tmp;
  types {{ application/json json; text/event-stream sse; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    {canned("/ns/v1/chat/completions", "chat.json")}
    {canned("/st/v1/chat/completions", "chat.sse")}
    {canned("/an/v1/messages", "messages.json")}
    {canned("/ans/v1/messages", "messages.sse")}
    {canned("/rs/v1/responses", "responses.json")}
    {canned("/rss/v1/responses", "responses.sse")}
    location /canned/ {{ internal; alias {www}/; }}
  }}
}}
""")
    proc = Process("nginx", pinned(LOAD_CORE, ["nginx", "-p", str(workdir), "-c", str(conf),
                                               "-e", str(workdir / "nginx-error.log")]), workdir)
    url = f"http://127.0.0.1:{port}"
    proc.wait_ready(_ready_post(url + "/ns/v1/chat/completions", b"{}"), timeout=15)
    return proc, url


def start_slow(workdir: Path, chunks: int, interval: float) -> tuple[Process, str]:
    port = free_port()
    proc = Process("slow-upstream", pinned(LOAD_CORE, [
        sys.executable, str(BENCH / "slow_upstream.py"), "--port", str(port),
        "--chunks", str(chunks), "--interval", str(interval)]), workdir)
    url = f"http://127.0.0.1:{port}"
    proc.wait_ready(lambda: urllib.request.urlopen(url + "/health", timeout=2).status == 200, timeout=20)
    return proc, url


# ---- gateways -------------------------------------------------------------------------------

def start_polyrelay(workdir: Path, upstream: str, slow: str, launcher: list[str] | None = None,
                    variant: str = "uvicorn", source: str | None = None) -> tuple[Process, str]:
    """`launcher` replaces the `polyrelay` executable (its arguments follow: serve --config ...).

    `variant`: "uvicorn" (`polyrelay serve`, one worker pinned to the gateway core), "uvicorn-2w"
    (`serve --workers 2`, not pinned: both cores, shared with the load generator) or "granian" (the
    same ASGI app under granian, one worker, pinned). `source`: run the polyrelay of that source tree
    (its src/ first on PYTHONPATH) instead of the installed one.
    """
    port = free_port()
    config = workdir / "polyrelay.yaml"
    config.write_text(f"""
channels:
  - {{name: ns, type: openai, base_url: "{upstream}/ns/v1", api_keys: [sk-up-1], models: [{fixtures.OPENAI_MODEL}]}}
  - {{name: st, type: openai, base_url: "{upstream}/st/v1", api_keys: [sk-up-1], models: [{fixtures.STREAM_MODEL}]}}
  - {{name: an, type: anthropic, base_url: "{upstream}/an", api_keys: [sk-up-1], models: [{fixtures.CLAUDE_MODEL}]}}
  - {{name: slow, type: openai, base_url: "{slow}/slow/v1", api_keys: [sk-up-1], models: [{fixtures.SLOW_MODEL}]}}
  - {{name: rs, type: openai, api: responses, base_url: "{upstream}/rs/v1", api_keys: [sk-up-1],
      models: [{fixtures.RESPONSES_MODEL}]}}
  - {{name: rss, type: openai, api: responses, base_url: "{upstream}/rss/v1", api_keys: [sk-up-1],
      models: [{fixtures.RESPONSES_STREAM_MODEL}]}}
keys:
  - {{name: bench, key: sk-bench-0001, quota: 1000000}}
prices:
  {fixtures.OPENAI_MODEL}: {{input: 0.15, output: 0.60}}
  {fixtures.STREAM_MODEL}: {{input: 0.15, output: 0.60}}
  {fixtures.CLAUDE_MODEL}: {{input: 3.0, output: 15.0}}
  {fixtures.SLOW_MODEL}: {{input: 0.15, output: 0.60}}
  {fixtures.RESPONSES_MODEL}: {{input: 0.15, output: 0.60}}
  {fixtures.RESPONSES_STREAM_MODEL}: {{input: 0.15, output: 0.60}}
""")
    db = workdir / f"polyrelay-{port}.db"
    # Always `python -m polyrelay.cli` with the tree's src/ first: the `polyrelay` executable runs
    # whatever is installed (editable, possibly another checkout), not the code being measured.
    argv = launcher or [sys.executable, "-m", "polyrelay.cli"]
    env = {"POLYRELAY_DATABASE_URL": f"sqlite:///{db}",
           "PYTHONPATH": str((Path(source).resolve() if source else BENCH.parent) / "src")}
    serve = [*argv, "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    if variant == "uvicorn":
        command = pinned(GATEWAY_CORE, serve)
    elif variant == "uvicorn-2w":
        command = [*serve, "--workers", "2"]
    elif variant == "granian":
        env.update(POLYRELAY_CONFIG=str(config))   # the app migrates the database itself at start
        command = pinned(GATEWAY_CORE, [
            sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--loop", "uvloop",
            "--workers", "1", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            "--no-ws", "polyrelay.server.app:create_app_from_env"])
    else:
        raise ValueError(f"unknown polyrelay variant {variant!r}")
    proc = Process("polyrelay-base" if source else "polyrelay", command, workdir, env=env)
    url = f"http://127.0.0.1:{port}"
    proc.wait_ready(_ready_post(url + "/v1/chat/completions", fixtures.chat_request(fixtures.OPENAI_MODEL)))
    return proc, url


def litellm_version() -> str:
    meta = list((BENCH / ".venv-litellm" / "lib").glob("python*/site-packages/litellm-*.dist-info"))
    return meta[0].name.removeprefix("litellm-").removesuffix(".dist-info") if meta else "not installed"


def start_litellm(workdir: Path, upstream: str, slow: str, logging_on: bool) -> tuple[Process, str]:
    """LiteLLM proxy, one uvicorn worker, no database (master key only).

    Logging off: LITELLM_LOG=ERROR (no uvicorn access log, no INFO lines). Logging on: its defaults
    at INFO: the uvicorn access log plus LiteLLM's own INFO lines, to a file."""
    port = free_port()
    config = workdir / f"litellm-{port}.yaml"
    models = [
        (fixtures.OPENAI_MODEL, f"openai/{fixtures.OPENAI_MODEL}", f"{upstream}/ns/v1"),
        (fixtures.STREAM_MODEL, f"openai/{fixtures.STREAM_MODEL}", f"{upstream}/st/v1"),
        (fixtures.CLAUDE_MODEL, f"anthropic/{fixtures.CLAUDE_MODEL}", f"{upstream}/an"),
        (fixtures.SLOW_MODEL, f"openai/{fixtures.SLOW_MODEL}", f"{slow}/slow/v1"),
    ]
    config.write_text(json.dumps({   # JSON is YAML
        "model_list": [{"model_name": name, "litellm_params": {"model": model, "api_base": base,
                                                               "api_key": "sk-up-1"}}
                       for name, model, base in models],
        "general_settings": {"master_key": "sk-bench-0001"},
        "litellm_settings": {"drop_params": True, "telemetry": False},
    }, indent=1))
    env = {"LITELLM_LOG": "INFO" if logging_on else "ERROR", "LITELLM_TELEMETRY": "False",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True", "DATABASE_URL": "", "NO_DOCS": "True"}
    proc = Process("litellm-log" if logging_on else "litellm", pinned(GATEWAY_CORE, [
        str(LITELLM), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
        "--num_workers", "1"]), workdir, env=env)
    url = f"http://127.0.0.1:{port}"
    proc.wait_ready(_ready_post(url + "/v1/chat/completions", fixtures.chat_request(fixtures.OPENAI_MODEL)),
                    timeout=180)
    return proc, url
