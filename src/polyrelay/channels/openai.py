"""OpenAI and OpenAI-compatible upstreams: base_url as the openai SDK takes it (…/v1)."""

from __future__ import annotations

from typing import ClassVar

from polyrelay.channels.base import Capabilities, Operation, PlainKind, UnsupportedOperation


class OpenAIKind(PlainKind):
    protocol = "openai_chat"
    # thinking: OpenAI-compatible relays differ (reasoning_effort, reasoning_content); not assumed
    # completions: the legacy endpoint for the models the channel's `completions` lists, chat (by
    # conversion) for the others; no token-count endpoint: count_tokens is estimated; a video job is
    # `<videos url>/<upstream id>` (relay/videos.py)
    _PATHS: ClassVar[dict[Operation, str]] = {"generate": "/chat/completions", "completions": "/completions",
                                        "embeddings": "/embeddings", "images": "/images/generations",
                                        "image_edits": "/images/edits", "videos": "/videos"}
    capabilities = Capabilities(json_schema=True, operations=frozenset(_PATHS))
    native_completions = True

    def url(self, base_url: str, operation: Operation, upstream_model: str, stream: bool) -> str:
        path = self._PATHS.get(operation)
        if path is None:
            raise UnsupportedOperation(operation)
        return base_url + path

    def headers(self, api_key: str) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return headers


class OpenAIResponsesKind(OpenAIKind):
    """An OpenAI upstream that has the Responses API (`api: responses`): Responses clients take the
    fast path to it, every other client is converted to Responses."""

    protocol = "openai_responses"
    _PATHS: ClassVar[dict[Operation, str]] = {**OpenAIKind._PATHS, "generate": "/responses",
                                              "count_tokens": "/responses/input_tokens"}
    capabilities = Capabilities(json_schema=True, thinking=True, operations=frozenset(_PATHS))
