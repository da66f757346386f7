"""Calling an upstream channel with the pooled client, and how its failures map to errors: every read
or write of an upstream exchange runs inside `upstream_errors`, the one place a transport failure
becomes a GatewayError."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from types import TracebackType

from polyrelay.channels import Channel, UpstreamRequest
from polyrelay.errors import GatewayError
from polyrelay.upstream.client import TRANSPORT_ERRORS, Body, UpstreamClient, UpstreamResponse, UpstreamTooLarge


def transport_error(exc: BaseException, channel_name: str) -> GatewayError:
    """A connect error or timeout talking to a channel, as a retryable 502/504 (no secrets).
    An answer over the size limit is a 502 that is not retried: the upstream did the work (and
    would likely do it again), the gateway just refuses to hold it."""
    if isinstance(exc, UpstreamTooLarge):
        limit = exc.limit
        size = f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit} bytes"
        return GatewayError(502, "upstream", f"upstream channel '{channel_name}' sent an answer larger than {size}")
    if isinstance(exc, asyncio.TimeoutError):
        return GatewayError(504, "timeout", f"upstream channel '{channel_name}' timed out", retryable=True)
    return GatewayError(502, "upstream", f"could not reach upstream channel '{channel_name}'",
                        retryable=True)


class upstream_errors:  # noqa: N801  (lower case: it reads as a statement, `with upstream_errors(...)`)
    """Turns a transport failure inside the block into `transport_error` for the channel, raised in
    its place; with `closing`, the response is closed on any exception (a failed or cancelled read
    must not leave the upstream generating for nobody). A class, not @contextmanager: it is on the
    request path and costs a fraction of a generator-based one."""

    __slots__ = ("_name", "_closing")

    def __init__(self, channel_name: str, closing: UpstreamResponse | None = None) -> None:
        self._name = channel_name
        self._closing = closing

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            return
        if self._closing is not None:
            self._closing.close()
        if isinstance(exc, TRANSPORT_ERRORS):
            raise transport_error(exc, self._name) from None


async def open_upstream(client: UpstreamClient, channel: Channel, upstream_model: str,
                        body: Body, stream: bool, parse_error: Callable[[int, bytes], GatewayError],
                        url: str | None = None, extra_headers: dict[str, str] | None = None,
                        method: bytes = b"POST") -> UpstreamResponse:
    """POST `body` to `channel` (or `method`: a job API's GET and DELETE); return the response once it
    is 2xx, else raise a GatewayError.

    Failures another candidate might not have (connect errors, timeouts, 429, 5xx, and the
    channel's own credentials or account being refused: 401/403, 402 billing) are marked retryable;
    other 4xx are the client's and are passed on, scrubbed of the channel's secrets.
    """
    timeouts = channel.stream_timeouts if stream else channel.timeouts
    url = url or channel.url("generate", upstream_model, stream)
    headers = channel.headers(channel.next_key())
    if extra_headers:
        headers = {**headers, **extra_headers}
    if channel.signs:   # last, over exactly what is sent (SigV4 signs the URL, headers and body)
        whole = body if isinstance(body, bytes) else b"".join(body)
        signed = channel.prepare(UpstreamRequest(url, headers, whole))
        url, headers, body = signed.url, signed.headers, signed.body
    with upstream_errors(channel.name):
        resp = await client.post(url, headers, body, timeouts, proxy=channel.config.proxy, method=method)
    if resp.status < 300:
        return resp
    # Built by a function and raised here, never held in a local of this frame: a frame that
    # holds the exception it raises is a reference cycle (frame -> error -> traceback -> frame)
    # that keeps the request body alive until a full collection, which the gateway makes rare.
    raise await _refusal(resp, channel, parse_error)


async def _refusal(resp: UpstreamResponse, channel: Channel,
                   parse_error: Callable[[int, bytes], GatewayError]) -> GatewayError:
    """The error for an upstream's non-2xx answer; only the head of its body is read (a transport
    failure reading it is raised as that failure's error)."""
    with upstream_errors(channel.name):
        error_body = await resp.read_head()
    if resp.status < 400:   # a redirect: relays do not follow them, the channel's base_url is wrong
        return GatewayError(502, "upstream", f"upstream channel '{channel.name}' answered with a redirect "
                            f"(HTTP {resp.status}); check its base_url", retryable=True)
    err = parse_error(resp.status, error_body)
    err.message = channel.scrub(err.message)
    if resp.status in (401, 403) or err.kind == "authentication":
        # Our credentials for this channel were refused: not the client's fault, try elsewhere.
        err = GatewayError(502, "upstream", f"upstream channel '{channel.name}' refused its credentials",
                           retryable=True)
    elif resp.status == 402:
        # The channel's account cannot pay (Anthropic billing_error, a relay's "insufficient credits"):
        # the operator's problem, not the client's; try elsewhere.
        err = GatewayError(502, "upstream", f"upstream channel '{channel.name}' was refused for a billing "
                           "problem of its account (HTTP 402)", retryable=True)
    elif resp.status == 408:
        err.retryable = True
    elif resp.status == 429:
        err.retry_after, err.retry_after_ms = retry_after(resp)
    return err


def retry_after(resp: UpstreamResponse) -> tuple[int | None, int | None]:
    """The upstream's `retry-after` (seconds; an HTTP date is turned into seconds) and
    `retry-after-ms`, when present and sane (0 to one day)."""
    seconds = ms = None
    raw = resp.header(b"retry-after")
    if raw is not None:
        text = raw.decode("latin-1").strip()
        if text.isdigit():
            seconds = int(text)
        else:
            try:
                seconds = max(0, math.ceil(parsedate_to_datetime(text).timestamp() - time.time()))
            except (TypeError, ValueError, IndexError, OverflowError):
                seconds = None
    raw = resp.header(b"retry-after-ms")
    if raw is not None:
        try:
            ms = math.ceil(float(raw.decode("latin-1")))
        except ValueError:
            ms = None
    seconds = seconds if seconds is not None and 0 <= seconds <= 86_400 else None
    ms = ms if ms is not None and 0 <= ms <= 86_400_000 else None
    if seconds is None and ms is not None:
        seconds = math.ceil(ms / 1000)
    return seconds, ms


async def read_all(resp: UpstreamResponse, channel: Channel) -> bytes:
    """The whole body of a 2xx upstream response; transport failures are retryable errors."""
    with upstream_errors(channel.name):
        return await resp.read()


def earliest_retry(errors: list[GatewayError]) -> tuple[int | None, int | None]:
    """The soonest retry-after (and retry-after-ms) among 429s of several channels."""
    seconds = [e.retry_after for e in errors if e.retry_after is not None]
    ms = [e.retry_after_ms for e in errors if e.retry_after_ms is not None]
    return (min(seconds) if seconds else None), (min(ms) if ms else None)
