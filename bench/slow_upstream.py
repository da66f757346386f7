"""A fake OpenAI upstream whose streams are slow: one SSE chunk every --interval seconds.

Usage: python bench/slow_upstream.py --port P [--chunks 40] [--interval 0.1]
POST /slow/v1/chat/completions streams `chunks` events (plus usage and [DONE]); GET /health answers
ok; any other POST answers the canned JSON reply.
Listens on 127.0.0.1 only. Every stream is bounded by --chunks.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from aiohttp import web

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixtures


def make_app(chunks: int, interval: float) -> web.Application:
    role = fixtures.openai_chunk({"role": "assistant", "content": ""}, model=fixtures.SLOW_MODEL).encode()
    words = [fixtures.openai_chunk({"content": w}, model=fixtures.SLOW_MODEL).encode()
             for w in fixtures.stream_words(max(chunks - 2, 1))]
    tail = (fixtures.openai_chunk({}, "stop", model=fixtures.SLOW_MODEL)
            + fixtures.openai_usage_chunk(fixtures.SLOW_MODEL) + "data: [DONE]\n\n").encode()
    canned = fixtures.openai_response()

    async def slow(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        try:
            await resp.write(role)
            for w in words:
                await asyncio.sleep(interval)
                await resp.write(w)
            await asyncio.sleep(interval)
            await resp.write(tail)
            await resp.write_eof()
        except ConnectionResetError:   # the gateway went away: nothing to finish
            pass
        return resp

    async def fast(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=canned, content_type="application/json")

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/health", health)
    app.router.add_post("/slow/v1/chat/completions", slow)
    app.router.add_post("/{tail:.*}", fast)
    return app


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--chunks", type=int, default=40)
    p.add_argument("--interval", type=float, default=0.1)
    a = p.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    web.run_app(make_app(a.chunks, a.interval), host="127.0.0.1", port=a.port, backlog=4096,
                access_log=None, print=None)


if __name__ == "__main__":
    main()
