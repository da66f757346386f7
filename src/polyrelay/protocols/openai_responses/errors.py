"""OpenAI Responses errors: the HTTP envelope is Chat's; in a stream an `error` event."""

from __future__ import annotations

import msgspec

from polyrelay.errors import GatewayError
from polyrelay.protocols.openai_chat.errors import error_body, parse_error, render_error

__all__ = ["error_body", "error_event", "parse_error", "render_error", "render_stream_error"]


def error_event(err: GatewayError, sequence_number: int | None = None) -> dict[str, object]:
    body = msgspec.json.decode(error_body(err))["error"]
    event: dict[str, object] = {"type": "error", "code": body["code"] or body["type"], "message": err.message,
                                "param": err.param}
    if sequence_number is not None:
        event["sequence_number"] = sequence_number
    return event


def render_stream_error(err: GatewayError) -> bytes:
    """An `error` event (the relay's, after the upstream's own events: it cannot know their numbering)."""
    return b"event: error\ndata: " + msgspec.json.encode(error_event(err)) + b"\n\n"
