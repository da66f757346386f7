"""Price precedence with patterns (billing/prices.PriceBook, docs/billing.md "Price precedence"): the
name's own exact price; the exact price of what it stands for (model_map, `-thinking`); the most
specific price pattern matching the name; the most specific one matching what it stands for; else
unpriced (refused by default)."""

from __future__ import annotations

import random
import string

from polyrelay.billing.prices import Price, PriceBook, price_table
from polyrelay.config import parse_config
from polyrelay.routing.patterns import CACHE_NAMES

CONFIG = """
channels:
  - name: gizmos
    base_url: http://127.0.0.1:1/v1
    models: ["gpt-4-gizmo-*", gpt-4-gizmo-fast, gpt-4-gizmo-priced]
    model_map: {gpt-4-gizmo-fast: gpt-4o-mini}
  - name: openai
    base_url: http://127.0.0.1:1/v1
    models: [gpt-4o, gpt-4o-mini, o-unpriced, "gpt-4o-*"]
  - name: claude
    type: anthropic
    base_url: http://127.0.0.1:1
    models: ["claude-*", claude-exact-thinking]
  - name: mapped
    base_url: http://127.0.0.1:1/v1
    models: [house-model]
    model_map: {house-model: vendor-large-2}
  - name: switched-off
    enabled: false
    base_url: http://127.0.0.1:1/v1
    models: ["llama-*"]
prices:
  "gpt-4-gizmo-*": {input: 30, output: 60}
  "gpt-4-*": {input: 7, output: 8}
  "gpt-*": {input: 5, output: 6}
  gpt-4-gizmo-priced: {input: 1, output: 1}
  gpt-4o-mini: {input: 0.15, output: 0.60}
  gpt-4o: {input: 2.50, output: 10.00}
  claude-opus-4: {input: 15, output: 75}
  "claude-opus-*": {input: 20, output: 100}
  "claude-sonnet-*": {input: 3, output: 15}
  "vendor-*": {input: 9, output: 9}
"""


def _book() -> PriceBook:
    config = parse_config(CONFIG)
    return PriceBook(price_table(config.prices), config.channels)


def _usd(price: Price | None) -> tuple[float, float] | None:
    return None if price is None else (price.input / 1e6, price.output / 1e6)


def test_exact_beats_pattern_and_the_most_specific_pattern_wins() -> None:
    book = _book()
    assert _usd(book.get("gpt-4-gizmo-g-abc123")) == (30, 60)     # gpt-4-gizmo-* over gpt-4-* and gpt-*
    assert _usd(book.get("gpt-4-gizmo-priced")) == (1, 1)         # its own exact price over every pattern
    assert _usd(book.get("gpt-4o")) == (2.5, 10)                  # exact, although gpt-* matches
    assert _usd(book.get("gpt-4o-2024-11-20")) == (5, 6)          # pattern-served: gpt-* (gpt-4-* does not match)
    assert _usd(book.get("claude-sonnet-4-6")) == (3, 15)


def test_aliases_inherit_exact_prices_before_patterns() -> None:
    book = _book()
    # model_map: the exact price of the upstream name beats the gizmo pattern matching the public name
    assert _usd(book.get("gpt-4-gizmo-fast")) == (0.15, 0.60)
    # `-thinking` on a pattern-served name: the base model's exact price beats claude-opus-*
    assert _usd(book.get("claude-opus-4-thinking")) == (15, 75)
    assert _usd(book.get("claude-opus-4")) == (15, 75)
    # no exact base: the name's own pattern
    assert _usd(book.get("claude-opus-5-thinking")) == (20, 100)
    # a mapped name with no exact price anywhere: the pattern of what it stands for
    assert _usd(book.get("house-model")) == (9, 9)


def test_a_name_no_price_pattern_matches_is_unpriced() -> None:
    book = _book()
    assert book.get("claude-haiku-4") is None          # served by claude-*, priced by nothing
    assert book.get("claude-exact-thinking") is None    # exact, no exact base, no pattern: still unpriced
    assert book.get("o-unpriced") is None
    # the start-up warning: exact names, then channel patterns that no price pattern covers
    assert book.unpriced == ("claude-exact-thinking", "o-unpriced", "claude-*")
    assert "gpt-4-gizmo-*" not in book.unpriced and "gpt-4o-*" not in book.unpriced   # gpt-* covers both
    assert "llama-*" not in book.unpriced                                             # its channel is off


def test_exact_names_are_a_dict_lookup_and_pattern_names_a_bounded_cache() -> None:
    book = _book()
    cache = book._by_pattern.cache_info  # type: ignore[attr-defined]
    assert book.prices["gpt-4-gizmo-fast"] is book.get("gpt-4-gizmo-fast")
    assert book.get("o-unpriced") is None and cache().misses == 0
    rng = random.Random(7)
    for _ in range(CACHE_NAMES + 500):
        book.get("claude-" + "".join(rng.choices(string.ascii_lowercase, k=30)))
    assert cache().currsize == CACHE_NAMES
    assert book.get("claude-" + "x" * 200) is None and cache().currsize == CACHE_NAMES
