"""The per_image look-up rule (billing/images.py), reservations and settlement."""

from __future__ import annotations

import pytest

from polyrelay import ir
from polyrelay.billing.images import image_micros, reserve_micros, settled_micros
from polyrelay.billing.prices import price_table
from polyrelay.config import ConfigError, PriceConfig, parse_config

TABLE = {"1024x1024": 40_000, "1536x1024": 60_000, "1024x1024/high": 170_000, "low": 10_000, "*": 50_000}


def test_known_size_and_quality_take_the_first_present_of_size_quality_size_quality_star() -> None:
    assert image_micros(TABLE, "1024x1024", "high") == 170_000      # "S/Q"
    assert image_micros(TABLE, "1536x1024", "high") == 60_000       # "S"
    assert image_micros(TABLE, "1024x1536", "low") == 10_000        # "Q"
    assert image_micros(TABLE, "1024x1536", "medium") == 50_000     # "*"
    assert image_micros({"1024x1024": 40_000, "1536x1024": 60_000}, "1024x1536", "high") == 60_000  # none: dearest


def test_unknown_size_or_quality_costs_the_dearest_it_could_be() -> None:
    assert image_micros(TABLE, "1024x1024", None) == 170_000   # could be high
    assert image_micros(TABLE, "auto", "medium") == 60_000     # 1536x1024 is the dearest size at medium
    assert image_micros(TABLE, None, "auto") == 170_000
    assert image_micros({"*": 5}, None, None) == 5


def test_reserve_is_n_times_dearest_or_the_token_allowance() -> None:
    per_image = price_table({"m": PriceConfig(per_image={"1024x1024": 0.04, "1536x1024": 0.06})})["m"]
    assert reserve_micros(per_image, 3, "auto", None, 100) == 180_000
    assert reserve_micros(per_image, 2, "1024x1024", None, 100) == 80_000
    tokens = price_table({"m": PriceConfig(input=5.0, output=40.0, max_output=6240)})["m"]
    assert reserve_micros(tokens, 2, None, None, 1000) == (1000 * 5_000_000 + 2 * 6240 * 40_000_000 + 999_999) // 10**6


def test_settle_per_token_when_reported_per_image_otherwise_and_nothing_without_images() -> None:
    both = price_table({"m": PriceConfig(input=5.0, output=40.0, per_image=0.04)})["m"]
    usage = ir.Usage(input_tokens=10, output_tokens=4160)
    assert settled_micros(both, 1, "1024x1024", "high", usage) == (10 * 5 + 4160 * 40 + 0)  # micro-dollars
    assert settled_micros(both, 2, "1024x1024", "high", None) == 80_000
    assert settled_micros(both, 0, "1024x1024", "high", usage) == 0
    only_images = price_table({"m": PriceConfig(per_image=0.04)})["m"]
    assert settled_micros(only_images, 2, None, None, usage) == 80_000   # no token rate: per image


@pytest.mark.parametrize("bad, why", [
    ('{"1024x1024": -1.0}', "from 0 to"), ("{}", "at least one entry"), ('{"a/b/c": 1.0}', "'<size>/<quality>'"),
    (".nan", "finite"),
])
def test_bad_per_image_names_the_field(bad: str, why: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(f"prices:\n  m: {{per_image: {bad}}}\n", "c.yaml")
    assert "prices.m.per_image" in str(err.value) and why in str(err.value)
