"""Process-wide state of a running gateway: the catalog (channels, routing, prices), ledger, key
cache, HTTP clients."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from polyrelay import logs
from polyrelay.billing.journal import journal_dir_for
from polyrelay.billing.ledger import Ledger
from polyrelay.billing.prices import Price
from polyrelay.catalog import Catalog, Snapshot
from polyrelay.channels import Channel
from polyrelay.config import Config, ConfigError, load_config
from polyrelay.errors import GatewayError
from polyrelay.relay.auth import KeyCache
from polyrelay.relay.response_store import ResponseStore
from polyrelay.routing.patterns import allowlist_permits, is_pattern
from polyrelay.routing.router import Router
from polyrelay.store.keys import KeyRecord, upsert_config_keys
from polyrelay.upstream.client import UpstreamClient

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("polyrelay.gateway")


@dataclass(frozen=True, slots=True)
class Reloaded:
    """What a reload of the config file now serves."""

    path: str
    channels: int
    models: int
    prices: int
    keys: int

    def __str__(self) -> str:
        return (f"{self.path}: {self.channels} channels, {self.models} models, {self.prices} prices, "
                f"{self.keys} keys from config")


class Gateway:
    def __init__(self, config: Config, engine: AsyncEngine, config_path: str | None = None) -> None:
        self.config = config
        self.config_path = config_path   # the file the gateway was started with (None: built in, e.g. the demo)
        self._reloading = asyncio.Lock()
        self.engine = engine
        self.catalog = Catalog(config)
        # every log line is scrubbed of every secret the config knows (logs.SafeFormatter)
        logs.set_secrets(self.catalog.secrets())
        self._warn_unpriced()
        self.ledger = Ledger(engine, journal_dir=journal_dir_for(engine.url.render_as_string(hide_password=True)))
        self.keys = KeyCache(engine)
        self.responses = ResponseStore(engine, config.responses)
        self.http = UpstreamClient()
        self._media_session: aiohttp.ClientSession | None = None

    def _warn_unpriced(self) -> None:
        how = ("served free, as the config's 'unpriced: free' says" if self.catalog.unpriced_free
               else "refused until priced in 'prices:'")
        names = [m for m in self.catalog.unpriced if not is_pattern(m)]
        patterns = [m for m in self.catalog.unpriced if is_pattern(m)]
        if names:
            log.warning("served models without a price (%s): %s", how, ", ".join(names))
        if patterns:
            log.warning("channel patterns no price pattern covers: names they match without a price of their own, "
                        "or of their base model, are %s: %s", how.partition(",")[0], ", ".join(patterns))

    def reload(self, config: Config) -> None:
        """Serve `config`'s channels, prices and keys from now on (requests under way finish with
        what they started with). The old secrets stay scrubbed: their requests may still log."""
        old = self.catalog.secrets()
        self.catalog.reload(config)
        self.config = config
        self.responses.settings = config.responses
        logs.set_secrets([*old, *self.catalog.secrets()])
        self._warn_unpriced()

    async def reload_file(self) -> Reloaded:
        """Re-read the config file the gateway was started with, validate it fully, write its keys to
        the store (as a start does: new ones created, changed ones updated, removed ones disabled) and
        swap the catalog. A file that does not validate raises ConfigError and changes nothing; a
        store failure leaves the keys and the catalog as they were (one transaction, swap after)."""
        if self.config_path is None:
            raise ConfigError("this gateway was not started from a config file, so there is none to reload")
        async with self._reloading:   # a SIGHUP and an admin call at once: one after the other
            config = load_config(self.config_path)
            await upsert_config_keys(self.engine, config.keys)
            self.reload(config)
            self.keys.invalidate()   # a key the file disabled or changed stops at once
        now = self.catalog.now
        done = Reloaded(self.config_path, len(now.channels), len(now.router.models()), len(now.prices.prices),
                        len(now.keys))
        log.info("config reloaded from %s", done)
        return done

    # what the request path reads, always from the current catalog
    @property
    def channels(self) -> tuple[Channel, ...]:
        return self.catalog.channels

    @property
    def router(self) -> Router:
        return self.catalog.router

    @property
    def prices(self) -> dict[str, Price]:
        return self.catalog.prices

    @property
    def unpriced(self) -> tuple[str, ...]:
        return self.catalog.unpriced

    @property
    def media_http(self) -> aiohttp.ClientSession:
        """The client that fetches media URLs for upstreams that need bytes (redirects, any origin)."""
        if self._media_session is None:  # created lazily: it must belong to the running event loop
            import aiohttp  # only gateways that inline media load it

            self._media_session = aiohttp.ClientSession(skip_auto_headers=("User-Agent",))
        return self._media_session

    async def start(self) -> None:
        await self.ledger.start()
        self.responses.start()

    async def stop(self) -> None:
        await self.ledger.stop()
        await self.responses.stop()
        await self.http.close()
        if self._media_session is not None:
            await self._media_session.close()
            self._media_session = None

    def models_for(self, key: KeyRecord) -> list[str]:
        """The public models `key` may use: some channel serves them and they can be billed (an
        unpriced model is refused, so it is not listed, unless the config serves it free). Exact
        names only: a channel pattern stands for names nobody can enumerate."""
        catalog = self.catalog
        models = catalog.router.models()
        if catalog.unpriced and not catalog.unpriced_free:
            models = [m for m in models if m in catalog.prices]
        return [m for m in models if allowlist_permits(key.models, m)] if key.models else models

    def may_use(self, key: KeyRecord, model: str) -> bool:
        """Whether `key` can use `model` (listed or matched by a channel pattern): `GET /v1/models/{id}`."""
        catalog = self.catalog
        return (allowlist_permits(key.models, model) and catalog.router.serves(model)
                and (catalog.unpriced_free or catalog.price(model) is not None))

    def channel_type(self, model: str) -> str:
        """The kind of the first channel serving `model` (for `owned_by` in model lists)."""
        for channel in self.router.candidates(model, "generate")[:1]:
            return channel.config.type
        return "openai"

    def price_of(self, model: str, catalog: Snapshot | None = None) -> Price | None:
        """The price of a served model; an unpriced one is refused unless the config serves it free."""
        catalog = catalog or self.catalog.now
        price = catalog.prices.get(model)   # an exact name: one dict look-up; else the name's pattern
        if price is None and not catalog.unpriced_free:
            raise GatewayError(403, "permission", f"model '{model}' has no price on this gateway, so it cannot "
                               "be billed; the operator must add it to 'prices:' (or set 'unpriced: free')",
                               param="model", code="model_not_priced")
        return price

    def authorize_model(self, key: KeyRecord, model: str, catalog: Snapshot | None = None) -> None:
        if key.models and not allowlist_permits(key.models, model):
            raise GatewayError(403, "permission", f"this key may not use model '{model}'", param="model")
        if not (catalog or self.catalog.now).router.serves(model):
            raise GatewayError(404, "not_found", f"model '{model}' is not served by this gateway",
                               param="model", code="model_not_found")
