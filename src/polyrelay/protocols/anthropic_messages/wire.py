"""Anthropic Messages wire details shared by the converter, the stream codec and the fast path: finish maps, usage."""

from __future__ import annotations

from typing import Any

import msgspec

from polyrelay import ir

FINISH_FROM: dict[str, ir.FinishReason] = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
    "model_context_window_exceeded": "length", "tool_use": "tool_calls", "refusal": "content_filter"}
FINISH_TO = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}


class ServerToolUse(msgspec.Struct):
    web_search_requests: int | None = None


class Usage(msgspec.Struct):
    """Anthropic's usage object; a field absent (or null) says nothing new."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    server_tool_use: ServerToolUse | None = None


def merge_usage(into: ir.Usage | None, u: Usage) -> ir.Usage:
    """The one usage rule (converter, stream decoder and fast path): Anthropic usage is cumulative,
    fields present overwrite, and input_tokens excludes the cache reads and writes the IR counts in."""
    prev = into or ir.Usage()
    prev_plain = prev.input_tokens - prev.cache_read_tokens - prev.cache_write_tokens
    plain = u.input_tokens if u.input_tokens is not None else prev_plain
    read = u.cache_read_input_tokens if u.cache_read_input_tokens is not None else prev.cache_read_tokens
    write = u.cache_creation_input_tokens if u.cache_creation_input_tokens is not None else prev.cache_write_tokens
    out = u.output_tokens if u.output_tokens is not None else prev.output_tokens
    searches = u.server_tool_use.web_search_requests if u.server_tool_use else None
    return ir.Usage(input_tokens=plain + read + write, output_tokens=out, cache_read_tokens=read,
                    cache_write_tokens=write, web_searches=prev.web_searches if searches is None else searches)


def _count(value: Any) -> int | None:
    return None if value is None else int(value or 0)


def usage_fields(u: dict[str, Any] | None) -> Usage:
    """A usage object from an already-parsed body (the converter's and the stream decoder's view)."""
    u = u or {}
    server = u.get("server_tool_use")
    return Usage(_count(u.get("input_tokens")), _count(u.get("output_tokens")),
                 _count(u.get("cache_creation_input_tokens")), _count(u.get("cache_read_input_tokens")),
                 ServerToolUse(_count(server.get("web_search_requests"))) if isinstance(server, dict) else None)


def usage_from(u: dict[str, Any] | None, into: ir.Usage | None = None) -> ir.Usage:
    return merge_usage(into, usage_fields(u))


def usage_to(u: ir.Usage) -> dict[str, Any]:
    out: dict[str, Any] = {"input_tokens": max(0, u.input_tokens - u.cache_read_tokens - u.cache_write_tokens),
                           "output_tokens": u.output_tokens, "cache_creation_input_tokens": u.cache_write_tokens,
                           "cache_read_input_tokens": u.cache_read_tokens}
    if u.web_searches:
        out["server_tool_use"] = {"web_search_requests": u.web_searches}
    return out
