"""Start, stop with SIGTERM, start again on the same database; config errors at start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import httpx
import openai
import pytest
from test_chat_relay import sdk, spent_cents

from servers import Admin, Server, start_gateway

CAROL = """
  - name: carol
    key: sk-carol-0001
    quota: 1.0"""


def _config(sim_url: str, keys: str = CAROL) -> str:
    return f"""
channels:
  - name: sim
    base_url: {sim_url}/v1
    api_keys: [sk-up]
    models: [gpt-4o]
keys:{keys}
prices:
  gpt-4o: {{input: 2.50, output: 10.00}}
"""


@pytest.mark.slow
def test_sigterm_finishes_in_flight_requests_and_restart_keeps_keys_spend_and_logs(
        sim: Server, tmp_path: Path, new_database_url) -> None:
    gateway = start_gateway(_config(sim.url), tmp_path, database_url=new_database_url("restart"))
    try:
        client = sdk(gateway, "sk-carol-0001")
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "one"}])
        made_key = Admin(gateway.url).create_key("dave", quota=3.0)
        sdk(gateway, made_key).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])

        # a slow stream is in flight when SIGTERM arrives: it must finish
        result: dict[str, object] = {}
        def slow_stream() -> None:
            chunks = list(client.chat.completions.create(
                model="gpt-4o", stream=True, messages=[{"role": "user", "content": "[[sim:words=20,delay_ms=50]]"}]))
            result["finish"] = chunks[-1].choices[0].finish_reason
            result["text"] = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        worker = threading.Thread(target=slow_stream)
        worker.start()
        time.sleep(0.3)
        # uvicorn re-raises the signal after its graceful shutdown, so -SIGTERM is a clean exit
        assert gateway.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        worker.join(10)
        assert result.get("finish") == "stop" and len(str(result["text"]).split()) == 20
    finally:
        gateway.stop()

    again = Server(gateway.args, gateway.port, tmp_path, env=gateway.env).start()
    try:
        spent = spent_cents(again, "sk-carol-0001")
        assert spent > 0  # the first request and the stream that finished during shutdown
        assert spent_cents(again, made_key) > 0  # a key made through the admin API survives too
        logs = Admin(again.url).logs()
        assert sum(1 for r in logs if r["status"] == 200) == 3, [
            (r["status"], r["stream"], r["model"], r.get("error")) for r in logs]
        carol = Admin(again.url).key("carol")
        assert carol["leased_micros"] == 0, "a graceful stop returns unused quota leases"
        assert carol["spent_micros"] == round(spent * 10_000)
    finally:
        again.stop()


@pytest.mark.parametrize("text, field", [
    ("channels: [{name: a, base_url: ftp://x, models: [m]}]", "channels[0].base_url"),
    ("channels: [{name: a, base_url: 'http://x', models: [m], priority: high}]", "channels[0].priority"),
    ("keys: [{name: k, key: short}]", "keys[0].key"),
    ("prices: {m: {input: -1}}", "prices.m.input"),
    ("channels: [{name: a, base_url: 'http://x', models: [m], colour: red}]", "colour"),
    ("channels: [{name: a, base_url: 'http://x', models: [m], api_keys: ['${POLYRELAY_TEST_UNSET}']}]",
     "POLYRELAY_TEST_UNSET"),
    ("channels: [oops", "YAML"),
    ("channels: [{name: a, base_url: 'http://x', models: [m], proxy: 'socks5://127.0.0.1:1080'}]",
     "channels[0].proxy"),
    ("channels: [{name: a, base_url: 'http://x:99999/v1', models: [m]}]", "channels[0].base_url"),
    ("channels: [{name: a, base_url: 'http://a..b/v1', models: [m]}]", "channels[0].base_url"),
    ("channels: [{name: a, base_url: 'http://x/v1', models: [m], proxy: 'http://p:80a'}]", "channels[0].proxy"),
    ('channels: [{name: a, base_url: "http://x", models: [m], api_keys: ["sk-1\\r\\nX-Evil: 1"]}]',
     "channels[0].api_keys[0]"),
    # not finite numbers: a NaN quota used to crash with a traceback, an infinite price to pass and fail later
    ("keys: [{name: a, key: sk-aaaaaaaa, quota: .nan}]", "keys[0].quota"),
    ("keys: [{name: a, key: sk-aaaaaaaa, quota: .inf}]", "keys[0].quota"),
    ("keys: [{name: a, key: sk-aaaaaaaa, quota: 1.0e+300}]", "keys[0].quota"),  # overflows the store
    ("prices: {m: {input: .inf}}", "prices.m.input"),
    ("prices: {m: {input: 1, output: .nan}}", "prices.m.output"),
    ("prices: {m: {input: 1}, n: {input: 1, cached_input: -.inf}}", "prices.n.cached_input"),
    ("prices: {m: {input: 1, cache_write: .inf}}", "prices.m.cache_write"),
    ("channels: [{name: a, base_url: 'http://x', models: [m], timeout: .inf}]", "channels[0].timeout"),
    ("channels: [{name: a, base_url: 'http://x', models: [m], connect_timeout: .nan}]",
     "channels[0].connect_timeout"),
    ("channels: [{name: a, base_url: 'http://x', models: [m], first_byte_timeout: .inf}]",
     "channels[0].first_byte_timeout"),
    ("channels: [{name: a, base_url: 'http://x', models: [m], weight: .inf}]", "channels[0].weight"),
    # a price entry is named by its model, not msgspec's `prices[...]`
    ("prices: {m: {input: 1, outptu: 2}}", "prices.m.outptu"),
    ("prices: {ok: {input: 1}, m: {input: cheap}}", "prices.m.input"),
    ("prices: {m: [1, 2]}", "prices.m:"),
])
def test_bad_config_is_refused_naming_file_and_field_with_exit_2(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "polyrelay.cli", "serve", "--config", str(path)],
                          capture_output=True, text=True, timeout=60,
                          env={"POLYRELAY_DATABASE_URL": f"sqlite:///{tmp_path}/x.db", "PATH": "/usr/bin:/bin",
                               "PYTHONPATH": os.environ.get("PYTHONPATH", "")})   # this tree's code
    assert proc.returncode == 2, proc.stderr
    assert str(path) in proc.stderr and field in proc.stderr
    assert "Traceback" not in proc.stderr and "[...]" not in proc.stderr


def _two_keys_config(sim_url: str, names: list[str]) -> str:
    return _config(sim_url, "".join(f"""
  - name: {name}
    key: sk-{name}-revoke-0001
    quota: 1.0""" for name in names))


@pytest.mark.slow
def test_key_removed_from_config_is_disabled_at_start_keeping_its_spend(sim: Server, tmp_path: Path,
                                                                       new_database_url) -> None:
    ask = lambda gw, key: sdk(gw, key).chat.completions.create(  # noqa: E731
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    url = new_database_url("revoke")
    first = start_gateway(_two_keys_config(sim.url, ["ka", "kb"]), tmp_path, database_url=url)
    try:
        ask(first, "sk-ka-revoke-0001")
        ask(first, "sk-kb-revoke-0001")
        made_key = Admin(first.url).create_key("kc", quota=1.0)  # not from the config: never touched
    finally:
        assert first.stop() in (0, -signal.SIGTERM)

    second = start_gateway(_two_keys_config(sim.url, ["ka"]), tmp_path, database_url=url)
    try:
        ask(second, "sk-ka-revoke-0001")
        ask(second, made_key)
        with pytest.raises(openai.AuthenticationError):
            ask(second, "sk-kb-revoke-0001")
        kb = Admin(second.url).key("kb")
        assert kb["enabled"] is False
        assert kb["spent_micros"] > 0, "a revoked key keeps its spend"
        assert sum(1 for r in Admin(second.url).logs() if r["status"] == 200) == 4, "logs are kept"
        warnings = [line for line in second.log.read_text().splitlines() if "'kb'" in line]
        assert len(warnings) == 1 and "no longer in the config" in warnings[0]
        assert "'ka'" not in second.log.read_text() and "'kc'" not in second.log.read_text()
    finally:
        second.stop()

    third = start_gateway(_two_keys_config(sim.url, ["ka", "kb"]), tmp_path, database_url=url)
    try:
        ask(third, "sk-kb-revoke-0001")  # back in the config: enabled again by the upsert
        kb = Admin(third.url).key("kb")
        assert kb["enabled"] is True and kb["spent_micros"] > 0
    finally:
        third.stop()


def test_postgres_url_without_asyncpg_is_refused_with_exit_2(tmp_path: Path) -> None:
    # asyncpg is in the test extra: a module of that name that fails to import stands for its absence
    hide = tmp_path / "no-asyncpg"
    hide.mkdir()
    (hide / "asyncpg.py").write_text("raise ImportError('No module named asyncpg')\n")
    path = tmp_path / "ok.yaml"
    path.write_text("keys: [{name: a, key: sk-aaaaaaaa}]")
    for command in ("migrate", "serve"):
        proc = subprocess.run([sys.executable, "-m", "polyrelay.cli", command, "--config", str(path)],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path,
                              env={"POLYRELAY_DATABASE_URL": "postgresql://u:p@127.0.0.1:1/db",
                                   "PATH": "/usr/bin:/bin",
                                   "PYTHONPATH": os.pathsep.join([str(hide), os.environ.get("PYTHONPATH", "")])})
        assert proc.returncode == 2, (command, proc.stderr)
        assert ("POLYRELAY_DATABASE_URL: postgresql needs the asyncpg driver: pip install 'polyrelay[postgres]'"
                in proc.stderr), (command, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, (command, proc.stderr)


@pytest.mark.slow
def test_keys_cli_creates_lists_and_disables(gateway: Server, tmp_path: Path) -> None:
    env = {**gateway.env}
    run = lambda *args: subprocess.run([sys.executable, "-m", "polyrelay.cli", "keys", *args],  # noqa: E731
                                       capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    made = run("create", "--name", "cli-key", "--quota", "1.5", "--model", "gpt-4o-mini")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    listing = run("list").stdout
    assert "cli-key" in listing and key not in listing and key[:7] in listing
    reply = sdk(gateway, key).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert reply.choices[0].message.content
    assert run("disable", "cli-key").returncode == 0
    time.sleep(5.5)  # key cache TTL
    with pytest.raises(openai.AuthenticationError):
        sdk(gateway, key).models.list()
    assert httpx.get(gateway.url + "/health").status_code == 200


@pytest.mark.parametrize("body, param", [
    (b'{"name": "%s", "quota": 2e12}', "quota"),        # over the config's cap of 1e12 USD
    (b'{"name": "%s", "quota": 5e12}', "quota"),        # would still fit the 64-bit micro-dollar column
    (b'{"name": "%s", "quota": 1e13}', "quota"),        # overflows it (was reported as a duplicate name)
    (b'{"name": "%s", "quota": -1}', "quota"),
    (b'{"name": "%s", "quota": -0.000001}', "quota"),
    (b'{"name": "%s", "quota": 1e400}', None),          # JSON number out of range
    (b'{"name": "%s", "quota": NaN}', None),            # not JSON at all
    (b'{"name": "%s", "quota": Infinity}', None),
    (b'{"name": "%s", "quota": "5"}', None),
    (b'{"name": "%s", "quota": true}', None),
    (b'{"name": "%s", "models": "gpt-4o"}', None),
    (b'{"name": "%s", "models": [1]}', None),
    (b'{"name": "%s", "models": {"gpt-4o": true}}', None),
])
def test_admin_key_creation_refuses_bad_quota_or_models_with_400(
        admin: Admin, gateway: Server, body: bytes, param: str | None) -> None:
    name = f"bad-quota-{zlib.crc32(body)}"
    r = admin.http.post("/admin/keys", content=body.replace(b"%s", name.encode()),
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"], error
    assert "already exists" not in error["message"]
    if param:
        assert error["param"] == param and "quota" in error["message"], error
    assert all(k["name"] != name for k in admin.http.get("/admin/keys").json()["data"]), "no key was made"


def test_admin_key_creation_accepts_the_largest_quota_the_config_accepts(db_admin: Admin) -> None:
    admin = db_admin   # on SQLite and on Postgres (BIGINT)
    admin.create_key("quota-at-cap", quota=1e12)
    assert admin.key("quota-at-cap")["quota_micros"] == 10**18


@pytest.mark.parametrize("quota", ["nan", "inf", "-inf", "-1", "1e300", "5e12"])
def test_keys_cli_refuses_bad_quota_with_one_line_and_exit_2(
        gateway: Server, admin: Admin, tmp_path: Path, quota: str) -> None:
    name = f"cli-bad-quota-{quota}"
    proc = subprocess.run([sys.executable, "-m", "polyrelay.cli", "keys", "create", "--name", name,
                           "--quota", quota], capture_output=True, text=True, env={**gateway.env},
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "quota" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not proc.stdout.strip(), "no key value printed"
    assert all(k["name"] != name for k in admin.http.get("/admin/keys").json()["data"])


@pytest.mark.slow
def test_revoked_key_enabled_by_hand_becomes_a_managed_key_and_survives_restart(
        sim: Server, tmp_path: Path) -> None:
    ask = lambda gw, key: sdk(gw, key).chat.completions.create(  # noqa: E731
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    first = start_gateway(_two_keys_config(sim.url, ["ka", "kb", "kc"]), tmp_path, db_name="reenable.db")
    try:
        ask(first, "sk-kb-revoke-0001")
    finally:
        assert first.stop() in (0, -signal.SIGTERM)

    second = start_gateway(_two_keys_config(sim.url, ["ka"]), tmp_path, db_name="reenable.db")
    try:
        admin = Admin(second.url)
        assert admin.key("kb")["enabled"] is False and admin.key("kc")["enabled"] is False
        # kb by the admin API, kc by the CLI
        assert admin.http.post("/admin/keys/kb/enable").status_code == 200
        cli = subprocess.run([sys.executable, "-m", "polyrelay.cli", "keys", "enable", "kc"],
                             capture_output=True, text=True, env={**second.env}, timeout=60, cwd=tmp_path)
        assert cli.returncode == 0, cli.stderr
        # ka is in the config: disabling and enabling it by hand leaves it a config key
        assert admin.http.post("/admin/keys/ka/disable").status_code == 200
        assert admin.http.post("/admin/keys/ka/enable").status_code == 200
        kb, kc, ka = admin.key("kb"), admin.key("kc"), admin.key("ka")
        assert (kb["enabled"], kb["source"]) == (True, "cli"), kb
        assert (kc["enabled"], kc["source"]) == (True, "cli"), kc
        assert (ka["enabled"], ka["source"]) == (True, "config"), ka
        assert kb["spent_micros"] > 0, "the spend is kept"
        ask(second, "sk-kb-revoke-0001")
    finally:
        second.stop()

    third = start_gateway(_two_keys_config(sim.url, ["ka"]), tmp_path, db_name="reenable.db")
    try:
        ask(third, "sk-kb-revoke-0001")  # not disabled again: it is no longer a config key
        ask(third, "sk-kc-revoke-0001")
        ask(third, "sk-ka-revoke-0001")
        admin = Admin(third.url)
        assert admin.key("kb")["enabled"] is True and admin.key("kc")["enabled"] is True
        assert admin.key("ka")["source"] == "config"
        log = third.log.read_text()
        assert "no longer in the config" not in log, log
    finally:
        third.stop()
