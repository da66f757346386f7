"""What the gateway serves and at what price: channels (and the router over them), prices, and the
keys the config declares. Read through one object so that it can be replaced whole: `reload(config)`
builds the new state first and swaps it in with one assignment, so a request sees the old catalog
or the new one, never a mix (a request that already took the router keeps it to its end).
Built from the YAML config at start today; the control plane and multi-node work will write it."""

from __future__ import annotations

from dataclasses import dataclass

from polyrelay.billing.prices import Price, PriceBook, price_table
from polyrelay.channels import Channel, build_channel
from polyrelay.config import Config, KeyConfig
from polyrelay.routing.router import Router


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one request reads from start to end (`Catalog.now`): a reload meanwhile changes nothing
    it sees."""

    channels: tuple[Channel, ...]
    router: Router
    prices: PriceBook
    unpriced_free: bool           # served free (else refused until priced)
    keys: tuple[KeyConfig, ...]


def _snapshot(config: Config) -> Snapshot:
    channels = [build_channel(c) for c in config.channels]
    prices = PriceBook(price_table(config.prices), config.channels)
    return Snapshot(tuple(channels), Router(channels), prices, config.unpriced == "free", tuple(config.keys))


class Catalog:
    __slots__ = ("_now",)

    def __init__(self, config: Config) -> None:
        self._now = _snapshot(config)

    def reload(self, config: Config) -> None:
        """Replace channels, routing (circuit-breaker state starts afresh), prices and config keys."""
        self._now = _snapshot(config)

    @property
    def now(self) -> Snapshot:
        return self._now

    @property
    def channels(self) -> tuple[Channel, ...]:
        return self._now.channels

    @property
    def router(self) -> Router:
        return self._now.router

    @property
    def prices(self) -> dict[str, Price]:
        """The prices of exact names (the config's, and those of every exact name served)."""
        return self._now.prices.prices

    def price(self, model: str) -> Price | None:
        """The price of a served model, exact or matched by a pattern (billing/prices.PriceBook)."""
        return self._now.prices.get(model)

    @property
    def unpriced(self) -> tuple[str, ...]:
        """Served exact names without a price, and channel patterns some of whose names have none."""
        return self._now.prices.unpriced

    @property
    def unpriced_free(self) -> bool:
        return self._now.unpriced_free

    @property
    def keys(self) -> tuple[KeyConfig, ...]:
        return self._now.keys

    def secrets(self) -> list[str]:
        """Every secret the catalog knows (channel keys, proxy credentials, gateway keys): scrubbed
        from every log line."""
        now = self._now
        return [*(s for ch in now.channels for s in ch.secrets), *(k.key for k in now.keys)]
