"""Upstream channel kinds."""

from __future__ import annotations

from polyrelay.channels.anthropic import AnthropicKind
from polyrelay.channels.base import Channel, ChannelKind
from polyrelay.channels.gemini import GeminiKind
from polyrelay.channels.openai import OpenAIKind
from polyrelay.config import ChannelConfig

KINDS: dict[str, ChannelKind] = {
    "openai": OpenAIKind(),
    "anthropic": AnthropicKind(),
    "gemini": GeminiKind(),
}


def build_channel(config: ChannelConfig) -> Channel:
    return Channel(config, KINDS[config.type])


__all__ = ["Channel", "ChannelKind", "KINDS", "build_channel"]
