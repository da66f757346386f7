"""The one error type used inside the gateway.

Every failure is a `GatewayError` carrying an HTTP status and a protocol-neutral `kind`. Each client
protocol module renders it in its own wire shape at the edge (`protocols.<name>.render_error`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

ErrorKind = Literal[
    "invalid_request",      # malformed body, bad parameter, unsupported feature (400)
    "authentication",       # missing / unknown / disabled key (401)
    "permission",           # key may not use this model (403)
    "not_found",            # unknown model or route (404)
    "request_too_large",    # body over the limit (413)
    "rate_limit",           # too many requests (429)
    "insufficient_quota",   # key's quota cannot cover the request (429)
    "upstream",             # upstream failed: bad gateway (502)
    "overloaded",           # no capacity: every candidate failed or busy (503)
    "timeout",              # upstream timed out (504)
    "internal",             # a bug on our side (500)
]


class GatewayError(Exception):
    """A failure with a status code and a neutral kind; rendered per client protocol."""

    def __init__(
        self,
        status: int,
        kind: ErrorKind,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind: ErrorKind = kind
        self.message = message
        self.code = code
        self.param = param
        # True when another upstream candidate may succeed (connect error, 429, 5xx, timeout).
        self.retryable = retryable
        # An upstream's 429 said when to come back (retry-after seconds, retry-after-ms).
        self.retry_after: int | None = None
        self.retry_after_ms: int | None = None

    def __repr__(self) -> str:
        return f"GatewayError({self.status}, {self.kind!r}, {self.message!r})"


def invalid_request(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, "invalid_request", message, param=param)


# What code that reads a decoded body raises on a value of an unexpected type (`tools: 3`) or on
# nesting deeper than the interpreter's recursion limit (a 2 KB body can nest 1,000 levels)
MALFORMED = (TypeError, AttributeError, KeyError, ValueError, IndexError, RecursionError)


def too_deep(what: str = "the request body") -> GatewayError:
    return invalid_request(f"{what} is nested too deeply")


@contextmanager
def blame(what: str, status: int = 400, kind: ErrorKind = "invalid_request") -> Iterator[None]:
    """Converters validate what they know; a malformed value that slips past them is still the
    sender's fault (the client's, or the upstream's), never a 500."""
    try:
        yield
    except MALFORMED as exc:
        logging.getLogger("polyrelay.convert").info("%s: %r", what, exc)
        detail = "nested too deeply" if isinstance(exc, RecursionError) else f"{type(exc).__name__}: {exc}"
        raise GatewayError(status, kind, f"{what}: {detail}", retryable=status >= 500) from None
