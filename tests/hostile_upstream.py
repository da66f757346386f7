"""An upstream that misbehaves on purpose, for tests of what the gateway does about it.

A raw asyncio HTTP/1.1 server on a loopback port, in a thread of the test process. The channel's API
key (the `Authorization: Bearer <mode>` or `x-api-key` / `x-goog-api-key` header) picks the misdeed:

  refuse-<status>    read the whole request, answer <status> (400, 503...) with a small OpenAI error
  error-body-<MB>    answer 400 with an OpenAI error whose message is <MB> MB long
  gzip-bomb-<MB>     answer 200, Content-Encoding: gzip, <MB> MB of JSON-ish bytes deflated (~1000:1)
  sse-line-<MB>      a 200 chat stream: one real event, then `data: ` and <MB> MB with no newline
  trickle            a 200 chat stream: one real event, then an SSE comment every 0.2 s (for 30 s)
  drip               a 200 chat stream: a real text event every 0.2 s (for 30 s), never finishing
  429                429 with `retry-after: 17` and `retry-after-ms: 17000`
"""

from __future__ import annotations

import asyncio
import json
import threading
import zlib
from functools import lru_cache

MB = 1024 * 1024


def _event(payload: object) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


FIRST_EVENT = _event({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                      "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}}]})
TEXT_EVENT = _event({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                     "choices": [{"index": 0, "delta": {"content": "more "}}]})


@lru_cache(maxsize=4)
def gzip_bomb(megabytes: int) -> bytes:
    """`megabytes` MB of zeros, gzip-compressed (about 1 KB per MB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MB)
    return b"".join([packer.compress(zeros) for _ in range(megabytes)] + [packer.flush()])


def _mode(head: bytes) -> str:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip()
        if name == b"authorization" and value.lower().startswith(b"bearer "):
            return value[7:].decode()
        if name in (b"x-api-key", b"x-goog-api-key"):
            return value.decode()
    return ""


async def _answer(mode: str, writer: asyncio.StreamWriter) -> None:
    if mode.startswith("refuse-"):
        body = b'{"error": {"message": "this request is refused", "type": "invalid_request_error"}}'
        writer.write(b"HTTP/1.1 %s Refused\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % (mode[7:].encode(), len(body)) + body)
    elif mode == "429":
        body = b'{"error": {"message": "slow down", "type": "rate_limit_error"}}'
        writer.write(b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nretry-after: 17\r\n"
                     b"retry-after-ms: 17000\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    elif mode.startswith("error-body-"):
        size = int(mode.rsplit("-", 1)[1]) * MB
        head, tail = b'{"error": {"message": "', b'", "type": "invalid_request_error"}}'
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % (len(head) + size + len(tail)) + head)
        block = b"x" * MB
        for _ in range(size // MB):
            writer.write(block)
            await writer.drain()
        writer.write(tail)
    elif mode.startswith("gzip-bomb-"):
        body = gzip_bomb(int(mode.rsplit("-", 1)[1]))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
    elif mode.startswith("sse-line-"):
        size = int(mode.rsplit("-", 1)[1]) * MB
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
                     + FIRST_EVENT + b"data: ")
        block = b"a" * 65536
        for _ in range(size // len(block)):
            writer.write(block)
            await writer.drain()
    elif mode in ("trickle", "drip"):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
                     + FIRST_EVENT)
        for _ in range(150):
            await asyncio.sleep(0.2)
            writer.write(b": keep-alive\n\n" if mode == "trickle" else TEXT_EVENT)
            await writer.drain()
    else:
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            while length:   # read and drop the body without holding it
                length -= len(await reader.read(min(length, MB)))
            await _answer(_mode(head), writer)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()


class HostileUpstream:
    """The server in a thread with its own event loop; `url` is its base URL."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.url = ""

    def start(self) -> HostileUpstream:
        self.thread.start()
        server = asyncio.run_coroutine_threadsafe(asyncio.start_server(_handle, "127.0.0.1", 0),
                                                  self.loop).result(10)
        self.server = server
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        return self

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
