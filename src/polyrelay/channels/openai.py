"""OpenAI and OpenAI-compatible upstreams: base_url as the openai SDK takes it (…/v1)."""

from __future__ import annotations

from polyrelay.channels.base import Capabilities, Operation, PlainKind, UnsupportedOperation


_PATHS = {"generate": "/chat/completions", "images": "/images/generations", "image_edits": "/images/edits"}


class OpenAIKind(PlainKind):
    protocol = "openai_chat"
    # thinking: OpenAI-compatible relays differ (reasoning_effort, reasoning_content); not assumed
    capabilities = Capabilities(json_schema=True, operations=frozenset({"generate", "images", "image_edits"}))

    def url(self, base_url: str, operation: Operation, upstream_model: str, stream: bool) -> str:
        path = _PATHS.get(operation)
        if path is None:   # no token-count endpoint: count_tokens is estimated
            raise UnsupportedOperation(operation)
        return base_url + path

    def headers(self, api_key: str) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return headers
