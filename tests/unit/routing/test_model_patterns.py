"""Model name patterns (routing/patterns.py) and the router over them: `*` matches any run of
characters; exact names win over patterns; among patterns the most specific (longest literal prefix)
wins; resolutions are cached per name in a bounded LRU that exact names never touch."""

from __future__ import annotations

import random
import string

import pytest

from polyrelay.channels import build_channel
from polyrelay.config import ChannelConfig
from polyrelay.routing.patterns import (
    CACHE_NAMES,
    MAX_MODEL_CHARS,
    Glob,
    PatternTable,
    allowlist_permits,
    covers,
    pattern_problem,
    specificity,
)
from polyrelay.routing.router import Router


@pytest.mark.parametrize("pattern, name, expected", [
    ("gpt-4-gizmo-*", "gpt-4-gizmo-g-abc123", True),
    ("gpt-4-gizmo-*", "gpt-4-gizmo-", True),             # `*` matches nothing as well
    ("gpt-4-gizmo-*", "gpt-4-gizmo", False),
    ("gpt-4-gizmo-*", "xgpt-4-gizmo-a", False),           # anchored at the start
    ("claude-*", "claude-opus-4-thinking", True),
    ("*-mini", "gpt-4o-mini", True),
    ("*-mini", "gpt-4o-mini-2024", False),                # anchored at the end
    ("a*b*c", "abc", True),
    ("a*b*c", "a-c-b-c", True),                           # b placed leftmost, c still ends it
    ("a*b*c", "acb", False),
    ("a*a", "a", False),                                  # prefix and suffix may not share a character
    ("a*a", "aa", True),
    ("ab*ba", "aba", False),
    ("*", "", True),
    ("*", "anything at all", True),
    ("gpt-4o", "gpt-4o", True),                           # no `*`: the name itself
    ("gpt-4o", "gpt-4o-mini", False),
    ("gpt.*", "gptx", False),                             # `.` is a character, not a regex
    ("*", "x" * (MAX_MODEL_CHARS + 1), False),            # longer than any model name: matched by nothing
])
def test_glob_matches(pattern: str, name: str, expected: bool) -> None:
    assert Glob(pattern).matches(name) is expected


def test_the_most_specific_pattern_comes_first() -> None:
    patterns = ["*", "gpt-*", "gpt-4*", "gpt-4-gizmo-*", "*-gizmo-*", "gpt-4-*-abc", "gpt-4-*"]
    assert sorted(patterns, key=specificity) == [
        "gpt-4-gizmo-*",   # literal prefix of 12
        "gpt-4-*-abc",     # prefix of 6, then 9 literal characters before 6
        "gpt-4-*",
        "gpt-4*",
        "gpt-*",
        "*-gizmo-*",       # no literal prefix: after every pattern with one
        "*"]
    table = PatternTable({p: p for p in patterns})
    assert table.lookup("gpt-4-gizmo-g-abc") == "gpt-4-gizmo-*"
    assert table.lookup("gpt-4-x-abc") == "gpt-4-*-abc"
    assert table.lookup("gpt-4o") == "gpt-4*"
    assert table.lookup("o1-gizmo-x") == "*-gizmo-*"
    assert table.lookup("llama") == "*"
    # equal prefix and literal count: the pattern text decides, so every start resolves alike
    assert PatternTable({"x*b*": 2, "x*a*": 1}).lookup("xab") == 1 == PatternTable({"x*a*": 1, "x*b*": 2}).lookup("xba")
    assert PatternTable({"a*z": 1, "a*y*z": 2}).lookup("ayz") == 2


@pytest.mark.parametrize("name, problem", [
    ("gpt-4?", "'?' cannot be in a model name; only '*' is a wildcard"),
    ("gpt-[34]o", "'[' and ']' cannot be in a model name"),
    ("gpt-**", "write one '*' instead of '**'"),
])
def test_other_glob_syntax_is_refused(name: str, problem: str) -> None:
    assert problem in (pattern_problem(name) or "")


def test_plain_names_and_patterns_pass() -> None:
    assert [pattern_problem(n) for n in ("gpt-4o", "*", "gpt-4-gizmo-*", "*-mini", "a*b*c")] == [None] * 5


def test_allowlists_match_exact_names_and_patterns() -> None:
    assert allowlist_permits(frozenset(), "anything")
    allow = frozenset({"gpt-4o-mini", "gpt-4-gizmo-*"})
    assert allowlist_permits(allow, "gpt-4o-mini") and allowlist_permits(allow, "gpt-4-gizmo-g-abc123")
    assert not allowlist_permits(allow, "gpt-4o") and not allowlist_permits(allow, "gpt-4-gizmo")
    # an exact allowlist entry is just that name, whatever channel pattern serves it
    assert not allowlist_permits(frozenset({"gpt-4-gizmo-g-abc123"}), "gpt-4-gizmo-g-other")


def test_covers_is_sound() -> None:
    assert covers("gpt-*", "gpt-4-gizmo-*") and covers("*", "claude-*") and covers("claude-*", "claude-*")
    assert covers("*-mini", "gpt-*-mini")
    assert not covers("gpt-4-gizmo-*", "gpt-*") and not covers("gpt-*-mini", "gpt-*")
    assert not covers("a*b", "a*")   # "a" is matched by the narrow one, not the wide one


def _channel(name: str, models: list[str], priority: int = 0, enabled: bool = True):  # type: ignore[no-untyped-def]
    return build_channel(ChannelConfig(name=name, base_url="http://127.0.0.1:1/v1", models=models,
                                       priority=priority, enabled=enabled))


def _names(router: Router, model: str) -> list[str]:
    return sorted(ch.name for ch in router.candidates(model, "generate"))


def test_exact_names_win_and_the_most_specific_pattern_routes() -> None:
    router = Router([
        _channel("exact", ["gpt-4-gizmo-special", "gpt-4o"]),
        _channel("gizmos", ["gpt-4-gizmo-*"]),
        _channel("gizmos-too", ["gpt-4-gizmo-*"]),
        _channel("family", ["gpt-4*"]),
        _channel("catch-all", ["*"]),
        _channel("off", ["gpt-4-gizmo-g-*"], enabled=False),
    ])
    assert _names(router, "gpt-4-gizmo-special") == ["exact"]        # only the channels naming it exactly
    assert _names(router, "gpt-4o") == ["exact"]
    assert _names(router, "gpt-4-gizmo-g-abc123") == ["gizmos", "gizmos-too"]   # the disabled one is no candidate
    assert _names(router, "gpt-4.1") == ["family"]
    assert _names(router, "mistral-large") == ["catch-all"]
    assert router.models() == ["gpt-4-gizmo-special", "gpt-4o"]     # exact names only
    assert router.serves("gpt-4-gizmo-anything") and router.serves("gpt-4o")
    assert router.candidates("x" * (MAX_MODEL_CHARS + 1), "generate") == []     # too long for any pattern, even `*`


def test_priorities_order_a_patterns_channels() -> None:
    router = Router([_channel("low", ["claude-*"], priority=0), _channel("high", ["claude-*"], priority=5)])
    assert [ch.name for ch in router.candidates("claude-opus-4", "generate")] == ["high", "low"]
    assert not router.serves("gpt-4o")


def test_exact_names_never_reach_the_pattern_cache_and_the_cache_is_bounded() -> None:
    router = Router([_channel("exact", ["gpt-4o"]), _channel("gizmos", ["gpt-4-gizmo-*"])])
    cache = router._tiers["generate"][1]._cached.cache_info  # type: ignore[attr-defined]
    for _ in range(100):
        router.candidates("gpt-4o", "generate")
        router.serves("gpt-4o")
    assert cache().hits == cache().misses == 0
    router.candidates("gpt-4-gizmo-a", "generate")
    router.candidates("gpt-4-gizmo-a", "generate")
    assert (cache().hits, cache().misses) == (1, 1)
    rng = random.Random(13)
    for _ in range(CACHE_NAMES + 2000):   # an attacker's random names, matching or not
        name = "".join(rng.choices(string.ascii_letters, k=40))
        router.serves(name if rng.random() < 0.5 else "gpt-4-gizmo-" + name)
    assert cache().currsize == CACHE_NAMES
    router.serves("gpt-4-gizmo-" + "x" * MAX_MODEL_CHARS)   # too long: answered, never kept
    assert cache().currsize == CACHE_NAMES and cache().misses == CACHE_NAMES + 2001


def test_a_requested_pattern_is_no_model() -> None:
    router = Router([_channel("gizmos", ["gpt-4-gizmo-*"]), _channel("catch-all", ["*"])])
    assert not router.serves("gpt-4-gizmo-*") and not router.serves("*") and router.candidates("a*b", "generate") == []
