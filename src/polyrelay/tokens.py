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
