"""Stream converters and taps are incremental: their memory does not grow with the stream's length.

A long upstream stream (the golden text answer with its first text delta repeated 6,000 times) is
fed one event at a time through every decoder -> encoder pair and every same-protocol tap; the heap
may not grow between event 1,000 and event 6,000 by more than 16 KB (a leak of even 4 bytes per event
would show).
"""

from __future__ import annotations

import itertools
import re
import tracemalloc
from collections.abc import Callable, Iterator

import pytest
from test_golden import GOLDEN, module, parse_client

from polyrelay.protocols.registry import PROTOCOLS as REGISTRY
from polyrelay.relay.convert_path import ConvertingTap

PROTOCOLS = tuple(REGISTRY)
TEXT_MARKS = {"openai_chat": rb'"content":"[^"]', "anthropic_messages": rb'"text":"[^"]', "gemini": rb'"text":"[^"]',
              "openai_responses": rb'"delta":"[^"]'}
TAPS: dict[str, Callable[[], object]] = {
    name: (lambda p=p: p.StreamTap("m", drop_usage_chunk=False)) for name, p in REGISTRY.items()}
EVENTS = 6_000
WARM = 1_000
ALLOWED_GROWTH = 16 * 1024


def long_stream(upstream: str, case: str = "openai_chat__{upstream}/text") -> Iterator[bytes]:
    """The golden streamed answer of `upstream` in `case`, its first text delta repeated EVENTS times."""
    sse = (GOLDEN / case.format(upstream=upstream) / "upstream_response.sse").read_bytes().replace(b"\r\n", b"\n")
    events = [e + b"\n\n" for e in sse.split(b"\n\n") if e.strip()]
    first_text = next(i for i, e in enumerate(events) if re.search(TEXT_MARKS[upstream], e))
    yield from events[:first_text]
    yield from itertools.repeat(events[first_text], EVENTS)
    yield from events[first_text + 1:]


def growth(tap: object, upstream: str, case: str = "openai_chat__{upstream}/text") -> int:
    """Heap growth between event WARM and the end of the stream, fed one event at a time."""
    feed = tap.feed  # type: ignore[attr-defined]
    tracemalloc.start()
    try:
        for i, event in enumerate(long_stream(upstream, case)):
            feed(event)
            if i == WARM:
                before = tracemalloc.get_traced_memory()[0]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return after - before


# Responses to Responses is the fast path (the same-protocol tap below), never converted
PAIRS = [p for p in itertools.product(PROTOCOLS, PROTOCOLS) if p != ("openai_responses", "openai_responses")]


@pytest.mark.parametrize("client, upstream", PAIRS)
def test_converting_tap_memory_is_flat(client: str, upstream: str) -> None:
    body = (GOLDEN / f"{client}__{upstream}" / "text" / "client_request.json").read_bytes()
    request = parse_client(client, body, stream=True)
    tap = ConvertingTap(module(upstream).StreamDecoder(), module(client).StreamEncoder("m", request))
    grown = growth(tap, upstream)
    allowed = ALLOWED_GROWTH
    if client == "openai_responses":
        # by the protocol its encoder holds the open item's text (`output_text.done` and
        # `output_item.done` repeat it): the text's UTF-8 bytes, with a bytearray's headroom, and
        # nothing per event beyond them
        allowed += int(tap.text_bytes * 1.2)
    assert grown < allowed, f"{grown} bytes more after {EVENTS - WARM} more events"
    assert tap.text_bytes > EVENTS, "the events were converted"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_same_protocol_tap_memory_is_flat(protocol: str) -> None:
    tap = TAPS[protocol]()
    grown = growth(tap, protocol)
    assert grown < ALLOWED_GROWTH, f"{grown} bytes more after {EVENTS - WARM} more events"
    assert tap.text_bytes > EVENTS  # type: ignore[attr-defined]


@pytest.mark.parametrize("upstream", ["anthropic_messages", "gemini"])
def test_web_search_stream_memory_is_flat(upstream: str) -> None:
    """A searched answer (a cited text block: its first delta repeated) to a Responses client: the
    decoders count the text's bytes for the citations, they do not keep it. Measured up to the
    answer's last text event (after it the encoder makes the items' final text, which by the
    protocol it repeats: up to 4 bytes a character, this text having one outside the BMP)."""
    case = "openai_responses__{upstream}/web_search"
    request = parse_client("openai_responses", (GOLDEN / case.format(upstream=upstream) / "client_request.json")
                           .read_bytes(), stream=True)
    tap = ConvertingTap(module(upstream).StreamDecoder(), module("openai_responses").StreamEncoder("m", request))
    events = list(long_stream(upstream, case))
    tracemalloc.start()
    try:
        for i, event in enumerate(events[:WARM + EVENTS - 1000]):
            tap.feed(event)
            if i == WARM:
                before = tracemalloc.get_traced_memory()[0]
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < ALLOWED_GROWTH + int(tap.text_bytes * 1.2), f"{grown} bytes more after {EVENTS - 2 * WARM} events"
    assert tap.text_bytes > EVENTS - WARM
