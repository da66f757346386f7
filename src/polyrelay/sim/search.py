"""What the simulated upstreams find when they search the web: one query (from the user's text), two
results, and an answer whose first two sentences cite them. The cited text is multi-byte on purpose
(accents, a euro sign, CJK, an emoji outside the BMP): byte, UTF-16 and character offsets all differ.

A simulated model searches when the request offers the provider's search tool and either forces it
(Anthropic and OpenAI tool_choice) or says `[[sim:search]]`."""

from __future__ import annotations

import re

import msgspec


class Result(msgspec.Struct, frozen=True):
    url: str
    title: str


RESULTS = (Result("https://example.org/zurich/cafe", "Café prices in Zürich"),
           Result("https://example.jp/tokyo", "東京 travel guide"))
# (text, index of the result it cites or -1): concatenated they are the answer
SEGMENTS = (("Un café à Zürich coûte 5 € ☕. ", 0), ("東京は大きい都市です 🗼. ", 1),
            ("That is what the web says.", -1))
ANSWER = "".join(text for text, _ in SEGMENTS)

_DIRECTIVES = re.compile(r"\[\[sim:[^\]]*\]\]")


def query_of(user_text: str) -> str:
    return _DIRECTIVES.sub("", user_text).strip()[:80] or "news"


def cited_spans() -> list[tuple[int, int, int]]:
    """(start, end, result) of each cited segment in UTF-8 bytes of ANSWER (Gemini's unit)."""
    spans, at = [], 0
    for text, result in SEGMENTS:
        size = len(text.encode())
        if result >= 0:
            spans.append((at, at + size, result))
        at += size
    return spans
