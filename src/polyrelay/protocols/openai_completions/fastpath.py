"""Legacy completions passed through to an OpenAI channel's /completions: the body with the model
renamed (and, where the relay set them, usage asked for in streams and the reservation's output
limit as `max_tokens`); the stream tapped like Chat's, reading the text from `text`."""

from __future__ import annotations

import msgspec

from polyrelay.protocols._passthrough import RequestPeek, field, quoted_lengths_all, text_markers, with_field
from polyrelay.protocols.openai_chat.fastpath import ChatStreamTap

_INCLUDE_USAGE = {"include_usage": True}


def upstream_body(peek: RequestPeek, upstream_model: str, force_usage: bool) -> bytes:
    top = with_field(peek.top, "model", upstream_model)
    if peek.upstream_max_output is not None:
        top = with_field(top, "max_tokens", peek.upstream_max_output)
    if peek.stream and force_usage and not peek.include_usage:
        options = field(top, "stream_options", dict, {})
        top = with_field(top, "stream_options", {**options, **_INCLUDE_USAGE})
    return msgspec.json.encode(top)


class CompletionStreamTap(ChatStreamTap):
    """Completion chunks (`choices[].text`) through: the same usage, finish and [DONE] as Chat's."""

    TEXT_MARKERS = text_markers(b"text")

    def _plain(self, block: bytes) -> bytes:
        if not block:
            return b""
        self.text_bytes += quoted_lengths_all(block, b'"text":"') + quoted_lengths_all(block, b'"text": "')
        return self._rename.everywhere(block)


__all__ = ["CompletionStreamTap", "upstream_body"]
