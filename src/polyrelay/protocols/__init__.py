"""The wire protocols: one package each (openai_chat/, anthropic_messages/, gemini/), looked up in
`protocols.registry.PROTOCOLS`. What the relay needs of the shared fast-path pieces is here, so
nothing outside protocols/ imports a private module."""

from __future__ import annotations

from polyrelay.protocols._passthrough import RequestPeek, SseTap, TapState, Unreadable
from polyrelay.protocols._sse import EventTooLarge, event_fields

__all__ = ["EventTooLarge", "RequestPeek", "SseTap", "TapState", "Unreadable", "event_fields"]
