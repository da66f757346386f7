"""OpenAI Chat wire details shared by the converter, the stream codec and the fast path: finish maps, usage."""

from __future__ import annotations

from typing import Any

import msgspec

from polyrelay import ir

FINISH_FROM_CHAT: dict[str, ir.FinishReason] = {
    "stop": "stop", "length": "length", "tool_calls": "tool_calls", "function_call": "tool_calls",
    "content_filter": "content_filter"}




class _PromptDetails(msgspec.Struct):
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None


class _CompletionDetails(msgspec.Struct):
    reasoning_tokens: int | None = None


class Usage(msgspec.Struct):
    """OpenAI's usage object (absent details count 0)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: _PromptDetails | None = None
    completion_tokens_details: _CompletionDetails | None = None


def usage_rule(prompt: int, completion: int, cached: int, cache_write: int, reasoning: int) -> ir.Usage:
    """The one usage rule, for the converter, the stream decoder and the fast path."""
    return ir.Usage(input_tokens=prompt, output_tokens=completion, cache_read_tokens=cached,
                    cache_write_tokens=cache_write, reasoning_tokens=reasoning)


def usage_to_ir(u: Usage) -> ir.Usage:
    p, c = u.prompt_tokens_details, u.completion_tokens_details
    return usage_rule(u.prompt_tokens, u.completion_tokens, (p.cached_tokens or 0) if p else 0,
                      (p.cache_write_tokens or 0) if p else 0, (c.reasoning_tokens or 0) if c else 0)


def usage_from_chat(u: dict[str, Any] | None) -> ir.Usage:
    """Usage from an already-parsed body (the converter's and the stream decoder's view)."""
    if not isinstance(u, dict):
        return ir.Usage()
    p, c = u.get("prompt_tokens_details") or {}, u.get("completion_tokens_details") or {}
    return usage_rule(int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0),
                      int(p.get("cached_tokens") or 0), int(p.get("cache_write_tokens") or 0),
                      int(c.get("reasoning_tokens") or 0))


def usage_to_chat(u: ir.Usage) -> dict[str, Any]:
    prompt_details: dict[str, int] = {"cached_tokens": u.cache_read_tokens}
    if u.cache_write_tokens:
        prompt_details["cache_write_tokens"] = u.cache_write_tokens
    return {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
            "total_tokens": u.input_tokens + u.output_tokens, "prompt_tokens_details": prompt_details,
            "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens}}
