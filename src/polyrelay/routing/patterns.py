"""Model name patterns ("GPTs and families"): `gpt-4-gizmo-*`, `claude-*`, `*`.

The one syntax for a channel's `models`, the keys of `prices` and a key's model allowlist: a name
with a `*` is a pattern, and `*` stands for any run of characters (none included); every other
character is itself. `?`, `[`, `]` and `**` are refused at config load (`pattern_problem`), so a
glob meant for another tool fails loudly instead of never matching.

Precedence (README "Config reference", docs/billing.md): an exact name always wins over patterns;
among the patterns matching a name the most specific wins, ordered by `specificity`: the longest
literal prefix (the text before the first `*`), then the most literal characters, then the pattern
text (so equal ranks still resolve the same way on every start).

A requested name is looked up in patterns only if it has at most MAX_MODEL_CHARS characters and no
`*` (a pattern is no model): a client cannot make the caches below hold big strings. Resolutions are
cached per name in a bounded LRU (`PatternTable`); a gateway without patterns pays nothing for them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

WILDCARD = "*"
MAX_MODEL_CHARS = 128      # the longest model name a config may write, and the longest a pattern matches
CACHE_NAMES = 4096         # names whose pattern resolution one table remembers (least recently used dropped)
_NOT_GLOB = ("?", "[", "]")

V = TypeVar("V")


def is_pattern(name: str) -> bool:
    return WILDCARD in name


def pattern_problem(name: str) -> str | None:
    """What is wrong with a model name as a name or pattern, or None (name_problem checks the rest)."""
    bad = [c for c in _NOT_GLOB if c in name]
    if bad:
        return (f"{name!r}: {' and '.join(repr(c) for c in bad)} cannot be in a model name; only '*' is a "
                "wildcard (it matches any run of characters)")
    if WILDCARD * 2 in name:
        return f"{name!r}: write one '*' instead of '**' (one already matches any run of characters)"
    return None


class Glob:
    """One compiled pattern: its literal pieces between the `*`s."""

    __slots__ = ("text", "first", "middle", "last", "literal")

    def __init__(self, text: str) -> None:
        pieces = text.split(WILDCARD)
        self.text = text
        self.first, self.middle, self.last = pieces[0], tuple(pieces[1:-1]), pieces[-1]
        self.literal = len(text) - text.count(WILDCARD)

    def matches(self, name: str) -> bool:
        """Leftmost placement of each middle piece: linear in the name, no backtracking."""
        if len(name) < self.literal or len(name) > MAX_MODEL_CHARS:
            return False
        if not (name.startswith(self.first) and name.endswith(self.last)):
            return False
        pos, end = len(self.first), len(name) - len(self.last)
        for piece in self.middle:
            found = name.find(piece, pos, end)
            if found < 0:
                return False
            pos = found + len(piece)
        return True


def specificity(pattern: str) -> tuple[int, int, str]:
    """Sort key, most specific first: longest literal prefix, most literal characters, then the text."""
    return (-len(pattern.partition(WILDCARD)[0]), -(len(pattern) - pattern.count(WILDCARD)), pattern)


class PatternTable(Generic[V]):
    """Patterns -> values; `lookup(name)` is the value of the most specific pattern matching `name`."""

    __slots__ = ("_globs", "_cached")

    def __init__(self, entries: dict[str, V], cache_names: int = CACHE_NAMES) -> None:
        ordered = sorted(entries, key=specificity)
        self._globs = tuple((Glob(p), entries[p]) for p in ordered)
        self._cached: Callable[[str], V | None] = functools.lru_cache(maxsize=cache_names)(self._resolve)

    def __bool__(self) -> bool:
        return bool(self._globs)

    def lookup(self, name: str) -> V | None:
        """None for a name longer than MAX_MODEL_CHARS (never kept in the cache) and for a requested
        name with a `*` (a pattern is no model: `gpt-4-gizmo-*` would match itself)."""
        if not self._globs or len(name) > MAX_MODEL_CHARS or WILDCARD in name:
            return None
        return self._cached(name)

    def _resolve(self, name: str) -> V | None:
        for glob, value in self._globs:
            if glob.matches(name):
                return value
        return None


def any_matches(patterns: Iterable[str], name: str) -> bool:
    return any(Glob(p).matches(name) for p in patterns)


@functools.lru_cache(maxsize=1024)
def _allowlist_globs(allowlist: frozenset[str]) -> tuple[Glob, ...]:
    return tuple(Glob(m) for m in allowlist if WILDCARD in m)


def allowlist_permits(allowlist: frozenset[str], model: str) -> bool:
    """A key's model allowlist: empty permits every model; else the exact name, or any pattern in it
    matching (an allowlist is a set: no precedence among its entries)."""
    if not allowlist or model in allowlist:
        return True
    return any(glob.matches(model) for glob in _allowlist_globs(allowlist))


def covers(wide: str, narrow: str) -> bool:
    """Whether every name `narrow` (a pattern) matches is also matched by `wide`: `narrow` read as
    a plain string matches `wide` (sound, since a literal of `wide` is never a `*`; not complete:
    it serves only the start-up warning about channel patterns without a price)."""
    return Glob(wide).matches(narrow)


__all__ = ["CACHE_NAMES", "MAX_MODEL_CHARS", "WILDCARD", "Glob", "PatternTable", "allowlist_permits",
           "any_matches", "covers", "is_pattern", "pattern_problem", "specificity"]
