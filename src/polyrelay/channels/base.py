"""A configured upstream channel at run time: where to send, with which key, speaking which protocol."""

from __future__ import annotations

import itertools
from typing import Protocol

from polyrelay.config import ChannelConfig
from polyrelay.scrub import Scrubber, proxy_secrets
from polyrelay.upstream.client import Timeouts


class ChannelKind(Protocol):
    """What one upstream kind knows: its wire protocol, its URLs and its auth headers."""

    protocol: str   # name of the module in polyrelay.protocols that this upstream speaks

    def url(self, base_url: str, upstream_model: str, stream: bool) -> str: ...
    def headers(self, api_key: str) -> dict[str, str]: ...


class Channel:
    def __init__(self, config: ChannelConfig, kind: ChannelKind) -> None:
        self.config = config
        self.name = config.name
        self.kind = kind
        self.protocol = kind.protocol
        self.base_url = config.base_url.rstrip("/")
        self.models = frozenset(config.models)
        self._keys = itertools.cycle(config.api_keys or [""])
        self.key_count = max(1, len(config.api_keys))
        self.secrets = (*(k for k in config.api_keys if k), *proxy_secrets(config.proxy))
        self._scrubber = Scrubber(self.secrets)
        self.timeouts = Timeouts(config.connect_timeout, config.first_byte_timeout, config.timeout)
        self.stream_timeouts = Timeouts(config.connect_timeout, config.first_byte_timeout, None)

    def upstream_model(self, public_model: str) -> str:
        return self.config.model_map.get(public_model, public_model)

    def next_key(self) -> str:
        """Round-robin over the channel's keys."""
        return next(self._keys)

    def url(self, upstream_model: str, stream: bool) -> str:
        return self.kind.url(self.base_url, upstream_model, stream)

    def headers(self, api_key: str) -> dict[str, str]:
        return self.kind.headers(api_key)

    def scrub(self, text: str) -> str:
        """Remove this channel's secrets (any 8+ character piece, any case, base64) from text that
        may reach a client or a log."""
        return self._scrubber.scrub(text)
