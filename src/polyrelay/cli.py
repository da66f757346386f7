"""`polyrelay serve | demo | simulate | keys ... | logs`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import typer
import uvicorn

from polyrelay.config import Config, ConfigError, load_config, parse_config, quota_problem

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="polyrelay: one base URL and one key for every model.")
keys_app = typer.Typer(no_args_is_help=True, help="Manage gateway API keys in the database.")
app.add_typer(keys_app, name="keys")

_UVICORN = dict(loop="uvloop", http="polyrelay.server.http_protocol:BoundedHttpToolsProtocol",  # head caps
                lifespan="on", access_log=False, proxy_headers=False,
                timeout_graceful_shutdown=30, log_level="warning")


def _load(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as e:
        typer.echo(f"polyrelay: bad config: {e}", err=True)
        raise typer.Exit(2) from None


def _engine():  # type: ignore[no-untyped-def]
    """The database engine of POLYRELAY_DATABASE_URL; an unusable URL or a missing driver is exit 2."""
    from polyrelay.store.db import DatabaseURLError, create_engine

    try:
        return create_engine()
    except DatabaseURLError as e:
        typer.echo(f"polyrelay: {e}", err=True)
        raise typer.Exit(2) from None


async def _prepare_database(config: Config, engine) -> None:  # type: ignore[no-untyped-def]
    from polyrelay.store.db import migrate
    from polyrelay.store.keys import upsert_config_keys

    try:
        await migrate(engine)
        await upsert_config_keys(engine, config.keys)
    finally:
        await engine.dispose()


def _prepare_database_apart(config: Path) -> None:
    """Migrate and upsert keys in a child process, so the serving process never loads Alembic."""
    done = subprocess.run([sys.executable, "-m", "polyrelay.cli", "migrate", "--config", str(config)])
    if done.returncode != 0:
        raise typer.Exit(done.returncode)


@app.command()
def migrate(config: Path = typer.Option(..., "--config", "-c", help="YAML config file")) -> None:
    """Bring the database schema up to date and upsert the config's keys (serve does this too)."""
    cfg = _load(config)
    asyncio.run(_prepare_database(cfg, _engine()))


@app.command()
def serve(config: Path = typer.Option(..., "--config", "-c", help="YAML config file"),
          host: str = typer.Option("127.0.0.1", help="address to listen on"),
          port: int = typer.Option(8080, help="port to listen on"),
          workers: int = typer.Option(1, help="worker processes (share quota through the database)")) -> None:
    """Run the gateway with the channels, keys and prices of CONFIG."""
    cfg = _load(config)
    _prepare_database_apart(config)
    typer.echo(f"polyrelay listening on http://{host}:{port} ({len(cfg.channels)} channels, "
               f"{len(cfg.keys)} keys from config)", err=True)
    if workers > 1:
        os.environ["POLYRELAY_CONFIG"] = str(config.resolve())
        os.environ["POLYRELAY_MIGRATED"] = "1"
        uvicorn.run("polyrelay.server.app:create_app_from_env", factory=True, host=host, port=port,
                    workers=workers, **_UVICORN)  # type: ignore[arg-type]
    else:
        from polyrelay.server.app import App

        uvicorn.run(App(cfg, migrate_on_start=False), host=host, port=port, **_UVICORN)  # type: ignore[arg-type]


@app.command()
def simulate(host: str = typer.Option("127.0.0.1"), port: int = typer.Option(9090)) -> None:
    """Run the upstream simulator (OpenAI chat, Anthropic Messages and Gemini; errors on demand)."""
    from polyrelay.sim.app import SimApp

    typer.echo(f"polyrelay simulator on http://{host}:{port}", err=True)
    uvicorn.run(SimApp(), host=host, port=port, **_UVICORN)  # type: ignore[arg-type]


DEMO_KEY = "sk-demo-0001"


def demo_config(sim_url: str) -> str:
    return f"""\
channels:
  - name: simulator
    type: openai
    base_url: {sim_url}/v1
    api_keys: [sk-sim-upstream]
    models: [gpt-4o-mini, gpt-4o]
    model_map: {{gpt-4o: gpt-4o-2024-11-20}}
  - name: simulated-anthropic
    type: anthropic
    base_url: {sim_url}
    api_keys: [sk-ant-sim-upstream]
    models: [claude-sonnet-4-6, claude-sonnet-4-6-thinking]
  - name: simulated-gemini
    type: gemini
    base_url: {sim_url}
    api_keys: [gemini-sim-upstream]
    models: [gemini-2.5-flash]
keys:
  - name: demo
    key: {DEMO_KEY}
    quota: 5.0
prices:
  gpt-4o-mini: {{input: 0.15, output: 0.60, cached_input: 0.075}}
  gpt-4o: {{input: 2.50, output: 10.00, cached_input: 1.25}}
  claude-sonnet-4-6: {{input: 3.00, output: 15.00, cached_input: 0.30}}
  gemini-2.5-flash: {{input: 0.30, output: 2.50, cached_input: 0.03}}
"""


@app.command()
def demo(port: int = typer.Option(8080, help="gateway port"),
         sim_port: int = typer.Option(9090, help="simulator port")) -> None:
    """Start the built-in upstream simulator and the gateway (SQLite) with an example config."""
    from polyrelay.server.app import App
    from polyrelay.sim.app import SimApp

    cfg = parse_config(demo_config(f"http://127.0.0.1:{sim_port}"), "<demo config>")
    asyncio.run(_prepare_database(cfg, _engine()))
    base = f"http://127.0.0.1:{port}/v1"
    typer.echo(f"""polyrelay demo: gateway {base}, simulator http://127.0.0.1:{sim_port}, key {DEMO_KEY}

Try it:
  curl {base}/chat/completions -H 'Authorization: Bearer {DEMO_KEY}' \\
       -H 'Content-Type: application/json' \\
       -d '{{"model": "gpt-4o-mini", "messages": [{{"role": "user", "content": "Hello!"}}]}}'

  python -c "from openai import OpenAI; c = OpenAI(base_url='{base}', api_key='{DEMO_KEY}'); \\
print(c.chat.completions.create(model='gpt-4o-mini', messages=[{{'role': 'user', 'content': 'Hello!'}}]).choices[0].message.content)"

Any SDK reaches any model (the gateway converts between protocols):
  python -c "import anthropic; c = anthropic.Anthropic(base_url='http://127.0.0.1:{port}', api_key='{DEMO_KEY}'); \
print(c.messages.create(model='gpt-4o-mini', max_tokens=100, messages=[{{'role': 'user', 'content': 'Hi'}}]).content[0].text)"
  python -c "from google import genai; from google.genai import types; \
c = genai.Client(api_key='{DEMO_KEY}', http_options=types.HttpOptions(base_url='http://127.0.0.1:{port}')); \
print(c.models.generate_content(model='claude-sonnet-4-6', contents='Hi').text)"

Balance: curl {base}/dashboard/billing/subscription -H 'Authorization: Bearer {DEMO_KEY}'
Ctrl-C stops both.""")

    async def run_both() -> None:
        sim = uvicorn.Server(uvicorn.Config(SimApp(), host="127.0.0.1", port=sim_port, **_UVICORN))  # type: ignore[arg-type]
        gateway = uvicorn.Server(uvicorn.Config(App(cfg, migrate_on_start=False), host="127.0.0.1",
                                                port=port, **_UVICORN))  # type: ignore[arg-type]
        await asyncio.gather(sim.serve(), gateway.serve())

    asyncio.run(run_both())


def _run(coro):  # type: ignore[no-untyped-def]
    from polyrelay.store.db import migrate

    engine = _engine()

    async def with_engine():  # type: ignore[no-untyped-def]
        try:
            await migrate(engine)
            return await coro(engine)
        finally:
            await engine.dispose()

    return asyncio.run(with_engine())


@keys_app.command("create")
def keys_create(name: str = typer.Option(..., help="unique name of the key"),
                quota: Optional[float] = typer.Option(None, help="USD; omit for unlimited"),
                model: list[str] = typer.Option([], "--model", help="allowed model (repeat); none = all")) -> None:
    """Create a key; its value is printed once (only its hash is stored)."""
    from polyrelay.store.keys import create_key

    problem = None if quota is None else quota_problem(quota)
    if problem:
        typer.echo(f"polyrelay: --quota {problem}", err=True)
        raise typer.Exit(2)
    try:
        value = _run(lambda engine: create_key(engine, name, quota, model))
    except typer.Exit:
        raise
    except Exception as e:  # unique name violated, most likely
        typer.echo(f"polyrelay: could not create key '{name}': {type(e).__name__}", err=True)
        raise typer.Exit(1) from None
    typer.echo(value)


@keys_app.command("list")
def keys_list() -> None:
    """List keys (prefix only), their quota and spend in USD."""
    from polyrelay.store.keys import list_keys

    for k in _run(list_keys):
        quota = "unlimited" if k["quota_micros"] is None else f"${k['quota_micros'] / 1e6:.6f}"
        state = "enabled" if k["enabled"] else "disabled"
        typer.echo(f"{k['name']:<20} {k['prefix']:<12} quota {quota:<14} spent ${k['spent_micros'] / 1e6:.6f} "
                   f"{state} models={','.join(k['models']) or '*'}")


def _set_enabled(name: str, enabled: bool) -> None:
    from polyrelay.store.keys import set_enabled

    if not _run(lambda engine: set_enabled(engine, name, enabled)):
        typer.echo(f"polyrelay: no key named '{name}'", err=True)
        raise typer.Exit(1)


@keys_app.command("disable")
def keys_disable(name: str) -> None:
    """Disable a key (running gateways notice within seconds)."""
    _set_enabled(name, False)


@keys_app.command("enable")
def keys_enable(name: str) -> None:
    """Enable a key again."""
    _set_enabled(name, True)


@app.command()
def logs(limit: int = typer.Option(20, help="how many recent requests")) -> None:
    """Print the most recent request log rows as JSON lines."""
    from polyrelay.store.logs import recent_logs

    for row in reversed(_run(lambda engine: recent_logs(engine, limit))):
        sys.stdout.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    app()
