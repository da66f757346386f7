"""The wire protocols the gateway speaks, looked up by name: `PROTOCOLS[channel.protocol]`.

Each `protocols/<name>/` package satisfies `WireProtocol` (mypy checks the modules against it), so
the relay calls conversions through a typed contract instead of importing modules by string.
A new protocol is one package and one line in `PROTOCOLS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from polyrelay import ir
from polyrelay.errors import GatewayError
from polyrelay.protocols import anthropic_messages, gemini, openai_chat, openai_responses
from polyrelay.protocols._passthrough import RequestPeek, SseTap

CountTokensBody = Callable[[ir.Request, str, "bytes | None"], bytes]


class StreamDecoder(Protocol):
    """Upstream stream bytes -> IR events, incrementally."""

    @property
    def events(self) -> int: ...
    def feed(self, chunk: bytes) -> list[ir.StreamEvent]: ...
    def close(self) -> list[ir.StreamEvent]: ...


class StreamEncoder(Protocol):
    """IR events -> client stream bytes, in the framing the client asked for (`RequestPeek.framing`)."""

    def encode(self, event: ir.StreamEvent) -> bytes: ...
    def close(self) -> bytes: ...


class FastPath(Protocol):
    """Same protocol on both sides: the request peek, the renamed body, usage from the answer."""

    def upstream_body(self, peek: RequestPeek, upstream_model: str, force_usage: bool) -> bytes: ...
    def usage_of(self, body: bytes, whole: bool = False) -> ir.Usage | None: ...
    def rename_model(self, payload: bytes, model_json: bytes) -> bytes: ...


class ClientCodec(Protocol):
    """The client side of a conversion: every WireProtocol, and a client surface no channel speaks
    (legacy completions: protocols/openai_completions)."""

    @property
    def MODEL_IN_URL(self) -> bool: ...  # noqa: N802
    @property
    def StreamEncoder(self) -> Callable[[str, ir.Request, str], StreamEncoder]: ...  # noqa: N802

    def parse_request(self, body: bytes) -> ir.Request: ...
    def render_response(self, resp: ir.Response, model: str) -> bytes: ...
    def render_stream_error(self, err: GatewayError) -> bytes: ...


class UpstreamCodec(Protocol):
    """What the convert path needs of the protocol it sends upstream (a WireProtocol, or the codec
    of a chat request for a completion-only model: protocols/openai_completions/chat.py)."""

    @property
    def INLINE_MEDIA(self) -> frozenset[str]: ...  # noqa: N802
    @property
    def THINKING_ALIAS(self) -> bool: ...  # noqa: N802
    @property
    def StreamDecoder(self) -> Callable[[], StreamDecoder]: ...  # noqa: N802

    def render_request(self, req: ir.Request, upstream_model: str) -> tuple[bytes, list[ir.Loss]]: ...
    def parse_response(self, body: bytes) -> ir.Response: ...
    def parse_error(self, status: int, body: bytes) -> GatewayError: ...
    def tool_name(self, name: str) -> str: ...


class WireProtocol(Protocol):
    """What the relay needs of one wire protocol (a module of `polyrelay.protocols` satisfies it)."""

    @property
    def NAME(self) -> str: ...  # noqa: N802  (module constants)
    @property
    def INLINE_MEDIA(self) -> frozenset[str]: ...  # noqa: N802  media kinds it needs as bytes, not URLs
    @property
    def MODEL_IN_URL(self) -> bool: ...  # noqa: N802  the model and stream flag come from the path
    @property
    def THINKING_ALIAS(self) -> bool: ...  # noqa: N802  `<model>-thinking` names apply (routing/aliases)
    @property
    def COUNT_TOKENS_FIELD(self) -> str: ...  # noqa: N802
    @property
    def count_tokens_body(self) -> CountTokensBody | None: ...  # None: no native counter
    @property
    def fastpath(self) -> FastPath: ...
    @property
    def StreamTap(self) -> Callable[..., SseTap]: ...  # noqa: N802
    @property
    def StreamDecoder(self) -> Callable[[], StreamDecoder]: ...  # noqa: N802
    @property
    def StreamEncoder(self) -> Callable[[str, ir.Request, str], StreamEncoder]: ...  # noqa: N802

    def parse_request(self, body: bytes) -> ir.Request: ...
    # the body, and what the conversion could not carry (parsing the client's body included)
    def render_request(self, req: ir.Request, upstream_model: str) -> tuple[bytes, list[ir.Loss]]: ...
    def parse_response(self, body: bytes) -> ir.Response: ...
    def render_response(self, resp: ir.Response, model: str) -> bytes: ...
    def parse_error(self, status: int, body: bytes) -> GatewayError: ...
    def render_error(self, err: GatewayError) -> tuple[int, bytes]: ...
    def render_stream_error(self, err: GatewayError) -> bytes: ...
    def parse_count_tokens_request(self, body: bytes) -> ir.Request: ...
    def render_count_tokens_response(self, n: int) -> bytes: ...
    def tool_name(self, name: str) -> str: ...


def _registry(*modules: WireProtocol) -> dict[str, WireProtocol]:
    return {m.NAME: m for m in modules}


PROTOCOLS: dict[str, WireProtocol] = _registry(openai_chat, anthropic_messages, gemini, openai_responses)

__all__ = ["PROTOCOLS", "ClientCodec", "CountTokensBody", "FastPath", "StreamDecoder", "StreamEncoder", "WireProtocol"]
