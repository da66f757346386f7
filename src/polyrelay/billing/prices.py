"""Prices in integer micro-dollars per 1M tokens, and the cost of a usage record."""

from __future__ import annotations

import msgspec

from polyrelay import ir
from polyrelay.config import PriceConfig


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
