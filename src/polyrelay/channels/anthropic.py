"""Anthropic upstreams: base_url as the anthropic SDK takes it (https://api.anthropic.com)."""

from __future__ import annotations

from polyrelay.channels.base import Capabilities, Operation, PlainKind, UnsupportedOperation

ANTHROPIC_VERSION = "2023-06-01"
# completions: a legacy completion is converted to a Messages request (relay/completions.py)
_PATHS: dict[Operation, str] = {"generate": "/v1/messages", "count_tokens": "/v1/messages/count_tokens",
                                "completions": "/v1/messages"}


class AnthropicKind(PlainKind):
    protocol = "anthropic_messages"
    capabilities = Capabilities(thinking=True, json_schema=True, operations=frozenset(_PATHS))

    def url(self, base_url: str, operation: Operation, upstream_model: str, stream: bool) -> str:
        path = _PATHS.get(operation)
        if path is None:
            raise UnsupportedOperation(operation)
        return base_url + path

    def headers(self, api_key: str) -> dict[str, str]:
        return {"Content-Type": "application/json", "x-api-key": api_key,
                "anthropic-version": ANTHROPIC_VERSION}
