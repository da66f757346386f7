"""The client protocols the gateway serves, and the modules that know each one's wire format."""

from __future__ import annotations

import importlib
from types import ModuleType

from polyrelay.protocols import anthropic_messages_passthrough, gemini_passthrough, openai_chat_passthrough
from polyrelay.protocols.passthrough import SseTap


class Surface:
    def __init__(self, name: str, passthrough: ModuleType, tap: type[SseTap]) -> None:
        self.name = name                # == the protocol name channels speak
        self.passthrough = passthrough  # fast-path helpers: upstream_body, usage_of, rename_model
        self.tap = tap                  # fast-path stream tap
        self._protocol: ModuleType | None = None

    @property
    def protocol(self) -> ModuleType:
        """The conversion module (parse/render requests, responses, streams, errors)."""
        if self._protocol is None:
            self._protocol = protocol_module(self.name)
        return self._protocol


def protocol_module(name: str) -> ModuleType:
    return importlib.import_module(f"polyrelay.protocols.{name}")


OPENAI_CHAT = Surface("openai_chat", openai_chat_passthrough, openai_chat_passthrough.ChatStreamTap)
ANTHROPIC_MESSAGES = Surface("anthropic_messages", anthropic_messages_passthrough,
                             anthropic_messages_passthrough.MessagesStreamTap)
GEMINI = Surface("gemini", gemini_passthrough, gemini_passthrough.GeminiStreamTap)
