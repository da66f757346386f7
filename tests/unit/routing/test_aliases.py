"""Model aliases (routing/aliases.py): the thinking budget rule `<claude model>-thinking` applies,
whichever protocol the client speaks (over HTTP: tests/e2e/test_thinking_alias.py)."""

from __future__ import annotations

from polyrelay.routing.aliases import thinking_budget

ALIAS = "claude-sim-sonnet-thinking"


def test_the_budget_rule() -> None:
    assert [thinking_budget(ALIAS, n) for n in (None, 0, 1024, 1025, 2048, 8000, 32_768, 40_000)] == [
        2048, None, None, 1024, 1024, 4000, 16_384, 16_384]
    assert thinking_budget("claude-sim-sonnet", 8000) is None
