"""The ASGI application: routes per client surface, key extraction, error rendering, lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import os
import signal
import sys
import time

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError

from polyrelay import logs
from polyrelay.config import Config, ConfigError, load_config
from polyrelay.errors import GatewayError
from polyrelay.protocols import openai_chat
from polyrelay.protocols.registry import WireProtocol
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.replies import Reply, StreamReply
from polyrelay.relay.surfaces import ANTHROPIC_MESSAGES, GEMINI, OPENAI_CHAT, OPENAI_RESPONSES
from polyrelay.relay.video_jobs import VideoPoller
from polyrelay.server import (
    admin,
    anthropic_routes,
    gemini_routes,
    images_routes,
    openai_routes,
    responses_routes,
    stored_responses_routes,
    video_routes,
)
from polyrelay.server.asgi import (
    Receive,
    Scope,
    Send,
    header,
    read_body,
    send_reply,
    send_stream,
    too_large,
)
from polyrelay.server.route import Route
from polyrelay.server.router import Router
from polyrelay.store.db import create_engine, driver_reason, migrate
from polyrelay.store.keys import upsert_config_keys

log = logging.getLogger("polyrelay.server")

_CLOSE = (b"connection", b"close")
_M_MMAP_THRESHOLD = -3   # glibc's mallopt parameter
_DATABASE_DOWN = GatewayError(503, "overloaded", "the gateway's database is unavailable; try again shortly")


def _router() -> Router:
    routes: list[Route] = []
    for table, surface in ((openai_routes.ROUTES, OPENAI_CHAT), (admin.ROUTES, OPENAI_CHAT),
                           (video_routes.ROUTES, OPENAI_CHAT), (images_routes.ROUTES, OPENAI_CHAT),
                           (anthropic_routes.ROUTES, ANTHROPIC_MESSAGES), (gemini_routes.ROUTES, GEMINI),
                           (responses_routes.ROUTES, OPENAI_RESPONSES),
                           (stored_responses_routes.ROUTES, OPENAI_RESPONSES)):
        for route in table:
            if route.errors is None:
                route.errors = surface
            routes.append(route)
    return Router(routes)


class App:
    def __init__(self, config: Config, database_url: str | None = None, migrate_on_start: bool = True,
                 config_path: str | None = None) -> None:
        self.config = config
        self.config_path = config_path   # re-read by SIGHUP and POST /admin/reload (None: nothing to reload)
        self.database_url = database_url
        self.migrate_on_start = migrate_on_start
        self.gateway: Gateway | None = None
        self.video_poller: VideoPoller | None = None
        self.router = _router()
        self._reloads: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Who is calling is settled from the headers before a byte of the body is read: a caller
        without a valid key never makes the server hold a body (the connection is closed instead)."""
        started = time.perf_counter()
        ctx = logs.begin_request()
        rid = (b"x-request-id", ctx.id.encode())
        path = scope["path"]
        found = self.router.match(scope["method"], path)
        route = found[0] if found is not None else None
        errors: WireProtocol = route.error_module(scope) if route else openai_chat
        # a body may be waiting on the socket: answered without reading it, the connection is closed
        # after the answer (server.http_protocol), so the answer must say so or a client reuses it
        unread = _declares_body(scope)
        try:
            if found is None:
                raise self._not_found(scope["method"], path)
            route, params = found
            gateway = self.gateway
            assert gateway is not None, "lifespan did not run"
            key = None if route.key is None else await gateway.keys.authenticate(route.key(scope))
            if route.guard is not None:
                route.guard(scope)
            body = b""
            if unread and route.body_limit > 0:
                declared = header(scope, b"content-length") or ""
                if declared.isascii() and declared.isdigit() and int(declared) > route.body_limit:
                    raise too_large(route.body_limit)
                body = await read_body(receive, route.body_limit)
                unread = False
            reply = await route.handler(gateway, scope, body, key, params)
        except GatewayError as err:
            _access(ctx, scope, await self._fail(send, errors, err, unread, rid), started)
            return
        except (DBAPIError, SQLAlchemyTimeoutError) as exc:
            log.error("database unavailable on %s %s: %s", scope["method"], path, driver_reason(exc))
            _access(ctx, scope, await self._fail(send, errors, _DATABASE_DOWN, unread, rid), started)
            return
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], path)
            internal = GatewayError(500, "internal", "internal gateway error")
            _access(ctx, scope, await self._fail(send, errors, internal, unread, rid), started)
            return
        reply.headers.append(rid)
        if unread:
            reply.headers.append(_CLOSE)
        if isinstance(reply, StreamReply):
            await send_stream(send, receive, reply)
        else:
            await send_reply(send, reply)
        _access(ctx, scope, reply.status, started)

    @staticmethod
    async def _fail(send: Send, errors: WireProtocol, err: GatewayError, unread: bool,
                    request_id: tuple[bytes, bytes]) -> int:
        """Send `err` in the caller's protocol; return the status sent."""
        status, payload = errors.render_error(err)
        headers = [*_retry_headers(err), request_id]
        if unread:   # the body left on the socket is not read: this connection serves no more requests
            headers.append(_CLOSE)
        await send_reply(send, Reply(status, payload, headers=headers))
        return status

    def error_module_for(self, scope: Scope) -> WireProtocol:
        """The protocol that renders errors for a request the HTTP layer refuses before the app sees it
        (headers too large, too slow): the route's, from what is known of the request so far."""
        path = scope.get("path", "")
        found = self.router.match(scope.get("method", "GET"), path)
        route = found[0] if found is not None else self.router.match_any_method(path)   # method not known yet
        return route.error_module(scope) if route else openai_chat

    def _not_found(self, method: str, path: str) -> GatewayError:
        if self.router.method_not_allowed(path):
            return GatewayError(405, "invalid_request", f"method {method} is not allowed on {path}")
        # its own code: OpenAI's renderer would otherwise call any not_found "model_not_found"
        hint = ""
        if self.router.match(method, "/v1" + path) is not None:   # an OpenAI base_url without /v1
            hint = f" (did you mean /v1{path}? OpenAI SDKs take the base URL with /v1 at the end)"
        return GatewayError(404, "not_found", f"unknown request URL: {method} {path}{hint}", code="unknown_url")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        engine = create_engine(self.database_url)
        if self.migrate_on_start:
            await migrate(engine)
            await upsert_config_keys(engine, self.config.keys)
        self.gateway = Gateway(self.config, engine, self.config_path)
        await self.gateway.start()
        self.video_poller = VideoPoller(self.gateway)
        self.video_poller.start()
        if self.config_path is not None:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_sighup)
        release_startup_memory()

    def _on_sighup(self) -> None:
        task = asyncio.get_running_loop().create_task(self._reload_on_signal())
        self._reloads.add(task)   # held until done (the loop keeps only a weak reference)
        task.add_done_callback(self._reloads.discard)

    async def _reload_on_signal(self) -> None:
        gateway = self.gateway
        if gateway is None:
            return
        log.info("SIGHUP: reloading the config from %s", self.config_path)
        try:
            await gateway.reload_file()   # logs what it now serves
        except ConfigError as e:
            log.error("SIGHUP: config not reloaded, still serving the previous one: %s", e)
        except Exception:
            log.exception("SIGHUP: config not reloaded, still serving the previous one")

    async def shutdown(self) -> None:
        if self.config_path is not None:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self.video_poller is not None:
            await self.video_poller.stop()
            self.video_poller = None
        if self.gateway is not None:
            await self.gateway.stop()
            await self.gateway.engine.dispose()
            self.gateway = None


def release_startup_memory() -> None:
    """Hand the heap that start-up used (imports, migrations) back to the OS: idle RSS is a target.
    Then freeze what is left (modules, config) out of the collector's sight and collect less often:
    full collections over the import-time heap were 60-100 ms pauses under load."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)
    # The database thread (aiosqlite) binds a batch of log rows holding the GIL; give the event
    # loop the GIL back within 1 ms rather than Python's default 5 ms, for the latency tail.
    sys.setswitchinterval(0.001)
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        libc = ctypes.CDLL("libc.so.6")
        # a fixed mmap threshold: a block of 1 MB or more (a large request body, e.g. a 20 MB image
        # upload) is its own mapping, given back to the OS when freed. glibc's default raises the
        # threshold to the largest block freed so far, after which such bodies land on the heap and
        # its RSS stays up (measured: +40 MB for good after 20 MB edits; docs/benchmarks.md)
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 20)
        libc.malloc_trim(0)


def _access(ctx: logs.RequestContext, scope: Scope, status: int, started: float) -> None:
    """The access line of a request no meter logged (refused before billing, admin, lists, 404s)."""
    if not ctx.logged:
        logs.access(ctx, None, f"{scope['method']} {scope['path']}", None, None, status, 0, 0, 0,
                    round((time.perf_counter() - started) * 1000))


def _declares_body(scope: Scope) -> bool:
    length = header(scope, b"content-length")
    if length is not None:
        return length.strip("0 ") != ""
    return header(scope, b"transfer-encoding") is not None


def _retry_headers(err: GatewayError) -> list[tuple[bytes, bytes]]:
    # We already failed over between channels; tell Stainless SDKs not to retry into a storm.
    if err.status in (502, 503, 504) or err.kind == "insufficient_quota":
        return [(b"x-should-retry", b"false")]
    if err.retry_after is not None:   # every upstream said 429 and when to come back
        wait = [(b"retry-after", b"%d" % err.retry_after)]
        return [*wait, (b"retry-after-ms", b"%d" % err.retry_after_ms)] if err.retry_after_ms is not None else wait
    return []


def create_app_from_env() -> App:
    """Factory for `uvicorn --factory` workers: config from POLYRELAY_CONFIG; the parent migrated."""
    logs.configure()   # the level `serve --log-level` left in the environment
    path = os.environ["POLYRELAY_CONFIG"]
    return App(load_config(path), migrate_on_start=os.environ.get("POLYRELAY_MIGRATED") != "1", config_path=path)


__all__ = ["App", "create_app_from_env", "header"]
