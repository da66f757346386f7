"""Anthropic Messages errors <-> GatewayError."""

from __future__ import annotations

from typing import Any

import msgspec

from polyrelay.errors import GatewayError

_TYPE_BY_KIND = {
    "invalid_request": "invalid_request_error", "authentication": "authentication_error",
    "permission": "permission_error", "not_found": "not_found_error", "request_too_large": "request_too_large",
    "rate_limit": "rate_limit_error", "insufficient_quota": "rate_limit_error", "upstream": "api_error",
    "overloaded": "overloaded_error", "timeout": "timeout_error", "internal": "api_error"}
_KIND_BY_TYPE = {v: k for k, v in _TYPE_BY_KIND.items() if k not in ("insufficient_quota", "internal")}
_KIND_BY_TYPE["billing_error"] = "insufficient_quota"   # 402: the account's credit or plan


def _error_payload(err: GatewayError) -> dict[str, Any]:
    kind = "billing_error" if err.status == 402 else _TYPE_BY_KIND.get(err.kind, "api_error")
    return {"type": "error", "error": {"type": kind, "message": err.message}}


def render_error(err: GatewayError) -> tuple[int, bytes]:
    return err.status, msgspec.json.encode(_error_payload(err))


def render_stream_error(err: GatewayError) -> bytes:
    return b"event: error\ndata: " + msgspec.json.encode(_error_payload(err)) + b"\n\n"


def parse_error(status: int, body: bytes) -> GatewayError:
    message, kind = "", None
    try:
        payload = msgspec.json.decode(body)
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict):
            message = str(error.get("message") or "")
            kind = _KIND_BY_TYPE.get(str(error.get("type")))
    except msgspec.DecodeError:
        pass
    kind = kind or {400: "invalid_request", 401: "authentication", 402: "insufficient_quota", 403: "permission",
                    404: "not_found", 413: "request_too_large", 429: "rate_limit", 529: "overloaded"}.get(
        status, "upstream" if status >= 500 else "invalid_request")
    message = message or body[:300].decode("utf-8", "replace").strip() or f"upstream returned HTTP {status}"
    out_status = 503 if status == 529 else status
    return GatewayError(out_status, kind, message, retryable=status in (408, 429) or status >= 500)  # type: ignore[arg-type]
