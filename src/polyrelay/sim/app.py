"""The upstream simulator as an ASGI app: OpenAI Chat, Responses, legacy Completions, embeddings,
images and videos, Anthropic Messages and Gemini (embeddings and images too).

Also `GET /sim/requests` (the last requests it received, for tests to inspect), `GET /sim/stats`
and `POST /sim/reset`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import msgspec

from polyrelay.sim import (
    anthropic_messages,
    gemini,
    openai_chat,
    openai_completions,
    openai_embeddings,
    openai_images,
    openai_responses,
)
from polyrelay.sim.replies import SimBytes, SimReply, SimStream
from polyrelay.sim.script import read_script
from polyrelay.sim.videos import SimVideos

Scope = dict[str, Any]
_MALFORMED = (TypeError, AttributeError, KeyError, ValueError, IndexError, RecursionError, OverflowError)


class SimApp:
    def __init__(self, keep: int = 200) -> None:
        self.requests: deque[dict[str, Any]] = deque(maxlen=keep)
        self.stats = {"requests": 0, "streams_completed": 0, "streams_cancelled": 0}
        self.videos = SimVideos()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        reply = await self.dispatch(scope, body)
        if isinstance(reply, SimReply):
            await send({"type": "http.response.start", "status": reply.status,
                        "headers": [(b"content-type", reply.content_type.encode())]})
            await send({"type": "http.response.body", "body": reply.body})
        elif isinstance(reply, SimBytes):
            await _send_bytes(reply, send)
        else:
            await self._stream(reply, receive, send)

    async def dispatch(self, scope: Scope, body: bytes) -> SimReply | SimStream | SimBytes:
        path, method = scope["path"], scope["method"]
        if path == "/sim/requests":
            return SimReply(200, msgspec.json.encode(list(self.requests)))
        if path == "/sim/stats":
            return SimReply(200, msgspec.json.encode(self.stats))
        if path == "/sim/reset" and method == "POST":
            self.requests.clear()
            self.stats.update(requests=0, streams_completed=0, streams_cancelled=0)
            return SimReply(200, b"{}")
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.stats["requests"] += 1
        record = {"path": path, "query": scope.get("query_string", b"").decode(), "headers": headers,
                  "body": "" if path.endswith("/images/edits") else body.decode("utf-8", "replace")}
        self.requests.append(record)
        auth = headers.get("authorization", "")
        api_key = auth[7:] if auth.lower().startswith("bearer ") else (
            headers.get("x-api-key") or headers.get("x-goog-api-key"))
        script = read_script(body, api_key)
        if script.hang_ms:
            await asyncio.sleep(script.hang_ms / 1000)
        try:
            if method == "POST" and path.endswith("/images/edits"):   # logged as a summary, not its megabytes
                reply, record["form"] = openai_images.edits(body, headers, script)
                return reply
            return self._upstream(path, method, body, headers, api_key, script, scope)
        except _MALFORMED as exc:  # like the real APIs: a request they cannot read is a 400, not a 500
            error_reply: Callable[[int, str], SimReply] = (
                anthropic_messages.error_reply if path.startswith("/v1/messages")
                else gemini.error_reply if "/models/" in path else openai_chat.error_reply)
            reason = "nested too deeply" if isinstance(exc, RecursionError) else type(exc).__name__
            return error_reply(400, f"Invalid request: {reason}")

    def _upstream(self, path: str, method: str, body: bytes, headers: dict[str, str], api_key: str | None,
                  script: Any, scope: Scope) -> SimReply | SimStream | SimBytes:
        if script.garbage and method == "POST":
            if b'"stream":true' in body.replace(b" ", b"") or "streamGenerateContent" in path:
                return SimStream([b"data: {\"id\": broken\n\n", b"data: <html>oops</html>\n\n", b"data: [DONE]\n\n"])
            return SimReply(200, b"<html>502 Bad Gateway from a proxy</html>", content_type="text/html")
        if path == "/v1/videos" or path.startswith("/v1/videos/"):
            query = parse_qs(scope.get("query_string", b"").decode())
            return self.videos.handle(method, path, body, headers, query, script)
        if method == "POST" and path.endswith("/images/generations"):
            return openai_images.generations(body, script)
        if method == "POST" and path.endswith("/chat/completions"):
            return openai_chat.handle(body, script)
        if method == "POST" and path.endswith("/responses"):
            return openai_responses.handle(body, script)
        if method == "POST" and path.endswith("/responses/input_tokens"):
            return openai_responses.input_tokens(body)
        if method == "POST" and path.endswith("/v1/completions"):
            return openai_completions.handle(body, script)
        if method == "POST" and path.endswith("/v1/embeddings"):
            return openai_embeddings.handle(body, script)
        if method == "POST" and path == "/v1/messages":
            return anthropic_messages.handle(body, headers, script)
        if method == "POST" and path == "/v1/messages/count_tokens":
            return anthropic_messages.count_tokens(body)
        if method == "POST" and "/models/" in path and ":" in path:
            model, _, gemini_method = path.split("/models/", 1)[1].rpartition(":")
            query = parse_qs(scope.get("query_string", b"").decode())
            key = headers.get("x-goog-api-key") or (query.get("key") or [None])[0]
            return gemini.handle(body, model, gemini_method, query.get("alt") == ["sse"], key, script)
        return SimReply(404, b'{"error":{"message":"simulator: unknown route","type":"invalid_request_error"}}')

    async def _stream(self, reply: SimStream, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", reply.content_type.encode()), (b"cache-control", b"no-cache")]})
        disconnected = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            for i, piece in enumerate(reply.pieces):
                if i == reply.cut:
                    return  # cut: end the body without the stream's end
                if disconnected.done():
                    self.stats["streams_cancelled"] += 1
                    return
                await send({"type": "http.response.body", "body": piece, "more_body": True})
                if reply.delay_s:
                    await asyncio.wait({disconnected}, timeout=reply.delay_s)
            self.stats["streams_completed"] += 1
        finally:
            if not disconnected.done():
                disconnected.cancel()
            await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _send_bytes(reply: SimBytes, send: Any) -> None:
    """`reply.size` bytes in 64 KB pieces of one block: memory stays flat whatever the size."""
    block = (reply.seed * (65536 // max(1, len(reply.seed)) + 1))[:65536]
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", reply.content_type.encode()),
                            (b"content-length", str(reply.size).encode())]})
    left = reply.size
    while left > 0:
        if reply.cut >= 0 and reply.size - left >= reply.cut:
            return   # cut: the body ends without its end (the server closes the connection)
        piece = block if left >= len(block) else block[:left]
        left -= len(piece)
        await send({"type": "http.response.body", "body": piece, "more_body": left > 0})
    if reply.size == 0:
        await send({"type": "http.response.body", "body": b""})


async def _wait_disconnect(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
