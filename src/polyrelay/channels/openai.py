"""OpenAI and OpenAI-compatible upstreams: base_url as the openai SDK takes it (…/v1)."""

from __future__ import annotations

from polyrelay.channels.base import Capabilities, Operation, PlainKind, UnsupportedOperation


_PATHS: dict[Operation, str] = {"generate": "/chat/completions", "completions": "/completions",
                                "embeddings": "/embeddings"}


class OpenAIKind(PlainKind):
    protocol = "openai_chat"
    # thinking: OpenAI-compatible relays differ (reasoning_effort, reasoning_content); not assumed
    # completions: the legacy endpoint for the models the channel's `completions` lists, chat (by
    # conversion) for the others; no token-count endpoint: count_tokens is estimated
    capabilities = Capabilities(json_schema=True, operations=frozenset(_PATHS))

    def url(self, base_url: str, operation: Operation, upstream_model: str, stream: bool) -> str:
        path = _PATHS.get(operation)
        if path is None:
            raise UnsupportedOperation(operation)
        return base_url + path

    def headers(self, api_key: str) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return headers
