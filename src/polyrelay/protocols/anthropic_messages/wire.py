"""Anthropic Messages wire details shared by the converter, the stream codec and the fast path: finish maps, usage."""

from __future__ import annotations

from typing import Any

from polyrelay import ir

FINISH_FROM: dict[str, ir.FinishReason] = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
    "model_context_window_exceeded": "length", "tool_use": "tool_calls", "refusal": "content_filter"}
FINISH_TO = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}




def usage_from(u: dict[str, Any] | None) -> ir.Usage:
    u = u or {}
    read, write = int(u.get("cache_read_input_tokens") or 0), int(u.get("cache_creation_input_tokens") or 0)
    return ir.Usage(input_tokens=int(u.get("input_tokens") or 0) + read + write,
                    output_tokens=int(u.get("output_tokens") or 0), cache_read_tokens=read, cache_write_tokens=write)


def usage_to(u: ir.Usage) -> dict[str, int]:
    return {"input_tokens": max(0, u.input_tokens - u.cache_read_tokens - u.cache_write_tokens),
            "output_tokens": u.output_tokens, "cache_creation_input_tokens": u.cache_write_tokens,
            "cache_read_input_tokens": u.cache_read_tokens}
