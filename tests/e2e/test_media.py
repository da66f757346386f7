"""Media the client points at by URL, or sends inline, reaching channels that need bytes (Gemini)
or cannot take a kind at all (Anthropic and video)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import aiohttp
import anthropic
import httpx
import openai
import pytest
from test_chat_relay import last_upstream_request, sdk

from polyrelay import ir
from polyrelay.errors import GatewayError
from polyrelay.upstream import media
from sdk_clients import PNG_1X1
from servers import Server


class _Images(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = PNG_1X1 if self.path.startswith("/pixel.png") else b"x" * (3 * 1024 * 1024)
        self.send_response(404 if self.path.startswith("/missing.png") else 200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the gateway hangs up on purpose once a body passes its size cap


@pytest.fixture(scope="module")
def image_server() -> Iterator[str]:
    server = _QuietServer(("127.0.0.1", 0), _Images)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_image_url_is_fetched_and_inlined_for_gemini(gateway: Server, image_server: str, sim_http) -> None:
    reply = sdk(gateway, "sk-alice-0001").chat.completions.create(model="gemini-2.5-flash", messages=[
        {"role": "user", "content": [
            {"type": "text", "text": "What is it?"},
            {"type": "image_url", "image_url": {"url": image_server + "/pixel.png?sig=secret"}}]}])
    assert reply.choices[0].message.content
    sent = last_upstream_request(sim_http)
    inline = sent["contents"][0]["parts"][1]["inlineData"]
    assert inline["mimeType"] == "image/png" and base64.b64decode(inline["data"]) == PNG_1X1


def test_unfetchable_image_is_a_clear_400_without_the_query_string(gateway: Server, image_server: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(gateway, "sk-alice-0001").chat.completions.create(model="gemini-2.5-flash", messages=[
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": image_server + "/missing.png?token=s3"}}]}])
    assert "missing.png" in str(caught.value) and "s3" not in str(caught.value)


def test_video_url_reaches_gemini_and_is_refused_for_claude(gateway: Server, sim_http) -> None:
    video = "data:video/mp4;base64," + base64.b64encode(b"\x00\x00\x00\x18ftypmp42").decode()
    messages = [{"role": "user", "content": [{"type": "text", "text": "Analyse this video"},
                                             {"type": "video_url", "video_url": {"url": video}}]}]
    client = sdk(gateway, "sk-alice-0001")
    assert client.chat.completions.create(model="gemini-2.5-flash", messages=messages).choices[0].message.content
    assert last_upstream_request(sim_http)["contents"][0]["parts"][1]["inlineData"]["mimeType"] == "video/mp4"
    with pytest.raises(openai.BadRequestError, match="video"):
        client.chat.completions.create(model="claude-sim-sonnet", messages=messages)


def test_n_above_one_is_refused_for_claude_naming_n(gateway: Server) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(gateway, "sk-alice-0001").chat.completions.create(
            model="claude-sim-sonnet", n=2, messages=[{"role": "user", "content": "x"}])
    assert caught.value.body["param"] == "n"


def test_anthropic_client_image_url_reaches_gemini_as_bytes(gateway: Server, image_server: str, sim_http) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key="sk-alice-0001", max_retries=0)
    message = client.messages.create(model="gemini-2.5-flash", max_tokens=100, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": image_server + "/pixel.png"}},
        {"type": "text", "text": "What is it?"}]}])
    assert message.content[0].text
    assert "inlineData" in json.dumps(last_upstream_request(sim_http))


async def test_fetch_refuses_private_hosts_large_bodies_and_other_schemes(image_server: str) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(GatewayError, match="not a public address"):
            await media.fetch(session, image_server + "/pixel.png")
        with pytest.raises(GatewayError, match="larger than 1 MB"):
            await media.fetch(session, image_server + "/big.png", max_bytes=1024 * 1024, allow_private=True)
        with pytest.raises(GatewayError, match="http"):
            await media.fetch(session, "file:///etc/passwd", allow_private=True)
        image = ir.MediaPart("image", url=image_server + "/pixel.png")
        req = ir.Request(model="m", messages=[ir.Message("user", [image])])
        await media.inline_remote_media(req, {"image"}, session, allow_private=True)
        part = req.messages[0].parts[0]
        assert part.url is None and base64.b64decode(part.data) == PNG_1X1 and part.media_type == "image/png"


def test_body_over_the_limit_is_413(gateway: Server) -> None:
    r = httpx.post(gateway.url + "/v1/chat/completions", headers={"Authorization": "Bearer sk-alice-0001"},
                   content=b"x" * (65 * 1024 * 1024))
    assert r.status_code == 413 and r.json()["error"]["type"] == "invalid_request_error"
