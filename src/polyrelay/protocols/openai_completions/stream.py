"""IR stream events as legacy completion chunks: `{"object": "text_completion", "choices": [{"text",
"index", "logprobs", "finish_reason"}]}` per text delta, the finish on its own chunk, the usage chunk
(empty choices) when the client asked for it (`stream_options.include_usage`), then `[DONE]`."""

from __future__ import annotations

import time
from typing import Any

from polyrelay import ids, ir
from polyrelay.errors import GatewayError
from polyrelay.protocols._sse import data_event
from polyrelay.protocols.openai_chat.errors import render_stream_error
from polyrelay.protocols.openai_chat.wire import usage_to_chat
from polyrelay.protocols.openai_completions.response import FINISH, choice


class StreamEncoder:
    def __init__(self, model: str, request: ir.Request, framing: str = "sse") -> None:
        self._model = model
        self._include_usage = request.include_usage
        self._id = ids.new_id("cmpl-")
        self._created = int(time.time())
        self._usage: ir.Usage | None = None
        self._failed = False

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return data_event({"id": self._id, "object": "text_completion", "created": self._created,
                           "model": self._model, "choices": choices, **extra})

    def encode(self, event: ir.StreamEvent) -> bytes:
        if isinstance(event, ir.TextDelta):
            return self._chunk([choice(event.choice, event.text, None)]) if event.text else b""
        if isinstance(event, ir.Finish):
            return self._chunk([choice(event.choice, "", FINISH.get(event.reason, "stop"))])
        if isinstance(event, ir.UsageEvent) or (isinstance(event, ir.StreamStart) and event.usage is not None):
            self._usage = event.usage
        elif isinstance(event, ir.StreamError):
            self._failed = True
            return render_stream_error(GatewayError(event.status, event.kind, event.message))  # type: ignore[arg-type]
        return b""   # thinking and tool calls are no part of a completion

    def close(self) -> bytes:
        if self._failed:
            return b""
        out = b""
        if self._include_usage and self._usage is not None:
            out = self._chunk([], usage=usage_to_chat(self._usage))
        return out + b"data: [DONE]\n\n"


__all__ = ["StreamEncoder"]
