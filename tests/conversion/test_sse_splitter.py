"""The one SSE splitter every tap and decoder uses: same events whatever the chunking (LF or CRLF,
blank lines split across reads), linear time on a long line, and a bounded event size."""

from __future__ import annotations

import random
import time

import pytest

from polyrelay.protocols._sse import EventTooLarge, SseSplitter
from polyrelay.protocols._stream_base import EventDecoder
from polyrelay.protocols.openai_chat.fastpath import ChatStreamTap

MB = 1024 * 1024


def _stream(rng: random.Random, crlf: bool) -> bytes:
    events = []
    for i in range(200):
        kind = rng.random()
        if kind < 0.1:
            events.append(b": keep-alive")
        elif kind < 0.2:
            events.append(b"event: ping\ndata: {\"n\": %d}" % i)
        else:
            events.append(b"data: " + b"x" * rng.randrange(0, 300) + b"%d" % i)
    body = b"\n\n".join(events) + b"\n\n"
    return body.replace(b"\n", b"\r\n") if crlf else body


def _chunks(body: bytes, rng: random.Random) -> list[bytes]:
    out, i = [], 0
    while i < len(body):
        n = rng.choice((1, 2, 3, 7, 64, 500, 4096))
        out.append(body[i:i + n])
        i += n
    return out


@pytest.mark.parametrize("crlf", [False, True])
@pytest.mark.parametrize("seed", range(20))
def test_any_chunking_gives_the_same_events(seed: int, crlf: bool) -> None:
    rng = random.Random(seed)
    body = _stream(rng, crlf)
    expected = [e for e in body.replace(b"\r\n", b"\n").split(b"\n\n") if e]
    splitter = SseSplitter()
    got = [e for chunk in _chunks(body, rng) for e in splitter.feed(chunk)] + splitter.close()
    assert got == expected
    comments_only = sum(1 for e in expected if e.startswith(b":"))
    assert 0 < splitter.events <= len(expected) - comments_only


def test_comments_and_pings_do_not_count_as_events() -> None:
    splitter = SseSplitter()
    for _ in range(5):
        assert splitter.take(b": keep-alive\n\n") == b": keep-alive\n\n"
        splitter.take(b": keep-")
        splitter.take(b"alive\r\n\r\n")
        splitter.take(b'event: ping\ndata: {"type": "ping"}\n\n: x\n\n')
    assert splitter.events == 0
    splitter.take(b": keep-alive\n\ndata: {}\n\n")
    assert splitter.events == 1


def test_a_long_line_is_split_in_linear_time() -> None:
    """A 32 MB line in 16 KB reads: the old splitter joined and searched everything held on every
    read (quadratic: seconds here, 10.7 s of event-loop stall for 100 MB through the gateway)."""
    splitter = SseSplitter(limit=64 * MB)
    piece = b"a" * (16 * 1024)
    started = time.perf_counter()
    assert splitter.take(b"data: ") == b""
    for _ in range(32 * MB // len(piece)):
        assert splitter.take(piece) == b""
    block = splitter.take(b"\n\n")
    took = time.perf_counter() - started
    assert len(block) == 32 * MB + 8 and block.endswith(b"a\n\n")
    assert took < 0.5, f"{took:.2f} s"


@pytest.mark.parametrize("make", [SseSplitter, lambda: ChatStreamTap("m", drop_usage_chunk=False)._sse,
                                  lambda: EventDecoder()._sse])
def test_an_event_over_the_limit_raises_and_holds_nothing(make) -> None:  # type: ignore[no-untyped-def]
    splitter = make()
    splitter.take(b"data: {}\n\ndata: ")
    with pytest.raises(EventTooLarge, match="larger than 16 MB"):
        for _ in range(17):
            splitter.take(b"a" * MB)
    assert splitter._size == 0 and splitter._parts == []


def test_taps_and_decoders_pass_the_oversize_event_up() -> None:
    """EventTooLarge is not a ValueError: the converting tap must not turn it into one unreadable
    event and read on (it would keep reading a line that never ends)."""
    assert not issubclass(EventTooLarge, (ValueError, TypeError, KeyError, IndexError, AttributeError))
    tap = ChatStreamTap("m", drop_usage_chunk=False)
    with pytest.raises(EventTooLarge):
        for _ in range(17):
            tap.feed(b"a" * MB)
