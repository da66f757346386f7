"""What the server knows about a route before it reads a byte of the body: who may call it (the
header its surface reads the key from, or the admin token), how large its body may be, and the
protocol its errors are rendered in."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, cast, overload

from polyrelay.protocols.registry import WireProtocol
from polyrelay.relay.surfaces import Surface
from polyrelay.server.asgi import Scope

if TYPE_CHECKING:
    from polyrelay.relay.gateway import Gateway
    from polyrelay.relay.replies import Reply, StreamReply
    from polyrelay.store.keys import KeyRecord

# Generation routes (and count_tokens, which carries the same messages, images included).
GENERATION_BODY = int(os.environ.get("POLYRELAY_MAX_BODY_MB", "64")) * 1024 * 1024
SMALL_BODY = 64 * 1024   # admin definitions and other small JSON
NO_BODY = 0              # the body is never read

Params = Mapping[str, str]   # a path's `{name}` values

# handler(gateway, scope, body, key, params) -> reply; key is None on routes without a key reader,
# params are the path's `{name}` values (server.router)
Handler = Callable[["Gateway", Scope, bytes, "KeyRecord | None", Params],
                   Awaitable["Reply | StreamReply"]]
# what a route declares: a handler taking a key record if the route reads a key, else one taking None
KeyedHandler = Callable[["Gateway", Scope, bytes, "KeyRecord", Params], Awaitable["Reply | StreamReply"]]
OpenHandler = Callable[["Gateway", Scope, bytes, None, Params], Awaitable["Reply | StreamReply"]]
KeyReader = Callable[[Scope], "str | None"]
Guard = Callable[[Scope], None]   # raises a GatewayError (the admin token check)
ErrorShape = Surface | Callable[[Scope], WireProtocol]


class Route:
    __slots__ = ("method", "path", "handler", "key", "guard", "body_limit", "errors")

    @overload
    def __init__(self, method: str, path: str, handler: KeyedHandler, *, key: KeyReader,
                 guard: Guard | None = None, body_limit: int = NO_BODY, errors: ErrorShape | None = None) -> None: ...
    @overload
    def __init__(self, method: str, path: str, handler: OpenHandler, *, key: None = None,
                 guard: Guard | None = None, body_limit: int = NO_BODY, errors: ErrorShape | None = None) -> None: ...

    def __init__(self, method: str, path: str, handler: KeyedHandler | OpenHandler, *, key: KeyReader | None = None,
                 guard: Guard | None = None, body_limit: int = NO_BODY, errors: ErrorShape | None = None) -> None:
        self.method = method
        self.path = path              # a literal path or a pattern with `{name}` parts (server.router)
        # the app passes a key record exactly when the route has a key reader (the overloads pair them)
        self.handler = cast(Handler, handler)
        self.key = key                # the caller's key from the headers; authenticated before the body
        self.guard = guard            # or another check of the headers, also before the body
        self.body_limit = body_limit
        # the surface whose protocol renders failures, or a function choosing one from the request;
        # None: the surface of the table the route is in (filled in by the app)
        self.errors = errors

    def error_module(self, scope: Scope) -> WireProtocol:
        errors = self.errors
        if isinstance(errors, Surface):
            return errors.protocol
        assert errors is not None, "the app gives each route its table's surface"
        return errors(scope)
