"""OpenAI Chat wire details shared by the converter, the stream codec and the fast path: finish maps, usage."""

from __future__ import annotations

from typing import Any

from polyrelay import ir

FINISH_FROM_CHAT: dict[str, ir.FinishReason] = {
    "stop": "stop", "length": "length", "tool_calls": "tool_calls", "function_call": "tool_calls",
    "content_filter": "content_filter"}




def usage_from_chat(u: dict[str, Any] | None) -> ir.Usage:
    if not isinstance(u, dict):
        return ir.Usage()
    p, c = u.get("prompt_tokens_details") or {}, u.get("completion_tokens_details") or {}
    return ir.Usage(input_tokens=int(u.get("prompt_tokens") or 0), output_tokens=int(u.get("completion_tokens") or 0),
                    cache_read_tokens=int(p.get("cached_tokens") or 0),
                    cache_write_tokens=int(p.get("cache_write_tokens") or 0),
                    reasoning_tokens=int(c.get("reasoning_tokens") or 0))


def usage_to_chat(u: ir.Usage) -> dict[str, Any]:
    prompt_details: dict[str, int] = {"cached_tokens": u.cache_read_tokens}
    if u.cache_write_tokens:
        prompt_details["cache_write_tokens"] = u.cache_write_tokens
    return {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
            "total_tokens": u.input_tokens + u.output_tokens, "prompt_tokens_details": prompt_details,
            "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens}}
