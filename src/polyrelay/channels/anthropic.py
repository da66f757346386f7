"""Anthropic upstreams: base_url as the anthropic SDK takes it (https://api.anthropic.com)."""

from __future__ import annotations

ANTHROPIC_VERSION = "2023-06-01"


class AnthropicKind:
    protocol = "anthropic_messages"

    def url(self, base_url: str, upstream_model: str, stream: bool) -> str:
        return base_url + "/v1/messages"

    def headers(self, api_key: str) -> dict[str, str]:
        return {"Content-Type": "application/json", "x-api-key": api_key,
                "anthropic-version": ANTHROPIC_VERSION}
