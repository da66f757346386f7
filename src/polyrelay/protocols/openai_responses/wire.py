"""OpenAI Responses wire details shared by the converter, the stream codec and the fast path: the
status <-> finish reason maps and usage."""

from __future__ import annotations

from typing import Any

import msgspec

from polyrelay import ir

# incomplete_details.reason -> IR finish
FINISH_FROM_INCOMPLETE: dict[str, ir.FinishReason] = {
    "max_output_tokens": "length", "content_filter": "content_filter", "max_messages": "length"}
INCOMPLETE_REASON: dict[str, str] = {"length": "max_output_tokens", "content_filter": "content_filter"}


def status_of(reason: ir.FinishReason | None) -> tuple[str, dict[str, str] | None]:
    """(status, incomplete_details) of a Responses answer that ended for `reason`."""
    why = INCOMPLETE_REASON.get(reason or "stop")
    return ("incomplete", {"reason": why}) if why else ("completed", None)


def finish_of(status: Any, incomplete: Any, has_calls: bool) -> ir.FinishReason:
    """The IR finish of an answer: Responses has none, it is read from the status and the items."""
    if status == "incomplete":
        reason = incomplete.get("reason") if isinstance(incomplete, dict) else None
        return FINISH_FROM_INCOMPLETE.get(str(reason), "length")
    return "tool_calls" if has_calls else "stop"


class _InputDetails(msgspec.Struct):
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None


class _OutputDetails(msgspec.Struct):
    reasoning_tokens: int | None = None


class Usage(msgspec.Struct):
    """The Responses usage object (absent details count 0)."""

    input_tokens: int = 0
    output_tokens: int = 0
    input_tokens_details: _InputDetails | None = None
    output_tokens_details: _OutputDetails | None = None


def usage_rule(input_tokens: int, output_tokens: int, cached: int, cache_write: int, reasoning: int) -> ir.Usage:
    """The one usage rule (converter, stream decoder, fast path): `input_tokens` includes cached
    tokens and `output_tokens` reasoning ones, as in the IR."""
    return ir.Usage(input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cached,
                    cache_write_tokens=cache_write, reasoning_tokens=reasoning)


def usage_to_ir(u: Usage) -> ir.Usage:
    i, o = u.input_tokens_details, u.output_tokens_details
    return usage_rule(u.input_tokens, u.output_tokens, (i.cached_tokens or 0) if i else 0,
                      (i.cache_write_tokens or 0) if i else 0, (o.reasoning_tokens or 0) if o else 0)


def usage_from(u: Any) -> ir.Usage:
    """Usage from an already-decoded body (the converter's and the stream decoder's view)."""
    if not isinstance(u, dict):
        return ir.Usage()
    i, o = u.get("input_tokens_details") or {}, u.get("output_tokens_details") or {}
    return usage_rule(int(u.get("input_tokens") or 0), int(u.get("output_tokens") or 0),
                      int(i.get("cached_tokens") or 0), int(i.get("cache_write_tokens") or 0),
                      int(o.get("reasoning_tokens") or 0))


def usage_to(u: ir.Usage) -> dict[str, Any]:
    details: dict[str, int] = {"cached_tokens": u.cache_read_tokens}
    if u.cache_write_tokens:
        details["cache_write_tokens"] = u.cache_write_tokens
    return {"input_tokens": u.input_tokens, "input_tokens_details": details, "output_tokens": u.output_tokens,
            "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
            "total_tokens": u.input_tokens + u.output_tokens}
