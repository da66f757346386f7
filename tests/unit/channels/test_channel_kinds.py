"""Channel kinds: the URL of each operation, declared capabilities, and the prepare() hook that may
sign a request (checked over real HTTP: what the upstream receives is what prepare() made)."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import typing

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from polyrelay.channels import (
    KINDS,
    Capabilities,
    Channel,
    Operation,
    UnsupportedOperation,
    UpstreamRequest,
    build_channel,
)
from polyrelay.channels.anthropic import AnthropicKind
from polyrelay.config import ChannelConfig
from polyrelay.protocols import anthropic_messages
from polyrelay.upstream.call import open_upstream, read_all
from polyrelay.upstream.client import UpstreamClient


def _channel(kind: str, base_url: str = "https://up.example/v1/") -> Channel:
    return build_channel(ChannelConfig(name="c", base_url=base_url, models=["m"], type=kind))  # type: ignore[arg-type]


def test_each_operation_has_its_url_and_the_rest_are_refused() -> None:
    assert _channel("openai").url("generate", "m", True) == "https://up.example/v1/chat/completions"
    anthropic = _channel("anthropic", "https://api.anthropic.com")
    assert anthropic.url("generate", "m", False) == "https://api.anthropic.com/v1/messages"
    assert anthropic.url("count_tokens", "m", False) == "https://api.anthropic.com/v1/messages/count_tokens"
    gemini = _channel("gemini", "https://g.example")
    assert gemini.url("generate", "m", True) == "https://g.example/v1beta/models/m:streamGenerateContent?alt=sse"
    assert gemini.url("generate", "m", False) == "https://g.example/v1beta/models/m:generateContent"
    assert gemini.url("count_tokens", "m", False) == "https://g.example/v1beta/models/m:countTokens"
    assert _channel("openai").url("completions", "m", True) == "https://up.example/v1/completions"
    assert _channel("openai").url("embeddings", "m", False) == "https://up.example/v1/embeddings"
    assert gemini.url("embeddings", "e", False) == "https://g.example/v1beta/models/e:batchEmbedContents"
    # kinds without a completions endpoint serve a legacy completion by conversion, at their generate URL
    assert anthropic.url("completions", "m", True) == anthropic.url("generate", "m", True)
    assert gemini.url("completions", "m", True) == gemini.url("generate", "m", True)
    with pytest.raises(UnsupportedOperation):
        anthropic.url("embeddings", "m", False)
    with pytest.raises(UnsupportedOperation):
        _channel("openai").url("count_tokens", "m", False)
    # images: OpenAI's images API; a Gemini image model answers generateContent
    assert _channel("openai").url("images", "m", False) == "https://up.example/v1/images/generations"
    assert _channel("openai").url("image_edits", "m", False) == "https://up.example/v1/images/edits"
    assert gemini.url("images", "m", False) == gemini.url("image_edits", "m", False) == \
        "https://g.example/v1beta/models/m:generateContent"
    with pytest.raises(UnsupportedOperation):
        anthropic.url("images", "m", False)


def test_an_openai_channel_completes_natively_only_the_models_its_completions_setting_lists() -> None:
    default = _channel("openai")   # OpenAI's completion-only models
    assert default.completes_natively("gpt-3.5-turbo-instruct") and default.completes_natively("davinci-002")
    assert default.completes_natively("gpt-3.5-turbo-instruct-0914")
    assert not default.completes_natively("gpt-4o-mini") and not default.completes_natively("my-instruct")
    vllm = build_channel(ChannelConfig(name="c", base_url="http://x", models=["m"], completions=["*"]))
    assert vllm.completes_natively("Qwen2.5-7B-Instruct") and vllm.completes_natively("m")
    chat_only = build_channel(ChannelConfig(name="c", base_url="http://x", models=["m"], completions=[]))
    assert not chat_only.completes_natively("gpt-3.5-turbo-instruct")


def test_capabilities_are_declared_data() -> None:
    for name, kind in KINDS.items():
        caps = kind.capabilities
        assert isinstance(caps, Capabilities) and kind.framing == "sse" and not kind.signs, name
        # an operation is declared exactly where the kind has a URL for it (count_tokens: a native counter)
        for operation in typing.get_args(Operation):
            try:
                kind().url("https://x", operation, "m", False)
                has_url = True
            except UnsupportedOperation:
                has_url = False
            assert (operation in caps.operations) == has_url, (name, operation)
    with pytest.raises(dataclasses.FrozenInstanceError):
        KINDS["openai"].capabilities.tools = False  # type: ignore[misc]


class _SigningKind(AnthropicKind):
    """What a SigV4-style kind does: sign the final URL and body, moving the key out of the headers."""

    signs = True

    def prepare(self, request: UpstreamRequest) -> UpstreamRequest:
        key = request.headers.pop("x-api-key").encode()
        mac = hmac.new(key, request.url.encode() + b"\n" + request.body, hashlib.sha256).hexdigest()
        return UpstreamRequest(request.url + "?signed=1", {**request.headers, "authorization": f"SIG {mac}"},
                               request.body)


async def test_prepare_signs_what_is_sent() -> None:
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append((str(request.rel_url), dict(request.headers), await request.read()))
        return web.json_response({"input_tokens": 3})

    app = web.Application()
    app.router.add_post("/v1/messages/count_tokens", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    client = UpstreamClient()
    try:
        base = f"http://127.0.0.1:{server.port}"
        config = ChannelConfig(name="signed", base_url=base, models=["m"], type="anthropic", api_keys=["sk-secret-1"])
        channel = Channel(config, _SigningKind())
        resp = await open_upstream(client, channel, "m", b'{"x":1}', False, anthropic_messages.parse_error,
                                   url=channel.url("count_tokens", "m", False))
        assert await read_all(resp, channel) == b'{"input_tokens": 3}'
    finally:
        await client.close()
        await server.close()
    path, headers, body = seen[0]
    expected = hmac.new(b"sk-secret-1", f"{base}/v1/messages/count_tokens".encode() + b"\n" + body,
                        hashlib.sha256).hexdigest()
    assert path == "/v1/messages/count_tokens?signed=1" and body == b'{"x":1}'
    assert headers["Authorization"] == f"SIG {expected}" and "x-api-key" not in {k.lower() for k in headers}
