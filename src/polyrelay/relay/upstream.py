"""Calling an upstream channel with the pooled client, and how its failures map to errors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from polyrelay.channels import Channel
from polyrelay.errors import GatewayError
from polyrelay.http_client import TRANSPORT_ERRORS, Timeouts, UpstreamClient, UpstreamResponse


def transport_error(exc: BaseException, channel_name: str) -> GatewayError:
    """A connect error or timeout talking to a channel, as a retryable 502/504 (no secrets)."""
    if isinstance(exc, asyncio.TimeoutError):
        return GatewayError(504, "timeout", f"upstream channel '{channel_name}' timed out", retryable=True)
    return GatewayError(502, "upstream", f"could not reach upstream channel '{channel_name}'",
                        retryable=True)


async def open_upstream(client: UpstreamClient, channel: Channel, upstream_model: str,
                        body: bytes, stream: bool, parse_error: Callable[[int, bytes], GatewayError],
                        url: str | None = None, extra_headers: dict[str, str] | None = None) -> UpstreamResponse:
    """POST `body` to `channel`; return the response once it is 2xx, else raise a GatewayError.

    Failures another candidate might not have (connect errors, timeouts, 429, 5xx, and the
    channel's own credentials or account being refused: 401/403, 402 billing) are marked retryable;
    other 4xx are the client's and are passed on, scrubbed of the channel's secrets.
    """
    timeouts = channel.stream_timeouts if stream else channel.timeouts
    try:
        headers = channel.headers(channel.next_key())
        if extra_headers:
            headers = {**headers, **extra_headers}
        resp = await client.post(url or channel.url(upstream_model, stream), headers, body, timeouts,
                                 proxy=channel.config.proxy)
    except TRANSPORT_ERRORS as exc:
        raise transport_error(exc, channel.name) from None
    if resp.status < 300:
        return resp
    try:
        error_body = await resp.read()
    except TRANSPORT_ERRORS as exc:
        raise transport_error(exc, channel.name) from None
    if resp.status < 400:   # a redirect: relays do not follow them, the channel's base_url is wrong
        raise GatewayError(502, "upstream", f"upstream channel '{channel.name}' answered with a redirect "
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
    raise err


async def read_all(resp: UpstreamResponse, channel: Channel) -> bytes:
    """The whole body of a 2xx upstream response; transport failures are retryable errors."""
    try:
        return await resp.read()
    except TRANSPORT_ERRORS as exc:
        raise transport_error(exc, channel.name) from None
