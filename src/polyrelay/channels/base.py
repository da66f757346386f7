"""A configured upstream channel at run time: where to send, with which key, speaking which protocol.

A channel kind (one module per kind, one line in `channels.KINDS`) says how to reach an upstream of
that kind and what it can do: its wire protocol, the URL of each operation, its auth headers, a
`prepare` hook that may rewrite a request just before it is sent (where request signing such as AWS
SigV4 goes), its stream framing and its capabilities. The pipeline only ever asks a channel these
questions, so a new kind (Bedrock, Vertex, ...) is a module and a registry line."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from polyrelay.config import DEFAULT_COMPLETION_MODELS, ChannelConfig
from polyrelay.routing.patterns import Glob
from polyrelay.scrub import Scrubber, proxy_secrets
from polyrelay.upstream.client import Timeouts

# What a call asks of an upstream (one entry each in relay.operations.OPERATIONS); the next ones
# "videos": the Sora job API (relay/videos.py); "images" and "image_edits": the images API
# (relay/images.py); "completions" and "embeddings" (relay/completions.py, relay/embeddings.py).
Operation = Literal["generate", "count_tokens", "images", "image_edits", "videos", "completions", "embeddings"]
GENERATE_ONLY: frozenset[Operation] = frozenset({"generate"})
# How an upstream frames a stream: server-sent events today; AWS event streams for Bedrock.
Framing = Literal["sse"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a kind of upstream can do; the router and the test matrix read the same flags."""

    streaming: bool = True
    tools: bool = True
    vision: bool = True
    thinking: bool = False
    json_schema: bool = False
    # the operations it has an endpoint for (`url`); the router offers a channel only for these
    # ("count_tokens": a native token counter, else the gateway estimates)
    operations: frozenset[Operation] = GENERATE_ONLY


@dataclass(slots=True)
class UpstreamRequest:
    """One request as it will be sent: what `prepare` may change (sign, re-address)."""

    url: str
    headers: dict[str, str]
    body: bytes


class UnsupportedOperation(LookupError):
    """The kind has no endpoint for this operation."""


class ChannelKind(Protocol):
    """What one upstream kind knows: its wire protocol, its URLs and auth, what it can do."""

    protocol: str                 # name of the module in polyrelay.protocols that this upstream speaks
    capabilities: Capabilities
    framing: Framing
    signs: bool                   # prepare() changes requests; False: the call skips it (no per-request cost)
    native_completions: bool      # has the legacy /completions: its `completions` models are served there

    def url(self, base_url: str, operation: Operation, upstream_model: str, stream: bool) -> str: ...
    def headers(self, api_key: str) -> dict[str, str]: ...
    def prepare(self, request: UpstreamRequest) -> UpstreamRequest: ...


class PlainKind:
    """The defaults of a kind that sends requests as they are: SSE streams, nothing to sign."""

    framing: Framing = "sse"
    signs = False
    native_completions = False

    def prepare(self, request: UpstreamRequest) -> UpstreamRequest:
        return request


class Channel:
    def __init__(self, config: ChannelConfig, kind: ChannelKind) -> None:
        self.config = config
        self.name = config.name
        self.kind = kind
        self.protocol = kind.protocol
        caps = kind.capabilities
        if not config.count_tokens and "count_tokens" in caps.operations:   # a compatible upstream without it
            caps = replace(caps, operations=caps.operations - {"count_tokens"})
        self.capabilities = caps
        self.signs = kind.signs
        self.base_url = config.base_url.rstrip("/")
        self.models = frozenset(config.models)
        self._keys = itertools.cycle(config.api_keys or [""])
        self.key_count = max(1, len(config.api_keys))
        self.secrets = (*(k for k in config.api_keys if k), *proxy_secrets(config.proxy))
        self._scrubber = Scrubber(self.secrets)
        # upstream model names this channel's own /completions endpoint serves (OpenAI kind); other
        # legacy completions are converted to the channel's chat-like protocol, and chat for these models
        # goes to /completions (relay/convert_path.completion_model); a kind without /completions has none
        self._completion_models = tuple(Glob(m) for m in (DEFAULT_COMPLETION_MODELS if config.completions is None
                                                          else config.completions)) if kind.native_completions else ()
        # "*" is a server that completes every model and chats too (vLLM): chat stays on its chat endpoint
        self._completion_only = () if any(g.text == "*" for g in self._completion_models) else self._completion_models
        self.timeouts = Timeouts(config.connect_timeout, config.first_byte_timeout, config.timeout)
        self.stream_timeouts = Timeouts(config.connect_timeout, config.first_byte_timeout, None)

    def upstream_model(self, public_model: str) -> str:
        return self.config.model_map.get(public_model, public_model)

    def next_key(self) -> str:
        """Round-robin over the channel's keys."""
        return next(self._keys)

    def completes_natively(self, upstream_model: str) -> bool:
        """Whether a legacy completion for `upstream_model` goes to the channel's /completions as it is."""
        return any(glob.matches(upstream_model) for glob in self._completion_models)

    def completion_only(self, upstream_model: str) -> bool:
        """Whether `upstream_model` has only the channel's /completions, so chat for it is converted there."""
        return any(glob.matches(upstream_model) for glob in self._completion_only)

    def serves(self, operation: Operation) -> bool:
        return operation in self.capabilities.operations

    def url(self, operation: Operation, upstream_model: str, stream: bool) -> str:
        return self.kind.url(self.base_url, operation, upstream_model, stream)

    def headers(self, api_key: str) -> dict[str, str]:
        return self.kind.headers(api_key)

    def prepare(self, request: UpstreamRequest) -> UpstreamRequest:
        return self.kind.prepare(request)

    def scrub(self, text: str) -> str:
        """Remove this channel's secrets (any 8+ character piece, any case, base64) from text that
        may reach a client or a log."""
        return self._scrubber.scrub(text)
