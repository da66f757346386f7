"""Secrets never reach a client, a log row or a log line in any shape; every request has one access
line with its request id; no name or upstream text can forge a log line."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from secret_leaks import leaks
from servers import Admin, Server, start_gateway, start_simulator

UPSTREAM_KEY = "sk-proj-Up5treamSecretKey-0123456789abcdefXYZ"
CLIENT_KEY = "sk-logs-client-0001"


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A gateway whose upstream key is long enough to be echoed in pieces, at the default log level."""
    workdir = tmp_path_factory.mktemp("logs")
    sim = start_simulator(workdir)
    gateway = start_gateway(f"""
channels:
  - name: echoing
    base_url: {sim.url}/v1
    api_keys: [{UPSTREAM_KEY}]
    models: [gpt-4o-mini]
keys:
  - name: logger
    key: {CLIENT_KEY}
prices:
  gpt-4o-mini: {{input: 0.15, output: 0.60}}
""", workdir)
    yield gateway
    gateway.stop()
    sim.stop()


def _leaks(text: str, secret: str = UPSTREAM_KEY) -> list[str]:
    return leaks(text, secret)


def _chat(gateway: Server, content: str, model: str = "gpt-4o-mini") -> httpx.Response:
    return httpx.post(gateway.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {CLIENT_KEY}"},
                      json={"model": model, "messages": [{"role": "user", "content": content}]}, timeout=30)


@pytest.mark.parametrize("echo", [1, 2, 3, 4, 5], ids=["tail", "lowercased", "base64-bearer",
                                                      "base64-basic", "middle-uppercased"])
def test_an_upstream_error_echoing_the_key_in_any_shape_is_scrubbed(logged: Server, echo: int) -> None:
    r = _chat(logged, f"[[sim:status=400,echo_key={echo}]]")
    assert r.status_code == 400, r.text
    assert "simulated error 400" in r.text and "***" in r.text
    assert not _leaks(r.text), (r.text, _leaks(r.text))
    row = next(row for row in Admin(logged.url).logs(5) if row["request_id"] == r.headers["x-request-id"])
    assert row["error"] and not _leaks(row["error"]), row["error"]


# ---- the access log ------------------------------------------------------------------------------

def _log_lines(gateway: Server, request_id: str, timeout: float = 5.0) -> list[str]:
    """The request's lines, once its access line is there (access lines are written in batches, within
    logs._StderrHandler.FLUSH_S; a warning is written at once) or the timeout passed."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in gateway.log.read_text().splitlines() if request_id in line]
        if any("polyrelay.access" in line for line in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_every_request_has_one_access_line_with_its_request_id_and_no_secret(logged: Server) -> None:
    r = _chat(logged, "hello")
    assert r.status_code == 200
    rid = r.headers["x-request-id"]
    lines = _log_lines(logged, rid)
    assert len(lines) == 1, lines
    line = lines[0]
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO polyrelay.access ", line), line
    usage = r.json()["usage"]
    for part in ("key=logger", "model=gpt-4o-mini", "channel=echoing", "status=200",
                 f"tokens={usage['prompt_tokens']}/{usage['completion_tokens']}", "cost_usd=", "latency_ms="):
        assert part in line, (part, line)
    assert CLIENT_KEY not in line and "hello" not in line
    row = next(row for row in Admin(logged.url).logs(5) if row["request_id"] == rid)
    assert row["status"] == 200

    # requests that never reach billing have their line too: a bad key, an unknown route
    bad = httpx.post(logged.url + "/v1/chat/completions?key=sk-query-secret-123",
                     headers={"Authorization": "Bearer sk-wrong-key-000"}, json={})
    missing = httpx.get(logged.url + "/v1/nowhere")
    for reply, status in ((bad, 401), (missing, 404)):
        assert reply.status_code == status
        lines = _log_lines(logged, reply.headers["x-request-id"])
        assert len(lines) == 1 and f"status={status}" in lines[0], lines
    text = logged.log.read_text()
    assert "sk-wrong-key-000" not in text and "sk-query-secret" not in text


def test_a_conversion_warning_carries_the_request_id(logged: Server) -> None:
    # Anthropic client -> OpenAI channel: top_k has no equivalent there and is dropped with a warning
    r = httpx.post(logged.url + "/v1/messages", headers={"x-api-key": CLIENT_KEY},
                   json={"model": "gpt-4o-mini", "max_tokens": 20, "top_k": 5,
                         "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert r.status_code == 200, r.text
    lines = _log_lines(logged, r.headers["x-request-id"])
    assert any("WARNING" in line and "top_k" in line for line in lines), lines
    assert any("polyrelay.access" in line for line in lines), lines


def test_control_characters_in_client_text_cannot_forge_a_log_line(logged: Server) -> None:
    # the path is logged (percent-decoded by the server): CR LF, ESC and U+2028 in it stay on one line
    forged = "/v1/x%0D%0A2026-01-01%2000:00:00,000%20INFO%20polyrelay.access%20FORGED%1B[2J%E2%80%A8y"
    r = httpx.get(logged.url + forged)
    assert r.status_code == 404, r.text
    lines = _log_lines(logged, r.headers["x-request-id"])
    assert len(lines) == 1, lines
    assert "\\r\\n2026-01-01" in lines[0] and "\\x1b" in lines[0] and "\\u2028" in lines[0], lines
    assert not [line for line in logged.log.read_text().splitlines() if line.startswith("2026-01-01")]


# ---- names are bounded where they are made --------------------------------------------------------

BAD_NAMES = ["two\nlines", "cr\rhere", "esc\x1b[31m", "nul\x00", "c1\x85", "sep\u2028x", "x" * 65, "", "   "]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_config_refuses_names_that_could_forge_log_lines(name: str) -> None:
    import json

    from polyrelay.config import ConfigError, parse_config
    quoted = json.dumps(name)   # a YAML double-quoted scalar takes JSON's escapes
    model = json.dumps("x" * 129 if name == "x" * 65 else name)   # model names may be up to 128
    for text, field in (
            (f"keys: [{{name: {quoted}, key: sk-aaaaaaaa}}]", "keys[0].name"),
            (f"channels: [{{name: {quoted}, base_url: 'http://x/v1', models: [m]}}]", "channels[0].name"),
            (f"channels: [{{name: c, base_url: 'http://x/v1', models: [ok, {model}]}}]", "channels[0].models[1]"),
            (f"prices: {{{model}: {{input: 1}}}}", "prices.")):
        with pytest.raises(ConfigError) as caught:
            parse_config(text, "cfg.yaml")
        message = str(caught.value)
        assert field in message and "\n" not in message and "\r" not in message, message


def test_long_printable_names_up_to_the_bound_are_fine() -> None:
    from polyrelay.config import parse_config

    name = "team α / prod " + "x" * 50
    assert len(name) == 64
    config = parse_config(f"keys: [{{name: '{name}', key: sk-aaaaaaaa}}]")
    assert config.keys[0].name == name


@pytest.mark.parametrize("name", BAD_NAMES)
def test_admin_api_refuses_bad_key_names_with_400(logged: Server, name: str) -> None:
    r = Admin(logged.url).http.post("/admin/keys", json={"name": name})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "name"


def test_keys_cli_refuses_a_name_with_a_line_break(logged: Server, tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "polyrelay.cli", "keys", "create", "--name", "evil\nINFO forged"],
                          capture_output=True, text=True, env={**logged.env}, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "--name" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not proc.stdout.strip()


def test_log_level_warning_turns_access_lines_off(tmp_path: Path) -> None:
    sim = start_simulator(tmp_path)
    gateway = start_gateway(f"""
channels:
  - name: quiet
    base_url: {sim.url}/v1
    api_keys: [sk-up-quiet-0001]
    models: [gpt-4o-mini]
keys:
  - name: quiet
    key: {CLIENT_KEY}
prices:
  gpt-4o-mini: {{input: 0.15, output: 0.60}}
""", tmp_path, extra_args=["--log-level", "warning"])
    try:
        r = _chat(gateway, "hello")
        assert r.status_code == 200 and r.headers["x-request-id"]
        time.sleep(0.5)
        assert "polyrelay.access" not in gateway.log.read_text()
    finally:
        gateway.stop()
        sim.stop()


@pytest.mark.parametrize("echo", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("surface", ["openai", "anthropic"])   # fast path, and converted
def test_an_upstream_error_event_mid_stream_echoing_the_key_is_scrubbed(logged: Server, surface: str,
                                                                        echo: int) -> None:
    content = f"[[sim:echo_key={echo}]]"
    if surface == "openai":
        r = httpx.post(logged.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {CLIENT_KEY}"},
                       json={"model": "gpt-4o-mini", "stream": True,
                             "messages": [{"role": "user", "content": content}]}, timeout=30)
    else:
        r = httpx.post(logged.url + "/v1/messages", headers={"x-api-key": CLIENT_KEY},
                       json={"model": "gpt-4o-mini", "max_tokens": 50, "stream": True,
                             "messages": [{"role": "user", "content": content}]}, timeout=30)
    assert r.status_code == 200
    assert "partial" in r.text and "error" in r.text and "***" in r.text, r.text
    assert not _leaks(r.text), (r.text, _leaks(r.text))
