"""Reading the caller's key from the header each surface uses."""

from __future__ import annotations

from urllib.parse import parse_qs

from polyrelay.server.asgi import Scope, header


def bearer(scope: Scope) -> str | None:
    value = header(scope, b"authorization")
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip() or None
    return None


def anthropic_key(scope: Scope) -> str | None:
    return header(scope, b"x-api-key") or bearer(scope)


def gemini_key(scope: Scope) -> str | None:
    key = header(scope, b"x-goog-api-key")
    if key:
        return key
    query: bytes = scope.get("query_string", b"")
    if b"key=" in query:
        values = parse_qs(query.decode("latin-1")).get("key")
        if values:
            return values[0]
    return bearer(scope)


def query_params(scope: Scope) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
