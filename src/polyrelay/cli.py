"""`polyrelay serve | migrate | demo | simulate | keys ... | logs`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import typer
import uvicorn

from polyrelay.commands import keys as keys_commands
from polyrelay.commands.database import Database, DatabaseOption, choose, fail, run
from polyrelay.commands.listen import QuietServer, Server, bind, port_option, serve_together
from polyrelay.config import Config, ConfigError, load_config, parse_config

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="polyrelay: one base URL and one key for every model.")
app.add_typer(keys_commands.app, name="keys")

_UVICORN = dict(loop="uvloop", http="polyrelay.server.http_protocol:BoundedHttpToolsProtocol",  # head caps
                lifespan="on", access_log=False, proxy_headers=False,
                timeout_graceful_shutdown=30, log_level="warning")

PortOption = typer.Option(8080, callback=port_option, help="port to listen on (1-65535)")


def _load(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as e:
        fail(f"bad config: {e}")


def _prepare_database_apart(config: Path, db: Database) -> None:
    """Migrate and upsert keys in a child process, so the serving process never loads Alembic.
    The URL goes through the environment, not the command line (where `ps` would show a password)."""
    done = subprocess.run(_migrate_argv(config, db), env=_migrate_env(db))
    if done.returncode != 0:
        raise typer.Exit(done.returncode)


def _migrate_argv(config: Path, db: Database) -> list[str]:
    return [sys.executable, "-m", "polyrelay.cli", "migrate", "--config", str(config), "--database-source", db.source]


def _migrate_env(db: Database) -> dict[str, str]:
    return {**os.environ, "POLYRELAY_DATABASE_URL": db.url}


def _configure_logs(level: str | None) -> None:
    from polyrelay import logs as logging_setup  # (the `logs` command below shadows the module name)

    try:
        logging_setup.configure(level)
    except ValueError as e:
        typer.echo(f"polyrelay: --log-level: {e}", err=True)
        raise typer.Exit(2) from None


@app.command()
def migrate(config: Path = typer.Option(..., "--config", "-c", help="YAML config file"),
            database: DatabaseOption = None,
            database_source: str | None = typer.Option(None, hidden=True)) -> None:
    """Bring the database schema up to date and upsert the config's keys (serve does this too)."""
    from polyrelay.store.keys import upsert_config_keys

    cfg = _load(config)
    db = choose(database)
    if database_source:  # serve's child: name the database the way the operator chose it
        db = Database(db.url, database_source)
    run(db, lambda engine: upsert_config_keys(engine, cfg.keys), create=True)


@app.command()
def serve(config: Path = typer.Option(..., "--config", "-c", help="YAML config file"),
          host: str = typer.Option("127.0.0.1", help="address to listen on"),
          port: int = PortOption,
          workers: int = typer.Option(1, min=1, help="worker processes (share quota through the database)"),
          log_level: str | None = typer.Option(None, "--log-level",
                                                  help="debug, info (one access line per request; the "
                                                       "default), warning, error"),
          database: DatabaseOption = None) -> None:
    """Run the gateway with the channels, keys and prices of CONFIG."""
    _configure_logs(log_level)
    cfg = _load(config)
    db = choose(database)
    sock = bind(host, port, "gateway")   # a busy port fails before the database is touched
    _prepare_database_apart(config, db)
    os.environ["POLYRELAY_DATABASE_URL"] = db.url   # worker processes read it
    listening = (f"polyrelay listening on http://{host}:{port} ({len(cfg.channels)} channels, "
                 f"{len(cfg.keys)} keys from config)")
    if workers > 1:
        os.environ["POLYRELAY_CONFIG"] = str(config.resolve())
        os.environ["POLYRELAY_MIGRATED"] = "1"
        os.environ["POLYRELAY_WORKERS"] = str(workers)   # the admin reload asks the supervisor (SIGHUP)
        from polyrelay.commands.listen import Workers

        def before_restart() -> bool:
            """SIGHUP: the workers are replaced only by ones that can start on the file as it is now."""
            try:
                load_config(config)
            except ConfigError as e:
                typer.echo(f"polyrelay: SIGHUP: config not reloaded, still serving the previous one: {e}", err=True)
                return False
            return subprocess.run(_migrate_argv(config, db), env=_migrate_env(db)).returncode == 0

        Workers(uvicorn.Config("polyrelay.server.app:create_app_from_env", factory=True, workers=workers,
                               **_UVICORN),  # type: ignore[arg-type]
                [sock], on_started=lambda: typer.echo(listening, err=True), before_restart=before_restart).run()
        return
    from polyrelay.server.app import App

    app_ = App(cfg, database_url=db.url, migrate_on_start=False, config_path=str(config.resolve()))
    server = Server(uvicorn.Config(app_, **_UVICORN),  # type: ignore[arg-type]
                    on_started=lambda: typer.echo(listening, err=True))
    with contextlib.suppress(KeyboardInterrupt):
        server.run([sock])
    if not server.started:
        raise typer.Exit(3)


@app.command()
def reload(url: str = typer.Option("http://127.0.0.1:8080", help="the running gateway's base URL"),
           timeout: float = typer.Option(30.0, help="seconds to wait for the answer")) -> None:
    """Make a running gateway re-read its config file (POST /admin/reload, with POLYRELAY_ADMIN_TOKEN).

    A file that does not validate is refused with the reason, and the gateway keeps what it had."""
    from polyrelay.commands.reload import request_reload

    typer.echo(request_reload(url, os.environ.get("POLYRELAY_ADMIN_TOKEN"), timeout))


@app.command()
def simulate(host: str = typer.Option("127.0.0.1", help="address to listen on"),
             port: int = typer.Option(9090, callback=port_option, help="port to listen on (1-65535)")) -> None:
    """Run the upstream simulator (OpenAI chat, Anthropic Messages and Gemini; errors on demand)."""
    from polyrelay.sim.app import SimApp

    sock = bind(host, port, "simulator")
    server = Server(uvicorn.Config(SimApp(), **_UVICORN),  # type: ignore[arg-type]
                    on_started=lambda: typer.echo(f"polyrelay simulator on http://{host}:{port}", err=True))
    with contextlib.suppress(KeyboardInterrupt):
        server.run([sock])


@app.command()
def demo(port: int = typer.Option(8080, callback=port_option, help="gateway port (1-65535)"),
         sim_port: int = typer.Option(9090, callback=port_option, help="simulator port (1-65535)"),
         log_level: str | None = typer.Option(None, "--log-level",
                                                  help="debug, info (one access line per request; the "
                                                       "default), warning, error"),
         database: DatabaseOption = None) -> None:
    """Start the built-in upstream simulator and a gateway with an example config, on a temporary database.

    The demo never uses ./polyrelay.db or POLYRELAY_DATABASE_URL; --database names one to keep (a
    database holding keys other than the demo's is refused: the demo would disable them)."""
    _configure_logs(log_level)
    from polyrelay.commands import demo as demo_parts
    from polyrelay.server.app import App
    from polyrelay.sim.app import SimApp
    from polyrelay.store.keys import upsert_config_keys

    if port == sim_port:
        fail(f"--port and --sim-port are both {port}: the gateway and the simulator need one each")
    gateway_sock = bind("127.0.0.1", port, "gateway")
    sim_sock = bind("127.0.0.1", sim_port, "simulator")
    cfg = parse_config(demo_parts.demo_config(f"http://127.0.0.1:{sim_port}"), "<demo config>")
    folder = None
    if database:
        db = Database(database, "--database")
    else:
        db, folder = demo_parts.temporary_database()
    try:
        run(db, lambda engine: upsert_config_keys(engine, cfg.keys), create=True, announce=False,
            check=demo_parts.refuse_foreign_keys)
        banner = demo_parts.banner(port, sim_port, db, env_ignored=not database and
                                   bool(os.environ.get("POLYRELAY_DATABASE_URL")))
        servers: list[Server] = []

        def started() -> None:
            if all(s.started for s in servers):
                typer.echo(banner)

        servers += [QuietServer(uvicorn.Config(SimApp(), **_UVICORN), on_started=started),  # type: ignore[arg-type]
                    QuietServer(uvicorn.Config(App(cfg, database_url=db.url, migrate_on_start=False),
                                               **_UVICORN), on_started=started)]  # type: ignore[arg-type]
        ok = asyncio.run(serve_together(list(zip(servers, [sim_sock, gateway_sock], strict=True))))
    finally:
        if folder is not None:
            demo_parts.remove_temporary(folder)
    if not ok:
        raise typer.Exit(3)


@app.command()
def logs(limit: int = typer.Option(20, min=1, help="how many recent requests"),
         database: DatabaseOption = None,
         as_json: bool = keys_commands.JsonOption) -> None:
    """Show the most recent requests, oldest first: time, key, model, channel, status, tokens, cost."""
    from polyrelay.commands import output  # (rich: imported only by the commands that print)
    from polyrelay.store.logs import recent_logs

    rows = list(reversed(run(choose(database), lambda engine: recent_logs(engine, limit), create=False)))
    if as_json:
        output.print_json(output.logs_json(rows))
    else:
        output.print_logs(rows)


if __name__ == "__main__":
    app()
