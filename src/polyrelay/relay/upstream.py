"""The one pooled HTTP client session used to reach upstreams, and how its failures map to errors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp

from polyrelay.channels import Channel
from polyrelay.errors import GatewayError


def create_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60,
                                     enable_cleanup_closed=True)
    return aiohttp.ClientSession(connector=connector, auto_decompress=True,
                                 skip_auto_headers=("User-Agent",))


def transport_error(exc: BaseException, channel_name: str) -> GatewayError:
    """A connect error or timeout talking to a channel, as a retryable 502/504 (no secrets)."""
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return GatewayError(504, "timeout", f"upstream channel '{channel_name}' timed out", retryable=True)
    return GatewayError(502, "upstream", f"could not reach upstream channel '{channel_name}'",
                        retryable=True)


async def open_upstream(session: aiohttp.ClientSession, channel: Channel, upstream_model: str,
                        body: bytes, stream: bool, parse_error: Callable[[int, bytes], GatewayError],
                        url: str | None = None) -> aiohttp.ClientResponse:
    """POST `body` to `channel`; return the response once it is 2xx, else raise a GatewayError.

    Failures another candidate might not have (connect errors, timeouts, 429, 5xx, and the
    channel's own credentials being refused: 401/403) are marked retryable; other 4xx are the
    client's and are passed on, scrubbed of the channel's secrets.
    """
    cfg = channel.config
    timeout = aiohttp.ClientTimeout(total=None if stream else cfg.timeout,
                                    sock_connect=cfg.connect_timeout, sock_read=cfg.first_byte_timeout)
    try:
        resp = await session.post(url or channel.url(upstream_model, stream), data=body,
                                  headers=channel.headers(channel.next_key()), timeout=timeout)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise transport_error(exc, channel.name) from None
    if resp.status < 400:
        return resp
    try:
        error_body = await resp.read()
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise transport_error(exc, channel.name) from None
    finally:
        resp.release()
    err = parse_error(resp.status, error_body)
    err.message = channel.scrub(err.message)
    if resp.status in (401, 403) or err.kind == "authentication":
        # Our credentials for this channel were refused: not the client's fault, try elsewhere.
        err = GatewayError(502, "upstream", f"upstream channel '{channel.name}' refused its credentials",
                           retryable=True)
    elif resp.status == 408:
        err.retryable = True
    raise err


async def read_all(resp: aiohttp.ClientResponse, channel: Channel) -> bytes:
    """The whole body of a 2xx upstream response; transport failures are retryable errors."""
    try:
        return await resp.read()
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise transport_error(exc, channel.name) from None
    finally:
        resp.release()
