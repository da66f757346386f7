"""Offline token estimation (no network, no downloaded tables).

Used where the upstream reports no usage (a cut stream, a client disconnect) and for local
count_tokens. Counts are estimates; log rows mark them as such.
"""

from __future__ import annotations


def estimate_text_tokens(text: str) -> int:
    """Roughly 4 characters per token for Latin text, 1 per CJK character; never 0 for non-empty."""
    if not text:
        return 0
    wide = sum(1 for ch in text if ord(ch) > 0x2E80)
    return max(1, wide + (len(text) - wide + 3) // 4)


_IMAGE_TOKENS = 1000     # a typical high-detail image
_MESSAGE_OVERHEAD = 4


def estimate_request_tokens(req: "ir.Request") -> int:
    """Input tokens of a request, estimated offline (count_tokens where no upstream can count)."""
    from polyrelay import ir  # local: tokens is imported by ir-free modules too

    total = sum(estimate_text_tokens(p.text) for p in req.system)
    for m in req.messages:
        total += _MESSAGE_OVERHEAD
        for p in m.parts:
            if isinstance(p, (ir.TextPart, ir.ThinkingPart)):
                total += estimate_text_tokens(p.text)
            elif isinstance(p, ir.MediaPart):
                total += _IMAGE_TOKENS
            elif isinstance(p, ir.ToolCallPart):
                total += estimate_text_tokens(p.name + p.arguments)
            elif isinstance(p, ir.ToolResultPart):
                total += sum(estimate_text_tokens(c.text) if isinstance(c, ir.TextPart) else _IMAGE_TOKENS
                             for c in p.content)
    for t in req.tools:
        total += estimate_text_tokens(t.name + (t.description or "") + str(t.parameters or ""))
    return total
