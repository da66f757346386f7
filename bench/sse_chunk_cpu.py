"""CPU per upstream stream chunk in the SSE splitter and a same-protocol tap, in µs (best of 15 x N).

    PYTHONPATH=src python bench/sse_chunk_cpu.py

Run it on two checkouts to compare; the machine's noise is a few tenths of a µs, so run each side a
few times and keep the minimum. A diagnostic, not part of run.py.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable

from polyrelay.protocols._sse import SseSplitter
from polyrelay.protocols.openai_chat import StreamDecoder
from polyrelay.protocols.openai_chat.fastpath import ChatStreamTap

EVENT = (b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",'
         b'"choices":[{"index":0,"delta":{"content":"hello there"},"finish_reason":null}]}\n\n')
HEAD, TAIL = EVENT[:60], EVENT[60:]
CRLF = EVENT.replace(b"\n", b"\r\n")


def best(fn: Callable[[], object], n: int) -> float:
    return min(timeit.repeat(fn, number=n, repeat=15)) / n * 1e6


def main() -> None:
    tap = ChatStreamTap("gpt-4o-mini", drop_usage_chunk=False)
    tap.feed(EVENT)
    decoder, splitter = StreamDecoder(), SseSplitter()
    cases: list[tuple[str, Callable[[], object], int]] = [
        ("tap, whole event", lambda: tap.feed(EVENT), 200_000),
        ("tap, event in 2 reads", lambda: (tap.feed(HEAD), tap.feed(TAIL)), 200_000),
        ("tap, CRLF event", lambda: tap.feed(CRLF), 200_000),
        ("converting decoder, whole event", lambda: decoder.feed(EVENT), 100_000),
        ("splitter, whole event", lambda: splitter.take(EVENT), 500_000),
        ("splitter, event in 2 reads", lambda: (splitter.take(HEAD), splitter.take(TAIL)), 500_000),
    ]
    for name, fn, n in cases:
        print(f"{name:34s} {best(fn, n):.3f} µs")


if __name__ == "__main__":
    main()
