"""Matching a request line to a Route, once, with the path parameters the route declares.

A path is a literal (`/v1/chat/completions`: one dict lookup) or a pattern (`/v1/models/{model:path}`,
`/v1beta/models/{model:path}:{method}`): `{name}` is one non-empty path segment, `{name:path}` is
any text, slashes included (model names like `org/model`), even none: `/v1beta/models/` still reaches
the Gemini route and gets a Gemini-shaped 404 rather than the generic one. Patterns are compiled once and
tried in declaration order, behind a literal-prefix check, so a request pays a regex only on the
routes whose fixed start it shares. A 405 is for a literal path (or a pattern's literal start, like
`/v1/models/`) known under another method; any other miss is a 404 (the app's `unknown_url`)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from polyrelay.server.route import Params, Route

NO_PARAMS: Params = {}

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(path))?\}")
_PIECES = {None: "[^/]+", "path": ".*"}


def compile_pattern(path: str) -> re.Pattern[str]:
    """`/v1/models/{model:path}:{method}` -> an anchored regex with one named group per parameter.
    `{model:path}` is greedy: with a `:{method}` after it, the method is the text after the last colon."""
    out: list[str] = []
    end = 0
    for m in _PARAM.finditer(path):
        out.append(re.escape(path[end:m.start()]))
        out.append(f"(?P<{m.group(1)}>{_PIECES[m.group(2)]})")
        end = m.end()
    out.append(re.escape(path[end:]))
    return re.compile("".join(out) + r"\Z", re.DOTALL)   # a decoded path may hold a newline (%0A)


def is_pattern(path: str) -> bool:
    return _PARAM.search(path) is not None


class Router:
    __slots__ = ("exact", "patterns", "exact_paths")

    def __init__(self, routes: Iterable[Route]) -> None:
        self.exact: dict[tuple[str, str], Route] = {}
        # per method: (literal start, compiled pattern, route), in declaration order
        self.patterns: dict[str, list[tuple[str, re.Pattern[str], Route]]] = {}
        self.exact_paths: set[str] = set()
        for route in routes:
            if is_pattern(route.path):
                start = route.path[:route.path.index("{")]
                self.patterns.setdefault(route.method, []).append((start, compile_pattern(route.path), route))
                # the bare start ("/v1/models/") was a route path of its own before patterns: 405 there
                self.exact_paths.add(start)
            else:
                if (route.method, route.path) in self.exact:
                    raise ValueError(f"route declared twice: {route.method} {route.path}")
                self.exact[(route.method, route.path)] = route
                self.exact_paths.add(route.path)

    def match(self, method: str, path: str) -> tuple[Route, Params] | None:
        route = self.exact.get((method, path))
        if route is not None:
            return route, NO_PARAMS
        for start, pattern, route in self.patterns.get(method, ()):
            if path.startswith(start):
                found = pattern.match(path)
                if found is not None:
                    return route, found.groupdict()
        return None

    def match_any_method(self, path: str) -> Route | None:
        """The route for `path` under any method (the HTTP layer may refuse a request before the
        method is known; its error still takes the route's shape)."""
        for (_, p), route in self.exact.items():
            if p == path:
                return route
        for table in self.patterns.values():
            for start, pattern, route in table:
                if path.startswith(start) and pattern.match(path):
                    return route
        return None

    def method_not_allowed(self, path: str) -> bool:
        return path in self.exact_paths
