"""OpenAI Chat errors <-> GatewayError."""

from __future__ import annotations

import msgspec

from polyrelay.errors import ErrorKind, GatewayError

_TYPE_BY_KIND = {
    "invalid_request": "invalid_request_error",
    "authentication": "invalid_request_error",
    "permission": "permission_error",
    "not_found": "invalid_request_error",
    "request_too_large": "invalid_request_error",
    "rate_limit": "rate_limit_error",
    "insufficient_quota": "insufficient_quota",
    "upstream": "upstream_error",
    "overloaded": "server_error",
    "timeout": "timeout_error",
    "internal": "server_error",
}
_CODE_BY_KIND = {
    "authentication": "invalid_api_key",
    "not_found": "model_not_found",
    "rate_limit": "rate_limit_exceeded",
    "insufficient_quota": "insufficient_quota",
}
_KIND_BY_STATUS: dict[int, ErrorKind] = {
    400: "invalid_request", 401: "authentication", 402: "insufficient_quota", 403: "permission", 404: "not_found",
    413: "request_too_large", 429: "rate_limit", 502: "upstream", 503: "overloaded", 504: "timeout",
}


class _ErrorBody(msgspec.Struct):
    message: str | None = None
    type: str | None = None
    code: str | int | None = None
    param: str | None = None


class _ErrorEnvelope(msgspec.Struct):
    error: _ErrorBody | str | None = None


def error_body(err: GatewayError) -> bytes:
    """`{"error": {...}}` for `err`: the HTTP body, and the data of an in-stream error event."""
    return msgspec.json.encode({"error": {
        "message": err.message,
        "type": _TYPE_BY_KIND.get(err.kind, "api_error"),
        "param": err.param,
        "code": err.code or _CODE_BY_KIND.get(err.kind),
    }})


def render_error(err: GatewayError) -> tuple[int, bytes]:
    return err.status, error_body(err)


def parse_error(status: int, body: bytes) -> GatewayError:
    """An upstream's error response (OpenAI shape or anything else) as a GatewayError."""
    kind: ErrorKind = _KIND_BY_STATUS.get(status, "upstream" if status >= 500 else "invalid_request")
    message, code, param = "", None, None
    try:
        env = msgspec.json.decode(body, type=_ErrorEnvelope)
        if isinstance(env.error, _ErrorBody):
            message = env.error.message or ""
            code = str(env.error.code) if env.error.code is not None else None
            param = env.error.param
            if env.error.type == "insufficient_quota" or code == "insufficient_quota":
                kind = "insufficient_quota"
        elif isinstance(env.error, str):
            message = env.error
    except msgspec.ValidationError:
        pass
    except msgspec.DecodeError:
        pass
    if not message:
        message = body[:300].decode("utf-8", "replace").strip() or f"upstream returned HTTP {status}"
    return GatewayError(status, kind, message, code=code, param=param,
                        retryable=status == 429 or status >= 500)


def render_stream_error(err: GatewayError) -> bytes:
    """An in-stream error event: the openai SDK raises APIError on a chunk with an `error` key."""
    return b"data: " + error_body(err) + b"\n\n"
