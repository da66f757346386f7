"""`polyrelay keys create | list | disable | enable`: gateway API keys in the database."""

from __future__ import annotations

from pathlib import Path

import typer
from sqlalchemy.exc import IntegrityError

from polyrelay.commands.database import DatabaseOption, choose, fail, run
from polyrelay.config import ConfigError, allowlist_problem, load_config, name_problem, quota_problem
from polyrelay.routing.patterns import any_matches, is_pattern

app = typer.Typer(no_args_is_help=True, help="Manage gateway API keys in the database.")

JsonOption = typer.Option(False, "--json", help="print JSON (for scripts)")


def _check_against_config(path: Path, name: str, models: list[str]) -> None:
    """With --config: the key's models must be served there, and its name must not be a config key's
    (the next start would take the row over)."""
    try:
        config = load_config(path)
    except ConfigError as e:
        fail(f"bad config: {e}")
    served = {m for ch in config.channels for m in ch.models}
    # an allowlist pattern stands for names; an exact name must be listed or matched by a channel pattern
    unknown = [m for m in models if not is_pattern(m) and m not in served and not any_matches(served, m)]
    if unknown:
        fail(f"--model {', '.join(unknown)}: not served by {path} (it serves {', '.join(sorted(served))})")
    if any(k.name == name for k in config.keys):
        fail(f"'{name}' is a key in the config {path}: the next start would take it over; choose another --name")


@app.command("create")
def create(name: str = typer.Option(..., help="unique name of the key"),
           quota: float | None = typer.Option(None, help="USD; omit for unlimited"),
           model: list[str] = typer.Option([], "--model", help="allowed model (repeat); none = all"),
           config: Path | None = typer.Option(None, "--config", "-c",
                                                 help="the gateway's YAML config: check --model and --name against it"),
           database: DatabaseOption = None,
           as_json: bool = JsonOption) -> None:
    """Create a key; its value is printed once (only its hash is stored)."""
    from polyrelay.commands import output  # (rich: imported only by the commands that print)
    from polyrelay.store.keys import create_key, usd_to_micros

    problem = name_problem(name)
    if problem:
        fail(f"--name {problem}")
    problem = None if quota is None else quota_problem(quota)
    if problem:
        fail(f"--quota {problem}")
    problem = allowlist_problem(model)
    if problem:
        fail(f"--model {problem}")
    if config is not None:
        _check_against_config(config, name, model)
    db = choose(database)
    try:
        value = run(db, lambda engine: create_key(engine, name, quota, model), create=True)
    except IntegrityError:
        fail(f"a key named '{name}' already exists in {db.describe()}", 1)
    if as_json:
        micros = usd_to_micros(quota)
        output.print_json({"name": name, "key": value, "quota_micros": micros, "quota_usd": output.usd(micros),
                           "models": model})
        return
    allowed = ", ".join(model) or "every model"
    typer.echo(f"polyrelay: created key '{name}' (quota {output.usd(usd_to_micros(quota))}, "
               f"{allowed}); its value, shown only now:", err=True)
    typer.echo(value)


@app.command("list")
def list_(database: DatabaseOption = None, as_json: bool = JsonOption) -> None:
    """List keys (prefix only): state, quota, spend and what is left, in USD."""
    from polyrelay.commands import output
    from polyrelay.store.keys import list_keys

    keys = run(choose(database), list_keys, create=False)
    if as_json:
        output.print_json(output.keys_json(keys))
    else:
        output.print_keys(keys)


def _set_enabled(name: str, enabled: bool, database: str | None) -> None:
    from polyrelay.store.keys import set_enabled

    db = choose(database)
    if not run(db, lambda engine: set_enabled(engine, name, enabled), create=False):
        fail(f"no key named '{name}' in {db.describe()}", 1)
    typer.echo(f"key '{name}' {'enabled' if enabled else 'disabled'} (running gateways notice within 5 seconds)")


@app.command("disable")
def disable(name: str, database: DatabaseOption = None) -> None:
    """Disable a key (running gateways notice within seconds)."""
    _set_enabled(name, False, database)


@app.command("enable")
def enable(name: str, database: DatabaseOption = None) -> None:
    """Enable a key again."""
    _set_enabled(name, True, database)

