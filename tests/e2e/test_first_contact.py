"""What a new operator hits in the first hour (issue 10): which database the CLI and the demo use,
one-line errors with a non-zero exit instead of tracebacks, ports, unknown routes, readable output.

Every command runs as a real subprocess (`python -m polyrelay.cli ...`)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from test_chat_relay import sdk

from servers import Admin, Server, free_port, start_gateway

CLEAN_ENV = {"PATH": os.environ["PATH"], "PYTHONPATH": os.environ.get("PYTHONPATH", "")}


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "polyrelay.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env={**CLEAN_ENV, **(env or {})}, timeout=timeout)


def one_line_error(done: subprocess.CompletedProcess[str], code: int | None = None) -> str:
    """The failure is exactly one line on stderr, no traceback, a non-zero exit code; returns the line."""
    assert done.returncode != 0 and (code is None or done.returncode == code), (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and "Error:" not in done.stdout, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def _operator_config(sim_url: str) -> str:
    return f"""
channels:
  - name: sim
    base_url: {sim_url}/v1
    api_keys: [sk-up]
    models: [gpt-4o]
keys:
  - name: operator
    key: sk-operator-real-0001
prices:
  gpt-4o: {{input: 2.50, output: 10.00}}
"""


# ---- the demo and the operator's database ---------------------------------------------------------

@pytest.mark.slow
def test_demo_never_touches_the_database_of_the_directory_it_runs_in(sim: Server, tmp_path: Path) -> None:
    operator_db = f"sqlite:///{tmp_path / 'polyrelay.db'}"
    gateway = start_gateway(_operator_config(sim.url), tmp_path, db_name="polyrelay.db")
    ask = lambda server, key: sdk(server, key).chat.completions.create(  # noqa: E731
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    try:
        ask(gateway, "sk-operator-real-0001")
        # the demo in the operator's directory, with the operator's POLYRELAY_DATABASE_URL set
        port, sim_port = free_port(), free_port()
        demo = Server(["demo", "--port", str(port), "--sim-port", str(sim_port)], port, tmp_path,
                      env={"POLYRELAY_DATABASE_URL": operator_db}).start()
        try:
            assert ask(demo, "sk-demo-0001").choices[0].message.content
        finally:
            stopped = demo.stop(signal.SIGINT)   # Ctrl-C

        time.sleep(5.5)  # the gateway's key cache: a key disabled in the database would fail by now
        assert ask(gateway, "sk-operator-real-0001").choices[0].message.content
        with pytest.raises(openai.AuthenticationError):
            ask(gateway, "sk-demo-0001")
        listed = cli("keys", "list", "--json", cwd=tmp_path, env={"POLYRELAY_DATABASE_URL": operator_db})
        assert listed.returncode == 0, listed.stderr
        keys = {k["name"]: k for k in json.loads(listed.stdout)}
        assert set(keys) == {"operator"} and keys["operator"]["enabled"] is True

        # the demo said which database it used: its own, deleted when it stopped cleanly
        log = demo.log.read_text()
        line = next((ln for ln in log.splitlines() if ln.strip().startswith("database")), log)
        assert "temporary" in line and "POLYRELAY_DATABASE_URL is not used" in line, line
        own_db = Path(line.split()[1])
        assert own_db.parent != tmp_path and not own_db.parent.exists()
        assert stopped == 0, log

        # named explicitly, a database with other keys is refused (before any write, migrations included)
        refused = cli("demo", "--port", str(free_port()), "--sim-port", str(free_port()),
                      "--database", operator_db, cwd=tmp_path)
        assert "'operator'" in one_line_error(refused, 2)
        assert ask(gateway, "sk-operator-real-0001").choices[0].message.content
    finally:
        gateway.stop()


# ---- the CLI's database ---------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["keys", "list"], ["logs"], ["keys", "disable", "alice"],
                                     ["keys", "enable", "alice"]])
def test_read_commands_refuse_to_create_a_database_and_say_how_to_name_one(tmp_path: Path,
                                                                           command: list[str]) -> None:
    line = one_line_error(cli(*command, cwd=tmp_path), 2)
    assert str(tmp_path / "polyrelay.db") in line and "--database" in line and "POLYRELAY_DATABASE_URL" in line
    assert list(tmp_path.iterdir()) == [], "no database was created"
    elsewhere = tmp_path / "elsewhere.db"
    line = one_line_error(cli(*command, cwd=tmp_path, env={"POLYRELAY_DATABASE_URL": f"sqlite:///{elsewhere}"}), 2)
    assert str(elsewhere) in line and "from POLYRELAY_DATABASE_URL" in line
    assert not elsewhere.exists()


def test_cli_takes_the_gateways_database_like_serve_and_names_it(gateway: Server, admin: Admin,
                                                                 tmp_path: Path) -> None:
    url = gateway.env["POLYRELAY_DATABASE_URL"]
    path = url.removeprefix("sqlite:///")
    made = cli("keys", "create", "--name", "named-db-key", "--quota", "0.5", "--database", url, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert f"polyrelay: database {path} (from --database)" in made.stderr
    assert "created key 'named-db-key'" in made.stderr and "$0.50" in made.stderr
    key = made.stdout.strip()
    assert key.startswith("sk-") and "\n" not in key, "stdout is the key alone (for KEY=$(...))"
    assert sdk(gateway, key).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]).choices[0].message.content
    listed = cli("keys", "list", cwd=tmp_path, env={"POLYRELAY_DATABASE_URL": url})
    assert f"polyrelay: database {path} (from POLYRELAY_DATABASE_URL)" in listed.stderr
    assert "named-db-key" in listed.stdout
    assert list(tmp_path.iterdir()) == [], "nothing was made in the current directory"
    # a new database is created only by a command that writes, and said so
    new = cli("keys", "create", "--name", "lonely", cwd=tmp_path)
    assert new.returncode == 0 and f"{tmp_path / 'polyrelay.db'} (the default" in new.stderr
    assert "created now" in new.stderr


def test_keys_create_with_the_config_refuses_models_it_does_not_serve(gateway: Server, tmp_path: Path) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text("channels: [{name: a, base_url: 'http://127.0.0.1:9/v1', models: [gpt-4o-mini, gpt-4o]}]\n"
                      "keys: [{name: alice, key: sk-alice-0001}]\n")
    env = {"POLYRELAY_DATABASE_URL": gateway.env["POLYRELAY_DATABASE_URL"]}
    line = one_line_error(cli("keys", "create", "--name", "typo", "--model", "gpt-4o-mni", "--config", str(config),
                              cwd=tmp_path, env=env), 2)
    assert "gpt-4o-mni" in line and "gpt-4o-mini" in line
    line = one_line_error(cli("keys", "create", "--name", "alice", "--config", str(config), cwd=tmp_path, env=env), 2)
    assert "alice" in line and "config" in line
    ok = cli("keys", "create", "--name", "config-checked", "--model", "gpt-4o", "--config", str(config),
             cwd=tmp_path, env=env)
    assert ok.returncode == 0, ok.stderr


# ---- one line, not a traceback --------------------------------------------------------------------

@pytest.mark.slow
def test_database_failures_are_one_line(tmp_path: Path) -> None:
    config = tmp_path / "ok.yaml"
    config.write_text("keys: [{name: a, key: sk-aaaaaaaa}]")
    missing_dir = f"sqlite:///{tmp_path}/no/such/dir/x.db"
    for args in (["keys", "create", "--name", "k"], ["migrate", "--config", str(config)],
                 ["serve", "--config", str(config), "--port", str(free_port())]):
        line = one_line_error(cli(*args, cwd=tmp_path, env={"POLYRELAY_DATABASE_URL": missing_dir}), 2)
        assert f"{tmp_path}/no/such/dir" in line and "does not exist" in line, (args, line)
        line = one_line_error(cli(*args, "--database", "sqlite://polyrelay.db", cwd=tmp_path)
                              if args[0] != "serve" else
                              cli(*args, cwd=tmp_path, env={"POLYRELAY_DATABASE_URL": "sqlite://polyrelay.db"}), 2)
        assert "sqlite:///polyrelay.db" in line and "two slashes" in line, line
    (tmp_path / "not-a-db.db").write_text("hello\n" * 100)
    line = one_line_error(cli("keys", "list", "--database", f"sqlite:///{tmp_path}/not-a-db.db", cwd=tmp_path), 2)
    assert "not-a-db.db" in line and "not a database" in line
    line = one_line_error(cli("logs", "--database", "postgresql://u:secret-pw@127.0.0.1:1/db", cwd=tmp_path), 2)
    assert "127.0.0.1:1" in line and "secret-pw" not in line


def test_a_duplicate_key_name_is_one_line(tmp_path: Path) -> None:
    assert cli("keys", "create", "--name", "twice", cwd=tmp_path).returncode == 0
    line = one_line_error(cli("keys", "create", "--name", "twice", cwd=tmp_path), 1)
    assert "a key named 'twice' already exists" in line and "IntegrityError" not in line


@pytest.mark.parametrize("args", [["serve", "--config", "x.yaml", "--port", "70000"],
                                  ["serve", "--config", "x.yaml", "--port", "0"],
                                  ["demo", "--port", "65536"], ["demo", "--sim-port", "-1"],
                                  ["simulate", "--port", "70000"]])
def test_ports_outside_1_to_65535_are_refused(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "x.yaml").write_text("keys: [{name: a, key: sk-aaaaaaaa}]")
    line = one_line_error(cli(*args, cwd=tmp_path), 2)
    assert "1 to 65535" in line and "listening" not in line
    assert not (tmp_path / "polyrelay.db").exists()


@pytest.mark.parametrize("command", ["serve", "demo-gateway", "demo-simulator", "simulate"])
def test_a_busy_port_is_one_line_and_a_non_zero_exit(tmp_path: Path, command: str) -> None:
    (tmp_path / "x.yaml").write_text("keys: [{name: a, key: sk-aaaaaaaa}]")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = {"serve": ["serve", "--config", "x.yaml", "--port", str(port)],
                "demo-gateway": ["demo", "--port", str(port), "--sim-port", str(free_port())],
                "demo-simulator": ["demo", "--port", str(free_port()), "--sim-port", str(port)],
                "simulate": ["simulate", "--port", str(port)]}[command]
        done = cli(*args, cwd=tmp_path, env={"POLYRELAY_DATABASE_URL": f"sqlite:///{tmp_path}/gw.db"})
    line = one_line_error(done, 1)
    assert f"127.0.0.1:{port}" in line and "already in use" in line
    assert not (tmp_path / "gw.db").exists(), "a busy port fails before the database is touched"


def test_serve_says_listening_only_once_it_answers(sim: Server, tmp_path: Path) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text(_operator_config(sim.url))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "polyrelay.cli", "serve", "--config", str(config),
                             "--port", str(port)], stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env={**CLEAN_ENV, "POLYRELAY_DATABASE_URL": f"sqlite:///{tmp_path}/gw.db"})
    try:
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:   # the lines come one by one: read until "listening"
            lines.append(line)
            if line.startswith("polyrelay listening on"):
                break
        assert f"polyrelay listening on http://127.0.0.1:{port}" in lines[-1], lines
        assert any(f"polyrelay: database {tmp_path}/gw.db" in line for line in lines), lines
        # no retry: at the moment it says so, it answers
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        if proc.stderr is not None:
            proc.stderr.close()


def test_a_config_with_an_unquoted_env_reference_says_how_to_quote_it(tmp_path: Path) -> None:
    path = tmp_path / "natural.yaml"
    path.write_text("channels:\n  - name: oai\n    base_url: https://api.openai.com/v1\n"
                    "    api_keys: [${OPENAI_API_KEY}]\n    models: [gpt-4o-mini]\n")
    line = one_line_error(cli("serve", "--config", str(path), cwd=tmp_path,
                              env={"OPENAI_API_KEY": "sk-x"}), 2)
    assert str(path) in line and "line 4" in line and '"${OPENAI_API_KEY}"' in line, line
    assert not (tmp_path / "polyrelay.db").exists()


# ---- routes and output ----------------------------------------------------------------------------

def test_an_unknown_route_says_so_and_an_unknown_model_stays_model_not_found(gateway: Server) -> None:
    r = httpx.post(gateway.url + "/v1/chat/completion", json={"model": "gpt-4o-mini"},
                   headers={"Authorization": "Bearer sk-alice-0001"})
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["code"] == "unknown_url" and "/v1/chat/completion" in error["message"], error
    # an OpenAI base_url without /v1: say where the route is
    r = httpx.post(gateway.url + "/chat/completions", json={}, headers={"Authorization": "Bearer sk-alice-0001"})
    assert r.json()["error"]["code"] == "unknown_url" and "/v1/chat/completions" in r.json()["error"]["message"]
    with pytest.raises(openai.NotFoundError) as caught:
        sdk(gateway, "sk-alice-0001").chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert caught.value.code == "model_not_found"


@pytest.mark.slow
def test_cli_prints_tables_with_names_times_and_usd_and_json_for_scripts(gateway: Server, admin: Admin,
                                                                         tmp_path: Path) -> None:
    env = {"POLYRELAY_DATABASE_URL": gateway.env["POLYRELAY_DATABASE_URL"]}
    key = admin.create_key("table-key", quota=2.0)
    sdk(gateway, key).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    deadline = time.monotonic() + 15   # request logs are written in batches
    while not any(r["key_name"] == "table-key" for r in admin.logs(200)) and time.monotonic() < deadline:
        time.sleep(0.2)

    listed = cli("keys", "list", cwd=tmp_path, env=env)
    header = listed.stdout.splitlines()[0].split()
    assert header[:6] == ["name", "key", "state", "quota", "spent", "left"], listed.stdout
    row = next(line for line in listed.stdout.splitlines() if line.startswith("table-key "))
    assert "enabled" in row and "$2.00" in row and key not in listed.stdout

    logs = cli("logs", "--limit", "200", cwd=tmp_path, env=env)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.splitlines()[0].split()[:3] == ["time", "(UTC)", "key"], logs.stdout
    row = next(line for line in logs.stdout.splitlines() if " table-key " in line)
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ", row) and " gpt-4o " in row and "$0.0" in row, row

    rows = json.loads(cli("logs", "--limit", "200", "--json", cwd=tmp_path, env=env).stdout)
    mine = [r for r in rows if r["key"] == "table-key"]
    assert len(mine) == 1 and mine[0]["status"] == 200 and mine[0]["time"].endswith("Z")
    assert mine[0]["charged_usd"] == "$" + f"{mine[0]['charged_micros'] / 1e6:.6f}".rstrip("0").ljust(4, "0")
    keys = {k["name"]: k for k in json.loads(cli("keys", "list", "--json", cwd=tmp_path, env=env).stdout)}
    assert keys["table-key"]["quota_micros"] == 2_000_000 and keys["table-key"]["spent_micros"] > 0

    disabled = cli("keys", "disable", "table-key", cwd=tmp_path, env=env)
    assert disabled.returncode == 0 and "key 'table-key' disabled" in disabled.stdout
    enabled = cli("keys", "enable", "table-key", cwd=tmp_path, env=env)
    assert enabled.returncode == 0 and "key 'table-key' enabled" in enabled.stdout
    missing = cli("keys", "disable", "no-such-key", cwd=tmp_path, env=env)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr and not missing.stdout
    assert missing.stderr.strip().splitlines()[-1].startswith("polyrelay: no key named 'no-such-key' in ")
