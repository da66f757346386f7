"""A chat request served by a completion-only model (an OpenAI channel's `completions` list, e.g.
`gpt-3.5-turbo-instruct`), whose upstream has only `/completions`: the conversation rendered as one
prompt, the completion's text read back as the assistant's message (docs/conversion.md, "Chat for
completion-only models").

The prompt: a conversation of one user message and no system text is that text as it is; any other
conversation is each turn as `System: `, `User: ` or `Assistant: ` and its text, turns separated by
a blank line, ending with `Assistant:` for the model to continue. Tools, non-text content (images, audio,
files) and a `response_format` other than text (json_object, json_schema) are a 400 naming the
field: a completion model has none of them."""

from __future__ import annotations

from typing import Any

import msgspec

from polyrelay import ids, ir
from polyrelay.errors import invalid_request
from polyrelay.protocols._common import cannot_search, decode_json_object, dropped, render_with_losses
from polyrelay.protocols.openai_chat.errors import parse_error
from polyrelay.protocols.openai_chat.stream import StreamDecoder as ChatStreamDecoder
from polyrelay.protocols.openai_chat.wire import FINISH_FROM_CHAT, usage_from_chat

INLINE_MEDIA: frozenset[str] = frozenset()
THINKING_ALIAS = False
_ROLE = {"system": "System", "developer": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}
_WHY = "the model is a completion model, which has"


def _text(parts: list[ir.Part], param: str) -> str:
    out = []
    for part in parts:
        if isinstance(part, ir.TextPart):
            out.append(part.text)
        elif isinstance(part, (ir.ToolCallPart, ir.ToolResultPart)):
            raise invalid_request(f"tool calls cannot be honoured: {_WHY} no tools", param="tools")
        elif not isinstance(part, ir.ThinkingPart):   # earlier thinking is no part of a prompt
            raise invalid_request(f"'{param}' holds content other than text, which cannot be honoured: {_WHY} "
                                  "text input only", param=param)
    return "".join(out)


def prompt(req: ir.Request) -> str:
    """The conversation as one prompt (see the module's docstring), or a 400 for what it cannot carry."""
    if req.tools or req.tool_choice is not None:
        raise invalid_request(f"'tools' cannot be honoured: {_WHY} no tools", param="tools")
    if req.response_format is not None and req.response_format.type != "text":
        raise invalid_request(f"'response_format' {req.response_format.type} cannot be honoured: {_WHY} no "
                              "structured output", param="response_format")
    cannot_search(req, "completion model")
    system = _text(list(req.system), "system")
    turns = [(m.role, _text(m.parts, "messages")) for m in req.messages]
    if not system and len(turns) == 1 and turns[0][0] == "user":
        text = turns[0][1]
    else:
        lines = [f"System: {system}"] if system else []
        lines += [f"{_ROLE.get(role, role.capitalize())}: {text}" for role, text in turns]
        text = "\n\n".join([*lines, "Assistant:"])
    if not text:
        raise invalid_request("'messages' must hold some text for a completion model", param="messages")
    return text


@render_with_losses
def render_request(req: ir.Request, upstream_model: str) -> bytes:
    """The completion request. What changes the answer's content is refused (`prompt`); the settings a
    completion has no field for are dropped and reported (`x-polyrelay-dropped`), as any conversion's."""
    body: dict[str, Any] = {"model": upstream_model, "prompt": prompt(req)}
    for name, value in (("top_k", req.top_k), ("reasoning", req.reasoning), ("metadata", req.metadata)):
        if value is not None:
            dropped(name, "OpenAI's legacy completions")
    optional: dict[str, Any] = {
        "max_tokens": req.max_tokens, "temperature": req.temperature, "top_p": req.top_p, "seed": req.seed,
        "n": req.n, "frequency_penalty": req.frequency_penalty, "presence_penalty": req.presence_penalty,
        "user": req.user, "stop": req.stop or None}
    body.update((k, v) for k, v in optional.items() if v is not None)
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}   # the bill needs usage, whatever the client asked
    return msgspec.json.encode(body)


def tool_name(name: str) -> str:
    return name


def parse_response(data: bytes) -> ir.Response:
    """A `text_completion` as IR: each choice's text as the assistant's message."""
    b = decode_json_object(data, "upstream response")
    choices = [ir.Choice(int(c.get("index") or 0), [ir.TextPart(str(c.get("text") or ""))],
                         FINISH_FROM_CHAT.get(c.get("finish_reason") or "stop", "stop"))
               for c in b.get("choices") or [] if isinstance(c, dict)]
    return ir.Response(id=ids.new_id("chatcmpl-"), model=str(b.get("model") or ""), choices=choices,
                       usage=usage_from_chat(b.get("usage")), created=int(b.get("created") or 0))


class StreamDecoder(ChatStreamDecoder):
    """Completion chunks (`choices[].text`) as IR events: read as Chat's with the text as the delta."""

    def _choice(self, choice: dict[str, Any]) -> list[ir.StreamEvent]:
        text = choice.get("text")
        return super()._choice({"index": choice.get("index"), "finish_reason": choice.get("finish_reason"),
                                "delta": {"content": text} if isinstance(text, str) else {}})


__all__ = ["INLINE_MEDIA", "THINKING_ALIAS", "StreamDecoder", "parse_error", "parse_response", "prompt",
           "render_request", "tool_name"]
