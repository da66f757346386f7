"""Process-wide state of a running gateway: the catalog (channels, routing, prices), ledger, key
cache, HTTP clients."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from polyrelay import logs
from polyrelay.billing.journal import journal_dir_for
from polyrelay.billing.ledger import Ledger
from polyrelay.billing.prices import Price
from polyrelay.catalog import Catalog
from polyrelay.channels import Channel
from polyrelay.config import Config
from polyrelay.errors import GatewayError
from polyrelay.relay.auth import KeyCache
from polyrelay.relay.response_store import ResponseStore
from polyrelay.routing.router import Router
from polyrelay.store.keys import KeyRecord
from polyrelay.upstream.client import UpstreamClient

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("polyrelay.gateway")


class Gateway:
    def __init__(self, config: Config, engine: AsyncEngine) -> None:
        self.config = config
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
        if self.catalog.unpriced:
            log.warning("served models without a price (%s): %s", "served free, as the config's 'unpriced: free' "
                        "says" if self.catalog.unpriced_free else "refused until priced in 'prices:'",
                        ", ".join(self.catalog.unpriced))

    def reload(self, config: Config) -> None:
        """Serve `config`'s channels, prices and keys from now on (requests under way finish with
        what they started with). The old secrets stay scrubbed: their requests may still log."""
        old = self.catalog.secrets()
        self.catalog.reload(config)
        self.config = config
        self.responses.settings = config.responses
        logs.set_secrets([*old, *self.catalog.secrets()])
        self._warn_unpriced()

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
        unpriced model is refused, so it is not listed, unless the config serves it free)."""
        catalog = self.catalog
        models = catalog.router.models()
        if catalog.unpriced and not catalog.unpriced_free:
            models = [m for m in models if m in catalog.prices]
        return [m for m in models if m in key.models] if key.models else models

    def channel_type(self, model: str) -> str:
        """The kind of the first channel serving `model` (for `owned_by` in model lists)."""
        for channel in self.router.candidates(model)[:1]:
            return channel.config.type
        return "openai"

    def price_of(self, model: str) -> Price | None:
        """The price of a served model; an unpriced one is refused unless the config serves it free."""
        catalog = self.catalog
        price = catalog.prices.get(model)
        if price is None and not catalog.unpriced_free:
            raise GatewayError(403, "permission", f"model '{model}' has no price on this gateway, so it cannot "
                               "be billed; the operator must add it to 'prices:' (or set 'unpriced: free')",
                               param="model", code="model_not_priced")
        return price

    def authorize_model(self, key: KeyRecord, model: str) -> None:
        if key.models and model not in key.models:
            raise GatewayError(403, "permission", f"this key may not use model '{model}'", param="model")
        if not self.router.serves(model):
            raise GatewayError(404, "not_found", f"model '{model}' is not served by this gateway",
                               param="model", code="model_not_found")
