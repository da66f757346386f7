"""Gemini wire details shared by the converter, the stream codec and the fast path: finish maps, usage."""

from __future__ import annotations

import base64
import re
from typing import Any

import msgspec

from polyrelay import ir
from polyrelay.protocols import signatures
from polyrelay.protocols._common import decode_base64, log

SKIP_SIGNATURE = "skip_thought_signature_validator"
FINISH_FROM: dict[str, ir.FinishReason] = {"STOP": "stop", "MAX_TOKENS": "length", "CONTINUATION": "length"}
FINISH_TO = {"stop": "STOP", "tool_calls": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY"}
_FILTERED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "LANGUAGE", "IMAGE_SAFETY",
             "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "IMAGE_OTHER", "NO_IMAGE"}
_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def get(d: Any, camel: str, default: Any = None) -> Any:
    """`d[camel]` or `d[snake_case(camel)]`: google-genai mixes both."""
    if not isinstance(d, dict):
        return default
    value = d.get(camel)
    if value is None:
        value = d.get(_SNAKE.sub("_", camel).lower())
    return default if value is None else value


def finish_from(reason: str | None, saw_calls: bool) -> ir.FinishReason:
    if reason in _FILTERED:
        return "content_filter"
    if reason and reason not in FINISH_FROM:
        log.warning("Gemini finishReason %s has no equivalent; reported as stop", reason)
    mapped = FINISH_FROM.get(reason or "STOP", "stop")
    return "tool_calls" if mapped == "stop" and saw_calls else mapped


# Anthropic redacted_thinking has no Gemini form: a Gemini client gets it as a thought part whose
# signature says so, and the flag comes back with it (else it would return as a plain thinking block).
_REDACTED = b"anthropic-redacted:"


def client_signature(signature: str, origin: str | None, redacted: bool = False) -> str:
    """A signature as a Gemini client gets it: always standard base64."""
    if redacted and origin == "anthropic":
        return base64.b64encode(_REDACTED + signature.encode()).decode()
    return signatures.to_gemini_client(signature, origin)


def _signature_from_client(value: str) -> tuple[str, str, bool]:
    """(signature, origin, redacted) of a thoughtSignature a Gemini client sent back (google-genai
    sends it URL-safe: compared as bytes)."""
    raw = decode_base64(value) or b""
    if raw.startswith(_REDACTED):
        return raw[len(_REDACTED):].decode("utf-8", "replace"), "anthropic", True
    return (*signatures.from_gemini_client(value), False)




class UsageMetadata(msgspec.Struct):
    """Gemini's usageMetadata (camelCase, as Gemini answers)."""

    promptTokenCount: int = 0
    candidatesTokenCount: int = 0
    thoughtsTokenCount: int = 0
    cachedContentTokenCount: int = 0
    toolUsePromptTokenCount: int = 0


def usage_rule(prompt: int, candidates: int, thoughts: int, cached: int, tool_use_prompt: int) -> ir.Usage:
    """The one usage rule, for the converter, the stream decoder and the fast path."""
    # thoughts are not part of candidatesTokenCount: add them, or reasoning goes unbilled
    return ir.Usage(input_tokens=prompt + tool_use_prompt, output_tokens=candidates + thoughts,
                    cache_read_tokens=cached, reasoning_tokens=thoughts)


def usage_to_ir(u: UsageMetadata) -> ir.Usage:
    return usage_rule(u.promptTokenCount, u.candidatesTokenCount, u.thoughtsTokenCount, u.cachedContentTokenCount,
                      u.toolUsePromptTokenCount)


def usage_from(u: Any) -> ir.Usage:
    """Usage from an already-parsed body (camelCase or snake_case), by the same rule."""
    if not isinstance(u, dict):
        return ir.Usage()
    return usage_rule(int(get(u, "promptTokenCount", 0)), int(get(u, "candidatesTokenCount", 0)),
                      int(get(u, "thoughtsTokenCount", 0)), int(get(u, "cachedContentTokenCount", 0)),
                      int(get(u, "toolUsePromptTokenCount", 0)))


def usage_to(u: ir.Usage) -> dict[str, int]:
    out = {"promptTokenCount": u.input_tokens, "candidatesTokenCount": u.output_tokens - u.reasoning_tokens,
           "totalTokenCount": u.input_tokens + u.output_tokens}
    if u.reasoning_tokens:
        out["thoughtsTokenCount"] = u.reasoning_tokens
    if u.cache_read_tokens:
        out["cachedContentTokenCount"] = u.cache_read_tokens
    return out
