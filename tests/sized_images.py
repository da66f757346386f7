"""An image server on loopback for the media-fetching tests: /<n>.png answers n bytes (a pattern, so
base64 mistakes show), counting the fetches in flight."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestServer

PATTERN = bytes(range(251)) * (64 * 1024 // 251 + 1)


class Sizes:
    """The handler of /<n>.png; `most` is the largest number of fetches in flight at once."""

    def __init__(self) -> None:
        self.in_flight = self.most = 0

    async def image(self, request: web.Request) -> web.StreamResponse:
        size = int(request.match_info["size"])
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0.05)
            resp = web.StreamResponse(headers={"Content-Type": "image/png", "Content-Length": str(size)})
            await resp.prepare(request)
            sent = 0
            try:
                while sent < size:
                    piece = PATTERN[:min(len(PATTERN), size - sent)]
                    await resp.write(piece)
                    sent += len(piece)
            except ConnectionError:
                pass   # the gateway hung up on purpose (a size cap)
            return resp
        finally:
            self.in_flight -= 1


async def serve(sizes: Sizes) -> TestServer:
    app = web.Application()
    app.router.add_get("/{size:[0-9]+}.png", sizes.image)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server
