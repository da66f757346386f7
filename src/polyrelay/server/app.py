"""The ASGI application: routes per client surface, key extraction, error rendering, lifespan."""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from types import ModuleType

from polyrelay.config import Config, load_config
from polyrelay.errors import GatewayError
from polyrelay.protocols import openai_chat
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.replies import Reply, StreamReply
from polyrelay.relay.surfaces import ANTHROPIC_MESSAGES, GEMINI, OPENAI_CHAT, Surface
from polyrelay.server import admin, anthropic_routes, gemini_routes, openai_routes
from polyrelay.server.asgi import Receive, Scope, Send, header, read_body, send_reply, send_stream
from polyrelay.store.db import create_engine, migrate
from polyrelay.store.keys import upsert_config_keys

log = logging.getLogger("polyrelay.server")

MAX_BODY_BYTES = int(os.environ.get("POLYRELAY_MAX_BODY_MB", "64")) * 1024 * 1024

# handler(gateway, scope, body) -> reply; errors are rendered in the surface's protocol
Handler = Callable[[Gateway, Scope, bytes], Awaitable[Reply | StreamReply]]
ErrorShape = Surface | Callable[[Scope], ModuleType]


class Route:
    __slots__ = ("handler", "errors", "reads_body")

    def __init__(self, handler: Handler, errors: ErrorShape, reads_body: bool = True) -> None:
        self.handler = handler
        # the surface whose protocol renders failures, or a function choosing one from the request
        self.errors = errors
        self.reads_body = reads_body

    def error_module(self, scope: Scope) -> ModuleType:
        return self.errors(scope) if callable(self.errors) else self.errors.protocol


def _routes() -> dict[tuple[str, str], Route]:
    routes: dict[tuple[str, str], Route] = {}
    for table, surface in ((openai_routes.ROUTES, OPENAI_CHAT), (admin.ROUTES, OPENAI_CHAT),
                           (anthropic_routes.ROUTES, ANTHROPIC_MESSAGES), (gemini_routes.ROUTES, GEMINI)):
        for method, path, handler, reads_body, *shape in table:
            routes[(method, path)] = Route(handler, shape[0] if shape else surface, reads_body)
    return routes


class App:
    def __init__(self, config: Config, database_url: str | None = None, migrate_on_start: bool = True) -> None:
        self.config = config
        self.database_url = database_url
        self.migrate_on_start = migrate_on_start
        self.gateway: Gateway | None = None
        self.routes = _routes()
        self.prefix_routes = [(path, route) for (m, path), route in self.routes.items() if path.endswith("/")]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    def _match(self, method: str, path: str) -> Route | None:
        route = self.routes.get((method, path))
        if route is not None:
            return route
        for (m, p), r in self.routes.items():
            if m == method and p.endswith("/") and path.startswith(p) and len(path) > len(p):
                return r
        return None

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        route = self._match(scope["method"], path)
        errors: ModuleType = route.error_module(scope) if route else openai_chat
        try:
            if route is None:
                raise self._not_found(scope["method"], path)
            assert self.gateway is not None, "lifespan did not run"
            body = await read_body(receive, MAX_BODY_BYTES) if route.reads_body else b""
            reply = await route.handler(self.gateway, scope, body)
        except GatewayError as err:
            status, payload = errors.render_error(err)
            await send_reply(send, Reply(status, payload, headers=_retry_headers(err)))
            return
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], path)
            status, payload = errors.render_error(GatewayError(500, "internal", "internal gateway error"))
            await send_reply(send, Reply(status, payload))
            return
        if isinstance(reply, StreamReply):
            await send_stream(send, receive, reply)
        else:
            await send_reply(send, reply)

    def _not_found(self, method: str, path: str) -> GatewayError:
        if any(p == path for (_, p) in self.routes):
            return GatewayError(405, "invalid_request", f"method {method} is not allowed on {path}")
        return GatewayError(404, "not_found", f"no route for {method} {path}")

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
        self.gateway = Gateway(self.config, engine)
        await self.gateway.start()
        release_startup_memory()

    async def shutdown(self) -> None:
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
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc


def _retry_headers(err: GatewayError) -> list[tuple[bytes, bytes]]:
    # We already failed over between channels; tell Stainless SDKs not to retry into a storm.
    if err.status in (502, 503, 504) or err.kind == "insufficient_quota":
        return [(b"x-should-retry", b"false")]
    if err.retry_after is not None:   # every upstream said 429 and when to come back
        wait = [(b"retry-after", b"%d" % err.retry_after)]
        return wait + [(b"retry-after-ms", b"%d" % err.retry_after_ms)] if err.retry_after_ms is not None else wait
    return []


def create_app_from_env() -> App:
    """Factory for `uvicorn --factory` workers: config from POLYRELAY_CONFIG; the parent migrated."""
    return App(load_config(os.environ["POLYRELAY_CONFIG"]),
               migrate_on_start=os.environ.get("POLYRELAY_MIGRATED") != "1")


__all__ = ["App", "create_app_from_env", "header"]
