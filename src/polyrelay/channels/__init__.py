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
from polyrelay.channels.openai import OpenAIKind
from polyrelay.config import ChannelConfig

KINDS: dict[str, type[ChannelKind]] = {"openai": OpenAIKind, "anthropic": AnthropicKind, "gemini": GeminiKind}


def build_channel(config: ChannelConfig) -> Channel:
    return Channel(config, KINDS[config.type]())


__all__ = ["KINDS", "Capabilities", "Channel", "ChannelKind", "Framing", "Operation", "UnsupportedOperation",
           "UpstreamRequest", "build_channel"]
