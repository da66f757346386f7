"""Gemini errors <-> GatewayError."""

from __future__ import annotations

from typing import Any

import msgspec

from polyrelay.errors import GatewayError

_STATUS_BY_KIND = {
    "invalid_request": "INVALID_ARGUMENT", "authentication": "UNAUTHENTICATED", "permission": "PERMISSION_DENIED",
    "not_found": "NOT_FOUND", "request_too_large": "INVALID_ARGUMENT", "rate_limit": "RESOURCE_EXHAUSTED",
    "insufficient_quota": "RESOURCE_EXHAUSTED", "upstream": "UNAVAILABLE", "overloaded": "UNAVAILABLE",
    "timeout": "DEADLINE_EXCEEDED", "internal": "INTERNAL"}


def _error_payload(err: GatewayError) -> dict[str, Any]:
    status = "INTERNAL" if err.status == 500 else _STATUS_BY_KIND.get(err.kind, "INTERNAL")  # 500 is not 503
    return {"error": {"code": err.status, "message": err.message, "status": status}}


def render_error(err: GatewayError) -> tuple[int, bytes]:
    return err.status, msgspec.json.encode(_error_payload(err))


def render_stream_error(err: GatewayError) -> bytes:
    return b"data: " + msgspec.json.encode(_error_payload(err)) + b"\n\n"


def parse_error(status: int, body: bytes) -> GatewayError:
    message, reasons = "", ""
    try:
        payload = msgspec.json.decode(body)
        if isinstance(payload, list) and payload:
            payload = payload[0]
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict):
            message = str(error.get("message") or "")
            reasons = str(error.get("details") or "")
    except msgspec.DecodeError:
        pass
    kind = {400: "invalid_request", 401: "authentication", 402: "insufficient_quota", 403: "permission",
            404: "not_found", 429: "rate_limit", 503: "overloaded", 504: "timeout"}.get(
        status, "upstream" if status >= 500 else "invalid_request")  # 503 UNAVAILABLE, 504 DEADLINE_EXCEEDED
    if "API_KEY_INVALID" in reasons:  # Gemini answers a bad key with 400: the channel's fault
        kind = "authentication"
    message = message or body[:300].decode("utf-8", "replace").strip() or f"upstream returned HTTP {status}"
    return GatewayError(status, kind, message, retryable=status in (408, 429) or status >= 500)  # type: ignore[arg-type]
