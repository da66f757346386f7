"""Prices in integer micro-dollars per 1M tokens, and the cost of a usage record."""

from __future__ import annotations

import msgspec

from polyrelay import ir
from polyrelay.config import ChannelConfig, PriceConfig

THINKING_SUFFIX = "-thinking"   # "<model>-thinking": the same model with thinking on


class Price(msgspec.Struct, frozen=True):
    input: int          # micro-dollars per 1M tokens (= pico-dollars per token)
    output: int
    cached_input: int
    cache_write: int
    max_output: int     # output tokens to reserve for when a request sets no limit


def _micros(usd: float) -> int:
    return round(usd * 1_000_000)


def price_table(prices: dict[str, PriceConfig]) -> dict[str, Price]:
    table: dict[str, Price] = {}
    for model, p in prices.items():
        input_ = _micros(p.input)
        table[model] = Price(
            input=input_,
            output=_micros(p.output),
            cached_input=input_ if p.cached_input is None else _micros(p.cached_input),
            cache_write=input_ if p.cache_write is None else _micros(p.cache_write),
            max_output=p.max_output,
        )
    return table


def served_prices(table: dict[str, Price], channels: list[ChannelConfig]) -> tuple[dict[str, Price], list[str]]:
    """`table` plus a price for every served alias, and the served models left without one.

    An alias inherits the price of what it stands for unless it is priced itself: a channel's
    `model_map` public name the price of its upstream name, `<model>-thinking` that of `<model>`.
    Where channels map one name to models of different prices, the dearest is taken (the
    reservation must cover whichever channel answers).
    """
    out = dict(table)
    unpriced: list[str] = []
    for public in sorted({m for ch in channels if ch.enabled for m in ch.models}):
        if public in table:
            continue
        behind = {ch.model_map.get(public, public) for ch in channels if ch.enabled and public in ch.models}
        behind |= {m.removesuffix(THINKING_SUFFIX) for m in set(behind) if m.endswith(THINKING_SUFFIX)}
        priced = [table[m] for m in behind if m in table]
        if priced:
            out[public] = max(priced, key=lambda p: (p.output, p.input, p.cache_write, p.cached_input))
        else:
            unpriced.append(public)
    return out, unpriced


MAX_USAGE_TOKENS = 1_000_000_000   # per count: far above any answer, and inside a 32-bit log column
_COUNTS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")


def bounded_usage(usage: ir.Usage) -> ir.Usage:
    """`usage` with every count in [0, MAX_USAGE_TOKENS]: an upstream's negative count must never turn
    into a credit, nor an absurd one into a number the database cannot store."""
    top = MAX_USAGE_TOKENS   # spelled out, not a generator over _COUNTS: this runs per request
    if (0 <= usage.input_tokens <= top and 0 <= usage.output_tokens <= top and 0 <= usage.cache_read_tokens <= top
            and 0 <= usage.cache_write_tokens <= top and 0 <= usage.reasoning_tokens <= top):
        return usage
    return msgspec.structs.replace(usage, **{f: min(max(0, getattr(usage, f)), MAX_USAGE_TOKENS) for f in _COUNTS})


def cost_micros(price: Price | None, usage: ir.Usage) -> int:
    """Exact cost in micro-dollars, rounded half up once over the whole request. No price = free."""
    if price is None:
        return 0
    cached = min(usage.cache_read_tokens, usage.input_tokens)
    written = min(usage.cache_write_tokens, usage.input_tokens - cached)
    uncached = usage.input_tokens - cached - written
    pico = (uncached * price.input + cached * price.cached_input + written * price.cache_write
            + usage.output_tokens * price.output)
    return (pico + 500_000) // 1_000_000


def max_cost_micros(price: Price | None, prompt_tokens: int, output_tokens: int) -> int:
    """Upper estimate for a reservation: every prompt token at the dearest input rate."""
    if price is None:
        return 0
    input_rate = max(price.input, price.cache_write)
    pico = prompt_tokens * input_rate + output_tokens * price.output
    return (pico + 999_999) // 1_000_000


def covered_output_tokens(price: Price, prompt_tokens: int, micros: int, answers: int) -> int:
    """The most output tokens per answer that `micros` pays for after the prompt (max_cost_micros's
    inverse, rounded down): with that limit sent upstream, the answer costs at most `micros`."""
    if price.output == 0:
        return price.max_output
    pico = micros * 1_000_000 - prompt_tokens * max(price.input, price.cache_write)
    return max(0, pico // (price.output * answers))
