"""Identifier generation for ids the gateway mints (response ids, synthesised tool-call ids)."""

from __future__ import annotations

import itertools
import os

_deterministic: itertools.count[int] | None = None


def new_id(prefix: str, length: int = 24) -> str:
    """`prefix` + `length` hex characters; random, or a counter after `use_deterministic_ids()`."""
    if _deterministic is not None:
        return f"{prefix}{next(_deterministic):0{length}x}"
    return prefix + os.urandom((length + 1) // 2).hex()[:length]


def use_deterministic_ids(start: int = 1) -> None:
    """Golden tests call this so minted ids are reproducible (0...01, 0...02, ...)."""
    global _deterministic
    _deterministic = itertools.count(start)


def use_random_ids() -> None:
    global _deterministic
    _deterministic = None
