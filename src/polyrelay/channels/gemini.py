"""Gemini upstreams: base_url like https://generativelanguage.googleapis.com (v1beta methods)."""

from __future__ import annotations

from polyrelay.channels.base import Capabilities, Operation, PlainKind, UnsupportedOperation


class GeminiKind(PlainKind):
    protocol = "gemini"
    capabilities = Capabilities(thinking=True, json_schema=True, operations=frozenset(
        {"generate", "count_tokens", "images", "image_edits", "completions", "embeddings"}))

    def url(self, base_url: str, operation: Operation, upstream_model: str, stream: bool) -> str:
        if operation in ("generate", "completions"):   # a legacy completion is converted to generateContent
            if stream:
                return f"{base_url}/v1beta/models/{upstream_model}:streamGenerateContent?alt=sse"
            return f"{base_url}/v1beta/models/{upstream_model}:generateContent"
        if operation in ("images", "image_edits"):   # image models answer generateContent
            return f"{base_url}/v1beta/models/{upstream_model}:generateContent"
        if operation == "count_tokens":
            return f"{base_url}/v1beta/models/{upstream_model}:countTokens"
        if operation == "embeddings":   # one or many inputs alike (relay/embeddings.py)
            return f"{base_url}/v1beta/models/{upstream_model}:batchEmbedContents"
        raise UnsupportedOperation(operation)

    def headers(self, api_key: str) -> dict[str, str]:
        return {"Content-Type": "application/json", "x-goog-api-key": api_key}
