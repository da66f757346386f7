"""Reading a passed-through embeddings answer without walking its vectors: OpenAI writes `model` and
`usage` after `data`, and the vectors hold only numbers or base64 (no quote, no key), so the last
`"usage"` and `"model"` keys are found from the end and only the tail is decoded or rewritten. A body
of another order still reads right (the tail is then most of it); one that is not JSON is Unreadable."""

from __future__ import annotations

import msgspec

from polyrelay import ir
from polyrelay.protocols._passthrough import Unreadable, decode_answer, model_field, rename_first
from polyrelay.protocols.openai_chat.wire import Usage, usage_to_ir

_USAGE_KEY = b'"usage"'
_MODEL_KEY = b'"model"'
_MODEL_FIELD = model_field(b"model")


class _UsageHolder(msgspec.Struct):
    usage: Usage | None = None


def usage_of(body: bytes) -> ir.Usage | None:
    """The answer's usage, None when it reports none; Unreadable when it is not a JSON object."""
    at = body.rfind(_USAGE_KEY)
    if at > 0:
        try:
            holder = msgspec.json.decode(b"{" + body[at:], type=_UsageHolder)
            return usage_to_ir(holder.usage) if holder.usage else None
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass   # not where OpenAI puts it: read the whole answer
    whole = decode_answer(body, _UsageHolder)
    return usage_to_ir(whole.usage) if whole and whole.usage else None


def rename_model(body: bytes, model_json: bytes) -> bytes:
    at = body.rfind(_MODEL_KEY)
    if at == -1:
        return body
    return body[:at] + rename_first(_MODEL_FIELD, body[at:], b"model", model_json)


__all__ = ["Unreadable", "rename_model", "usage_of"]
