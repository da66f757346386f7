"""What images cost: the `per_image` look-up, the reservation for n images and the settled cost.

A `per_image` table is keyed by "<size>" (e.g. "1024x1024"), "<quality>" (e.g. "high"),
"<size>/<quality>" and "*". One image of a known size S and quality Q costs the first entry present
of "S/Q", "S", "Q", "*"; with none of them, the dearest entry (an unlisted size is never free). A
size or quality that is not known ("auto", or not given) stands for every value the table names
(and for one it does not name): the image costs the dearest of those look-ups. A plain number is a
table with only "*".

An answer is billed per token when the upstream reports token usage for it (gpt-image's `usage`,
Gemini's `usageMetadata`) and the price has a token rate; otherwise per image returned, at the size
and quality the answer reports (else the request's)."""

from __future__ import annotations

from polyrelay import ir
from polyrelay.billing.prices import Price, cost_micros, max_cost_micros

UNKNOWN = ("", "auto")   # a size or quality that says nothing about what comes back


def _is_size(name: str) -> bool:
    width, x, height = name.partition("x")
    return bool(x) and width.isdigit() and height.isdigit()


def _one(table: dict[str, int], size: str | None, quality: str | None) -> int:
    """The price of an image of this size and quality (None: a value the table does not name)."""
    for name in (f"{size}/{quality}" if size and quality else None, size, quality, "*"):
        if name is not None and name in table:
            return table[name]
    return max(table.values())


def image_micros(table: dict[str, int], size: str | None, quality: str | None) -> int:
    """The price of one image (the rule in the module's docstring)."""
    size = None if size in UNKNOWN else size
    quality = None if quality in UNKNOWN else quality
    if size is not None and quality is not None:
        return _one(table, size, quality)
    parts = [name.split("/") for name in table if name != "*"]
    sizes: list[str | None] = [size] if size is not None else [None, *{
        p[0] for p in parts if _is_size(p[0])}]
    qualities: list[str | None] = [quality] if quality is not None else [None, *{
        p[-1] for p in parts if (len(p) == 2 or not _is_size(p[0]))}]
    return max(_one(table, s, q) for s in sizes for q in qualities)


def has_token_rate(price: Price) -> bool:
    return price.input > 0 or price.output > 0


def reserve_micros(price: Price | None, n: int, size: str | None, quality: str | None,
                   prompt_tokens: int) -> int:
    """The most `n` images may cost: n x the dearest applicable per-image price, or, where the
    price has token rates, the prompt plus `max_output` tokens per image if that is more."""
    if price is None:
        return 0
    each = image_micros(price.per_image, size, quality) if price.per_image else 0
    tokens = max_cost_micros(price, prompt_tokens, n * price.max_output) if has_token_rate(price) else 0
    return max(n * each, tokens)


def settled_micros(price: Price | None, images: int, size: str | None, quality: str | None,
                   usage: ir.Usage | None) -> int:
    """What an answer with `images` images costs (0 images: nothing, whatever the usage says)."""
    if price is None or images <= 0:
        return 0
    if usage is not None and has_token_rate(price) and (usage.input_tokens or usage.output_tokens):
        return cost_micros(price, usage)
    if price.per_image:
        return images * image_micros(price.per_image, size, quality)
    return cost_micros(price, usage) if usage is not None else 0


__all__ = ["has_token_rate", "image_micros", "reserve_micros", "settled_micros"]
