"""A video job after its create: asking the owning channel how it is doing, applying what it says
(compare-and-set, billing the job in the same transaction when it ends), deleting it, streaming
its content, and the background poller that advances jobs nobody is polling.

Billing (docs/billing.md, "Video jobs"): the create held `seconds x per_second` in a durable hold
(billing/holds.py); the transaction that moves the job to `completed` charges it, to `failed`
refunds it, and a delete before completion refunds it; `store.videos.mark_billed` makes that
happen once, whichever process or poll gets there first."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

from sqlalchemy import Row

from polyrelay.billing import holds
from polyrelay.channels import Channel
from polyrelay.errors import GatewayError
from polyrelay.protocols import openai_videos as wire
from polyrelay.protocols.registry import PROTOCOLS
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.replies import Reply, StreamAborted, StreamReply, Write
from polyrelay.relay.surfaces import OPENAI_CHAT
from polyrelay.store import videos as store
from polyrelay.store.logs import insert_logs
from polyrelay.upstream.call import open_upstream, read_all, upstream_errors

log = logging.getLogger("polyrelay.videos")

LOG_SURFACE = OPENAI_CHAT.name + ":videos"   # the request log's surface for video jobs
POLL_INTERVAL_S = float(os.environ.get("POLYRELAY_VIDEO_POLL_S", "5"))
_POLL_BATCH = 50   # jobs asked about per poller round, least recently asked first


def now_ms() -> int:
    return int(time.time() * 1000)


def not_found(job_id: str) -> GatewayError:
    return GatewayError(404, "not_found", f"video '{job_id[:80]}' not found", param="video_id", code="video_not_found")


async def job_of(gw: Gateway, key_id: int, job_id: str) -> Row[Any]:
    """The key's job, or 404 (another key's job is answered exactly like a missing one)."""
    row = await store.get_job(gw.engine, job_id, key_id)
    if row is None:
        raise not_found(job_id)
    return row


def owner(gw: Gateway, row: Row[Any]) -> Channel | None:
    """The channel that holds the job upstream, if the config still has it."""
    for channel in gw.catalog.now.channels:
        if channel.name == row.channel:
            return channel
    return None


async def _ask(gw: Gateway, channel: Channel, row: Row[Any], suffix: str = "", method: bytes = b"GET") -> bytes:
    url = f"{channel.url('videos', row.upstream_model, False)}/{row.upstream_id}{suffix}"
    resp = await open_upstream(gw.http, channel, row.upstream_model, b"", False,
                               PROTOCOLS[channel.protocol].parse_error, url=url, method=method)
    return await read_all(resp, channel)


async def refresh(gw: Gateway, row: Row[Any]) -> Row[Any]:
    """Ask the owning channel about an open job and apply the answer; the job as it now stands.
    An upstream that cannot be reached leaves the job as it was (asked again on the next poll)."""
    if row.status not in store.OPEN:
        return row
    channel = owner(gw, row)
    if channel is None:
        return row
    try:
        up = wire.parse_job(await _ask(gw, channel, row))
    except GatewayError as err:
        if err.status != 404:
            log.warning("video %s: channel '%s' could not be asked: %s", row.id, channel.name, err.message)
            return row
        # the upstream no longer knows the job: it failed, and costs nothing
        up = wire.UpstreamJob(row.upstream_id, "failed",
                              error=wire.UpstreamError("video_not_found", "the upstream no longer has this job"))
    async with gw.engine.begin() as conn:
        await apply(conn, row, up)
        fresh = await store.reread(conn, row.id)
    return fresh if fresh is not None else row


async def apply(conn: Any, row: Row[Any], up: wire.UpstreamJob) -> bool:
    """Apply an upstream's state to an open job, in the caller's transaction; a final state also
    bills the job. False if another process or poll had moved the job already."""
    now = now_ms()
    final = up.status not in store.OPEN
    moved = await store.advance(conn, row.id, up.status, wire.progress_of(up), now, wire.error_json(up),
                                (up.completed_at * 1000 if up.completed_at else now) if final else None)
    if moved and final:
        await bill(conn, row, completed=up.status == "completed", now=now,
                   error=None if up.status == "completed" else "video generation failed")
    return moved


async def bill(conn: Any, row: Row[Any], completed: bool, now: int, error: str | None, status: int = 200) -> None:
    """Close the job's hold (charge on completion, refund otherwise) and log it, once."""
    if not await store.mark_billed(conn, row.id):
        return
    cost = row.cost_micros if completed else 0
    charged = cost if row.held_micros == 0 else min(cost, row.held_micros)
    await holds.close(conn, row.key_id, row.held_micros, charged)
    await insert_logs(conn, [{
        "created_at": now, "key_id": row.key_id, "surface": LOG_SURFACE, "model": row.model,
        "upstream_model": row.upstream_model, "channel": row.channel,
        "status": status if completed else (status if status != 200 else 502), "stream": False,
        "prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0, "cache_write_tokens": 0,
        "reasoning_tokens": 0, "usage_estimated": False, "cost_micros": cost, "charged_micros": charged,
        "latency_ms": max(0, now - row.created_at), "ttfb_ms": None, "attempts": 1,
        "error": error, "request_id": None, "dropped": None,
    }])


async def delete(gw: Gateway, key_id: int, job_id: str) -> Reply:
    """Delete the job upstream and here; a job deleted before completion is refunded in full."""
    row = await job_of(gw, key_id, job_id)
    channel = owner(gw, row)
    if channel is not None:
        try:
            await _ask(gw, channel, row, method=b"DELETE")
        except GatewayError as err:
            if err.status != 404:   # already gone upstream: deleted here too
                raise
    async with gw.engine.begin() as conn:
        await bill(conn, row, completed=row.status == "completed", now=now_ms(),
                   error="deleted before completion", status=499)
        await store.delete_job(conn, row.id)
    return Reply(200, wire.render_deleted(row.id))


async def content(gw: Gateway, key_id: int, job_id: str, variant: str) -> StreamReply:
    """The job's video (or thumbnail, spritesheet), streamed through as the upstream sends it."""
    row = await refresh(gw, await job_of(gw, key_id, job_id))
    if row.status != "completed":
        raise GatewayError(400, "invalid_request", f"video '{row.id}' is not completed (status: {row.status})",
                           param="video_id")
    channel = owner(gw, row)
    if channel is None:
        raise GatewayError(502, "upstream", f"the channel '{row.channel}' that made video '{row.id}' is no "
                           "longer configured")
    url = f"{channel.url('videos', row.upstream_model, False)}/{row.upstream_id}/content?variant={variant}"
    resp = await open_upstream(gw.http, channel, row.upstream_model, b"", True,
                               PROTOCOLS[channel.protocol].parse_error, url=url, method=b"GET")
    headers: list[tuple[bytes, bytes]] = []
    length = resp.header(b"content-length")
    if length is not None and resp.header(b"content-encoding") is None:   # a compressed body arrives inflated
        headers.append((b"content-length", length))
    kind = (resp.header(b"content-type") or b"application/octet-stream").decode("latin-1")

    async def produce(write: Write) -> None:
        sent = 0
        try:
            while True:
                with upstream_errors(channel.name):
                    chunk = await resp.readany()
                if not chunk:
                    return
                await write(chunk)   # waits while the client is slow: the upstream is read no faster
                sent += len(chunk)
        except GatewayError as err:
            log.warning("video %s: content cut after %d bytes: %s", row.id, sent, err.message)
            raise StreamAborted() from None
        finally:
            resp.close()

    return StreamReply(produce, content_type=kind, headers=headers)


class VideoPoller:
    """Advances open jobs in the background (bounded: one batch a round, one upstream call at a
    time), so a job completes and is billed even if its client never polls again. Several
    processes may poll one job; the compare-and-set transitions keep that harmless."""

    def __init__(self, gw: Gateway, interval: float = POLL_INTERVAL_S) -> None:
        self._gw = gw
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._interval > 0:
            self._task = asyncio.create_task(self._run(), name="video-poller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("video poller round failed")

    async def round(self) -> int:
        """Ask about the open jobs not asked about within the interval; how many were asked."""
        rows = await store.open_jobs(self._gw.engine, now_ms() - int(self._interval * 1000), _POLL_BATCH)
        for row in rows:
            await store.touch(self._gw.engine, row.id, now_ms())
            await refresh(self._gw, row)
        return len(rows)
