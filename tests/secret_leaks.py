"""Finds any 8-character piece of a secret in a text, as sent or base64-encoded (as a Bearer header or
a basic-auth pair would carry it): the check of every no-secret-in-the-output test."""

from __future__ import annotations

import base64


def _pieces(secret: str) -> list[str]:
    return [secret[i:i + 8].lower() for i in range(len(secret) - 7)]


def leaks(text: str, secret: str) -> list[str]:
    low = text.lower()
    found = [p for p in _pieces(secret) if p in low]
    for raw in (secret, f"Bearer {secret}", f"x:{secret}"):
        encoded = base64.b64encode(raw.encode()).decode().lower()
        found += [p for p in _pieces(encoded) if p in low]
    return found
