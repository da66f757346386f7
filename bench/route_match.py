"""Microseconds per route match over a mix of request lines (exact routes, Gemini model methods,
model lookups, a 404). Run with PYTHONPATH pointing at the src/ to measure."""

from __future__ import annotations

import time
from types import SimpleNamespace

from polyrelay.server import app as app_module

LINES = [("POST", "/v1/chat/completions"), ("POST", "/v1/messages"),
         ("POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
         ("POST", "/v1/models/gemini-2.5-flash:generateContent"), ("GET", "/v1/models/org/some-model"),
         ("GET", "/v1beta/models/gemini-2.5-flash"), ("POST", "/admin/keys/alice/disable"),
         ("GET", "/nowhere/at/all")]
ROUNDS = 200_000


def matcher():  # type: ignore[no-untyped-def]
    if hasattr(app_module, "_router"):
        router = app_module._router()
        return router.match
    fake = SimpleNamespace(routes=app_module._routes())   # before issue 11: prefix routes in a dict
    return lambda method, path: app_module.App._match(fake, method, path)  # type: ignore[arg-type]


def main() -> None:
    match = matcher()
    for method, path in LINES:
        assert (match(method, path) is None) == (path == "/nowhere/at/all"), path
    for method, path in LINES:
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(ROUNDS // 10):
                match(method, path)
            best = min(best, time.perf_counter() - t0)
        print(f"{best / (ROUNDS // 10) * 1e6:7.3f} us  {method} {path}")


if __name__ == "__main__":
    main()
