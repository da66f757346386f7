"""Admin API (enabled when POLYRELAY_ADMIN_TOKEN is set): keys, recent request logs, config reload."""

from __future__ import annotations

import hmac
import logging
import os
import signal

import msgspec

from polyrelay.config import ConfigError, allowlist_problem, load_config, name_problem, quota_problem
from polyrelay.errors import GatewayError
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.replies import Reply
from polyrelay.server.asgi import Scope
from polyrelay.server.keys import bearer, query_params
from polyrelay.server.route import SMALL_BODY, Params, Route
from polyrelay.store import keys as key_store
from polyrelay.store.logs import recent_logs

MAX_LOG_ROWS = 1000
log = logging.getLogger("polyrelay.admin")


class _NewKey(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    quota: float | None = None
    models: list[str] = []


def _authorize(scope: Scope) -> None:
    token = os.environ.get("POLYRELAY_ADMIN_TOKEN")
    if not token:
        raise GatewayError(404, "not_found", "the admin API is off: set POLYRELAY_ADMIN_TOKEN")
    given = bearer(scope) or ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise GatewayError(401, "authentication", "invalid admin token")


async def list_keys(gw: Gateway, scope: Scope, body: bytes, key: None, params: Params) -> Reply:
    await gw.ledger.flush()
    return Reply(200, msgspec.json.encode({"data": await key_store.list_keys(gw.engine)}))


async def create_key(gw: Gateway, scope: Scope, body: bytes, key: None, params: Params) -> Reply:
    try:
        new = msgspec.json.decode(body, type=_NewKey)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise GatewayError(400, "invalid_request", f"bad key definition: {e}") from None
    problem = name_problem(new.name)
    if problem:
        raise GatewayError(400, "invalid_request", f"'name' {problem}", param="name")
    problem = None if new.quota is None else quota_problem(new.quota)
    if problem:
        raise GatewayError(400, "invalid_request", f"'quota' {problem}", param="quota")
    problem = allowlist_problem(new.models)
    if problem:
        raise GatewayError(400, "invalid_request", f"'models': {problem}", param="models")
    try:
        value = await key_store.create_key(gw.engine, new.name, new.quota, new.models)
    except Exception:
        raise GatewayError(400, "invalid_request", f"a key named '{new.name}' already exists") from None
    return Reply(201, msgspec.json.encode({"name": new.name, "key": value}))


async def set_key_state(gw: Gateway, scope: Scope, body: bytes, key: None, params: Params) -> Reply:
    name, action = params["name"], params["action"]
    if action not in ("enable", "disable") or not name:
        raise _USE_ENABLE
    if not await key_store.set_enabled(gw.engine, name, action == "enable"):
        raise GatewayError(404, "not_found", f"no key named '{name}'")
    gw.keys.invalidate()
    return Reply(200, msgspec.json.encode({"name": name, "enabled": action == "enable"}))


_USE_ENABLE = GatewayError(404, "not_found", "use /admin/keys/{name}/enable or /disable")


async def unknown_key_action(gw: Gateway, scope: Scope, body: bytes, key: None, params: Params) -> Reply:
    """Any other path under /admin/keys/: told (after the admin token check) what the paths are."""
    raise _USE_ENABLE


def _limit(value: str | None) -> int:
    """`?limit=`: a whole number of rows, 50 by default, at most MAX_LOG_ROWS (larger is clamped)."""
    if value is None:
        return 50
    # refuses -1 (all rows to SQLite), 0, 1.5, ' 5', '+5' and non-ASCII digits
    if not (value.isascii() and value.isdigit()) or not value.strip("0"):
        raise GatewayError(400, "invalid_request",
                           f"'limit' must be a whole number from 1 to {MAX_LOG_ROWS}", param="limit")
    return MAX_LOG_ROWS if len(value.lstrip("0")) > 6 else min(MAX_LOG_ROWS, int(value))


async def list_logs(gw: Gateway, scope: Scope, body: bytes, key: None, params: Params) -> Reply:
    await gw.ledger.flush()
    limit = _limit(query_params(scope).get("limit"))
    return Reply(200, msgspec.json.encode({"data": await recent_logs(gw.engine, limit)}))


async def reload_config(gw: Gateway, scope: Scope, body: bytes, key: None, params: Params) -> Reply:
    """Re-read the config file the gateway was started with; a file that does not validate is a 400
    naming the problem, and the gateway goes on with what it had."""
    if os.environ.get("POLYRELAY_WORKERS"):   # `serve --workers N`: every worker must take the new file
        return _restart_workers(gw)
    try:
        done = await gw.reload_file()
    except ConfigError as e:
        raise GatewayError(400, "invalid_request", f"config not reloaded: {e}") from None
    return Reply(200, msgspec.json.encode({"reloaded": done.path, "channels": done.channels, "models": done.models,
                                           "prices": done.prices, "keys": done.keys}))


def _restart_workers(gw: Gateway) -> Reply:
    """Validate here (a bad file is the caller's 400 at once), then ask the supervisor (SIGHUP) to
    replace the workers one by one with ones started on the new file (commands/listen.Workers)."""
    path = gw.config_path
    if path is None:
        raise GatewayError(400, "invalid_request", "config not reloaded: the gateway has no config file")
    try:
        load_config(path)
    except ConfigError as e:
        raise GatewayError(400, "invalid_request", f"config not reloaded: {e}") from None
    log.info("config reload requested: asking the supervisor (pid %d) to restart the workers", os.getppid())
    os.kill(os.getppid(), signal.SIGHUP)
    return Reply(202, msgspec.json.encode({"reloading": path, "workers": "restarting one by one"}))


async def health(gw: Gateway, scope: Scope, body: bytes, key: None, params: Params) -> Reply:
    return Reply(200, b'{"status":"ok"}')


ROUTES = [
    Route("GET", "/admin/keys", list_keys, guard=_authorize),
    Route("POST", "/admin/keys", create_key, guard=_authorize, body_limit=SMALL_BODY),
    Route("POST", "/admin/keys/{name:path}/{action}", set_key_state, guard=_authorize),
    Route("POST", "/admin/keys/{rest:path}", unknown_key_action, guard=_authorize),
    Route("GET", "/admin/logs", list_logs, guard=_authorize),
    Route("POST", "/admin/reload", reload_config, guard=_authorize),
    Route("GET", "/health", health),
]
