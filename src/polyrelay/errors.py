"""The one error type used inside the gateway.

Every failure is a `GatewayError` carrying an HTTP status and a protocol-neutral `kind`. Each client
protocol module renders it in its own wire shape at the edge (`protocols.<name>.render_error`).
"""

from __future__ import annotations

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
