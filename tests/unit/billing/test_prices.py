"""Prices: a cost is rounded once, half up, in micro-dollars; every usage count is bounded."""

from __future__ import annotations

import pytest

from polyrelay import ir
from polyrelay.billing.prices import Price, cost_micros


def test_cost_is_rounded_once_half_up_and_cache_is_priced_apart() -> None:
    price = Price(input=150_000, output=600_000, cached_input=75_000, cache_write=150_000, max_output=10)
    usage = ir.Usage(input_tokens=1000, output_tokens=500, cache_read_tokens=400)
    # 600*0.15 + 400*0.075 + 500*0.6 = 90 + 30 + 300 = 420 micro-dollars
    assert cost_micros(price, usage) == 420
    assert cost_micros(price, ir.Usage(input_tokens=3)) == 0    # 0.45 -> 0
    assert cost_micros(price, ir.Usage(input_tokens=4)) == 1    # 0.60 -> 1
    assert cost_micros(None, usage) == 0


def test_searches_are_priced_per_call_in_whole_micro_dollars() -> None:
    """`per_search` (USD per call in the config) is micro-dollars inside, added after the tokens' rounding."""
    from polyrelay.billing.prices import price_table
    from polyrelay.config import PriceConfig

    price = price_table({"m": PriceConfig(input=0.15, output=0.6, per_search=0.035)})["m"]
    assert price.per_search == 35_000
    assert cost_micros(price, ir.Usage(input_tokens=3, web_searches=2)) == 70_000      # 0.45 rounds to 0
    assert cost_micros(price, ir.Usage(input_tokens=1000, output_tokens=500, web_searches=1)) == 150 + 300 + 35_000


@pytest.mark.parametrize("count", ["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                                   "reasoning_tokens", "web_searches"])
def test_every_usage_count_is_bounded(count: str) -> None:
    """bounded_usage checks each count by name (no loop per request): none may be left out."""
    from polyrelay import ir
    from polyrelay.billing.prices import MAX_USAGE_TOKENS, bounded_usage

    assert getattr(bounded_usage(ir.Usage(**{count: -5})), count) == 0
    assert getattr(bounded_usage(ir.Usage(**{count: MAX_USAGE_TOKENS + 1})), count) == MAX_USAGE_TOKENS
    fine = ir.Usage(**{count: MAX_USAGE_TOKENS})
    assert bounded_usage(fine) is fine
