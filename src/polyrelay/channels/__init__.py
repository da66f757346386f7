"""Upstream channel kinds: a kind's name appears in its module and in the one line of KINDS."""

from __future__ import annotations

from polyrelay.channels.anthropic import AnthropicKind
from polyrelay.channels.base import (
    Capabilities,
    Channel,
    ChannelKind,
    Framing,
    Operation,
    UnsupportedOperation,
    UpstreamRequest,
)
from polyrelay.channels.gemini import GeminiKind
from polyrelay.channels.openai import OpenAIKind, OpenAIResponsesKind
from polyrelay.config import ChannelConfig

KINDS: dict[str, type[ChannelKind]] = {"openai": OpenAIKind, "anthropic": AnthropicKind, "gemini": GeminiKind}
# a channel's `api` option picks another kind of the same type: (type, api) -> kind
API_KINDS: dict[tuple[str, str], type[ChannelKind]] = {("openai", "responses"): OpenAIResponsesKind}


def build_channel(config: ChannelConfig) -> Channel:
    return Channel(config, API_KINDS.get((config.type, config.api), KINDS[config.type])())


__all__ = ["KINDS", "Capabilities", "Channel", "ChannelKind", "Framing", "Operation", "UnsupportedOperation",
           "UpstreamRequest", "build_channel"]
