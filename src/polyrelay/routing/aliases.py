"""Public model names that stand for an upstream model plus settings.

`<model>-thinking` (the "Claude Thinking" convention) on a channel whose protocol declares
`THINKING_ALIAS`: the base model with extended thinking on, when the client did not configure
thinking itself. The budget is one rule for the fast path and the converting path alike
(docs/conversion.md, "Model aliases"): half of max_tokens, at least 1024 and at most 16384; with
max_tokens at 1024 or less there is no room to think and thinking stays off. Without a max_tokens
(a converted request whose client set none, and no limit from the key's balance) the budget is the
rule applied to Anthropic's default 4096: 2048.
"""

from __future__ import annotations

THINKING_SUFFIX = "-thinking"
MIN_THINKING_BUDGET = 1024
MAX_ALIAS_BUDGET = 16_384
_DEFAULT_MAX_TOKENS = 4096   # what an upstream with the alias gets when nobody set a limit


def thinking_base_model(public_model: str, upstream_model: str) -> str:
    """The upstream model of a `...-thinking` name that the channel's model_map does not map."""
    if public_model.endswith(THINKING_SUFFIX) and upstream_model == public_model:
        return public_model.removesuffix(THINKING_SUFFIX)
    return upstream_model


def thinking_budget(public_model: str, max_tokens: int | None) -> int | None:
    """The thinking budget a `...-thinking` name asks for, or None (not the alias, or no room)."""
    if not public_model.endswith(THINKING_SUFFIX):
        return None
    limit = _DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
    if limit <= MIN_THINKING_BUDGET:
        return None
    return max(MIN_THINKING_BUDGET, min(limit // 2, MAX_ALIAS_BUDGET))


__all__ = ["MAX_ALIAS_BUDGET", "MIN_THINKING_BUDGET", "THINKING_SUFFIX", "thinking_base_model", "thinking_budget"]
