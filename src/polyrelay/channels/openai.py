"""OpenAI and OpenAI-compatible upstreams: base_url as the openai SDK takes it (…/v1)."""

from __future__ import annotations


class OpenAIKind:
    protocol = "openai_chat"

    def url(self, base_url: str, upstream_model: str, stream: bool) -> str:
        return base_url + "/chat/completions"

    def headers(self, api_key: str) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return headers
