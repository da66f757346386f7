"""Gemini upstreams: base_url like https://generativelanguage.googleapis.com (v1beta methods)."""

from __future__ import annotations


class GeminiKind:
    protocol = "gemini"

    def url(self, base_url: str, upstream_model: str, stream: bool) -> str:
        if stream:
            return f"{base_url}/v1beta/models/{upstream_model}:streamGenerateContent?alt=sse"
        return f"{base_url}/v1beta/models/{upstream_model}:generateContent"

    def headers(self, api_key: str) -> dict[str, str]:
        return {"Content-Type": "application/json", "x-goog-api-key": api_key}
