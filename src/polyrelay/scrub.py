"""Removing secrets from text that may reach a client or a log: upstream error bodies, log lines.

Exact matching is not enough: upstreams echo a key's tail (`...abcd1234`), lowercase it, or echo the
auth header they got base64-encoded. A `Scrubber` replaces every run of text made of 8+ character
pieces of a secret (case-insensitive), and of the base64 forms of the secret, `Bearer <secret>` and
`x:<secret>` (Basic auth), with `***`.

How it stays cheap on a 64 KB body: the text is lowercased once, runs of characters that occur in
some secret (8 or more long) are found by one regex, and each run is cut into 4-character grams at a
stride of 5 by another (both in C). Every 8-character piece of a secret contains one of those grams, so
a run none of whose grams is a gram of a secret holds no secret (one set test); only near a gram hit
are the 8-character pieces looked up. Figures: docs/reliability.md.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable

WINDOW = 8          # the shortest piece of a secret that is scrubbed
MASK = "***"


def secret_forms(secret: str) -> list[str]:
    """The secret and the encodings an upstream may echo it in."""
    forms = [secret]
    for raw in (secret, f"Bearer {secret}", f"x:{secret}"):
        encoded = base64.b64encode(raw.encode()).decode()
        forms += [encoded.rstrip("="), encoded.replace("+", "-").replace("/", "_").rstrip("=")]
    return forms


_GRAM, _STRIDE = 4, 5     # _STRIDE + _GRAM - 1 <= WINDOW: each window holds one aligned gram
_GRAMS_AT_STRIDE = re.compile(r"(.{4}).?", re.DOTALL)


class Scrubber:
    """Scrubs the given secrets (shorter than WINDOW characters: exact match only)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._windows: set[str] = set()
        self._short: list[str] = []
        for secret in {s for s in secrets if s}:
            if len(secret) < WINDOW:
                self._short.append(secret)
                continue
            for form in secret_forms(secret):
                low = form.lower()
                self._windows.update(low[i:i + WINDOW] for i in range(len(low) - WINDOW + 1))
        self._grams = {w[i:i + _GRAM] for w in self._windows for i in range(WINDOW - _GRAM + 1)}
        chars = "".join(sorted({c for w in self._windows for c in w}))
        self._runs = re.compile(f"[{re.escape(chars)}]{{{WINDOW},}}") if chars else None

    def __bool__(self) -> bool:
        return self._runs is not None or bool(self._short)

    def scrub(self, text: str) -> str:
        if self._runs is not None:
            text = self._scrub_windows(text, self._runs)
        for secret in self._short:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def _scrub_windows(self, text: str, runs: re.Pattern[str]) -> str:
        low = text.lower()
        if len(low) != len(text):   # a few characters lowercase to two (İ): keep positions aligned
            low = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
        grams, windows = self._grams, self._windows
        spans: list[tuple[int, int]] = []
        for run in runs.finditer(low):
            found = _GRAMS_AT_STRIDE.findall(run.group())
            if grams.isdisjoint(found):
                continue
            base = run.start()
            for n, gram in enumerate(found):
                if gram not in grams:
                    continue
                q = base + n * _STRIDE
                for start in range(max(base, q - (WINDOW - _GRAM)), q + 1):
                    if low[start:start + WINDOW] in windows:
                        if spans and start <= spans[-1][1]:
                            spans[-1] = (spans[-1][0], max(spans[-1][1], start + WINDOW))
                        else:
                            spans.append((start, start + WINDOW))
        if not spans:
            return text
        out: list[str] = []
        done = 0
        for start, end in spans:
            out += (text[done:start], MASK)
            done = end
        out.append(text[done:])
        return "".join(out)


def proxy_secrets(proxy: str | None) -> list[str]:
    """The password (and `user:password`, as Basic auth sends it) of an http://user:pw@host proxy URL."""
    if not proxy or "@" not in proxy:
        return []
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(proxy)
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    return [s for s in (password, f"{user}:{password}" if password else "") if s]
