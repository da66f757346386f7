"""Prices in integer micro-dollars per 1M tokens, and the cost of a usage record."""

from __future__ import annotations

import functools

import msgspec

from polyrelay import ir
from polyrelay.config import ChannelConfig, PriceConfig
from polyrelay.routing.patterns import CACHE_NAMES, MAX_MODEL_CHARS, PatternTable, covers, is_pattern

THINKING_SUFFIX = "-thinking"   # "<model>-thinking": the same model with thinking on


class Price(msgspec.Struct, frozen=True):
    input: int          # micro-dollars per 1M tokens (= pico-dollars per token)
    output: int
    cached_input: int
    cache_write: int
    max_output: int     # output tokens to reserve for when a request sets no limit
    per_second: int = 0  # micro-dollars per second of video; 0: not priced for video
    # micro-dollars per generated image, by "<size>", "<quality>", "<size>/<quality>" or "*"
    # (billing/images.py has the look-up rule); None: images are billed per token only
    per_image: dict[str, int] | None = None
    per_search: int = 0  # micro-dollars per web search


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
            per_second=0 if p.per_second is None else _micros(p.per_second),
            per_image=_per_image(p.per_image),
            per_search=_micros(p.per_search),
        )
    return table


def _per_image(usd: float | dict[str, float] | None) -> dict[str, int] | None:
    if usd is None:
        return None
    if isinstance(usd, dict):
        return {name: _micros(value) for name, value in usd.items()}
    return {"*": _micros(usd)}


def _dearest(prices: list[Price]) -> Price | None:
    """The reservation must cover whichever channel answers: of several candidates, the dearest."""
    return max(prices, key=lambda p: (p.output, p.input, p.cache_write, p.cached_input, p.per_second, p.per_search,
                                      max(p.per_image.values()) if p.per_image else 0), default=None)


class PriceBook:
    """The price of every public name a request may bring (docs/billing.md, "Price precedence").

    A name's price is, first to last: its own exact entry in `prices`; the exact price of what it
    stands for (a channel's `model_map` upstream name, `<model>` for `<model>-thinking`); the most
    specific price pattern matching the name; the most specific price pattern matching what it stands
    for. Where channels map one name to differently priced models, the dearest at the first level
    that prices it. Nothing: unpriced.

    Names some channel lists exactly are resolved here, once, into `prices` (a dict: the request
    path's lookup). A name served only through a channel pattern maps to nothing (model_map keys are
    exact names), so only its `-thinking` base stands behind it; it is resolved on first use and
    remembered in a bounded LRU (routing/patterns.CACHE_NAMES names).
    """

    __slots__ = ("prices", "unpriced", "_table", "_patterns", "_settled", "_by_pattern")

    def __init__(self, table: dict[str, Price], channels: list[ChannelConfig]) -> None:
        self._table = {m: p for m, p in table.items() if not is_pattern(m)}
        self._patterns: PatternTable[Price] = PatternTable({m: p for m, p in table.items() if is_pattern(m)})
        served = [ch for ch in channels if ch.enabled]
        names = {m for ch in served for m in ch.models}
        exact = sorted(m for m in names if not is_pattern(m))
        self.prices = dict(self._table)
        unpriced: list[str] = []
        for public in exact:
            if public in self._table:
                continue
            price = self._inherited(public, {ch.model_map.get(public, public) for ch in served if public in ch.models})
            if price is None:
                unpriced.append(public)
            else:
                self.prices[public] = price
        # a channel pattern that some names it matches may reach without a price (the start-up warning)
        price_patterns = [m for m in table if is_pattern(m)]
        unpriced += sorted(m for m in names if is_pattern(m) and not any(covers(p, m) for p in price_patterns))
        self.unpriced = tuple(unpriced)
        self._settled = frozenset(exact)   # their entry in `prices` (or its absence) is final
        self._by_pattern = functools.lru_cache(maxsize=CACHE_NAMES)(self._pattern_served)

    def get(self, model: str) -> Price | None:
        price = self.prices.get(model)
        if price is not None or model in self._settled or len(model) > MAX_MODEL_CHARS:
            return price   # a longer name is served by no pattern, and is not kept in the cache
        return self._by_pattern(model)

    def _pattern_served(self, model: str) -> Price | None:
        return self._inherited(model, {model})

    def _inherited(self, public: str, behind: set[str]) -> Price | None:
        behind = behind | {m.removesuffix(THINKING_SUFFIX) for m in behind if m.endswith(THINKING_SUFFIX)}
        price = _dearest([self._table[m] for m in behind if m in self._table])
        if price is None:
            price = self._patterns.lookup(public)
        if price is None:
            price = _dearest([p for p in map(self._patterns.lookup, behind) if p is not None])
        return price


MAX_USAGE_TOKENS = 1_000_000_000   # per count: far above any answer, and inside a 32-bit log column
_COUNTS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
           "web_searches")


def bounded_usage(usage: ir.Usage) -> ir.Usage:
    """`usage` with every count in [0, MAX_USAGE_TOKENS]: an upstream's negative count must never turn
    into a credit, nor an absurd one into a number the database cannot store."""
    top = MAX_USAGE_TOKENS   # spelled out, not a generator over _COUNTS: this runs per request
    if (0 <= usage.input_tokens <= top and 0 <= usage.output_tokens <= top and 0 <= usage.cache_read_tokens <= top
            and 0 <= usage.cache_write_tokens <= top and 0 <= usage.reasoning_tokens <= top
            and 0 <= usage.web_searches <= top):
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
    return (pico + 500_000) // 1_000_000 + usage.web_searches * price.per_search


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
