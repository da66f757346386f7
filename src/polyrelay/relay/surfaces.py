"""The client protocols the gateway serves: each surface is a wire protocol from the registry."""

from __future__ import annotations

from polyrelay.protocols.registry import PROTOCOLS, WireProtocol


class Surface:
    def __init__(self, protocol: WireProtocol) -> None:
        self.name = protocol.NAME       # == the protocol name channels speak
        self.protocol = protocol        # conversions, streams, errors and the fast path (protocols/<name>/)


OPENAI_CHAT = Surface(PROTOCOLS["openai_chat"])
ANTHROPIC_MESSAGES = Surface(PROTOCOLS["anthropic_messages"])
GEMINI = Surface(PROTOCOLS["gemini"])
OPENAI_RESPONSES = Surface(PROTOCOLS["openai_responses"])
