"""Video job rows (`video_jobs`, migration 0006): every change of state is one compare-and-set
UPDATE (`WHERE status IN open states`, `WHERE billed = false`), so two processes, or a poll and the
background poller, never both apply a transition, and a job's hold is closed exactly once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from polyrelay.store.tables import video_jobs

OPEN = ("queued", "in_progress")


async def insert_job(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(insert(video_jobs).values(**values))


async def get_job(engine: AsyncEngine, job_id: str, key_id: int) -> Row[Any] | None:
    """The job, if it is `key_id`'s (another key's job does not exist, as far as the caller knows)."""
    async with engine.connect() as conn:
        return (await conn.execute(select(video_jobs).where(
            video_jobs.c.id == job_id, video_jobs.c.key_id == key_id))).first()


async def list_jobs(engine: AsyncEngine, key_id: int, after: str | None, limit: int,
                    descending: bool) -> tuple[list[Row[Any]], bool]:
    """A page of `key_id`'s jobs by creation time (then id), after the job `after`; and whether
    there are more."""
    order = (video_jobs.c.created_at.desc(), video_jobs.c.id.desc()) if descending else \
        (video_jobs.c.created_at.asc(), video_jobs.c.id.asc())
    query = select(video_jobs).where(video_jobs.c.key_id == key_id)
    async with engine.connect() as conn:
        if after:
            cursor = (await conn.execute(select(video_jobs.c.created_at).where(
                video_jobs.c.id == after, video_jobs.c.key_id == key_id))).scalar()
            if cursor is None:
                return [], False
            created, ident = video_jobs.c.created_at, video_jobs.c.id
            query = query.where(or_(created < cursor, and_(created == cursor, ident < after)) if descending
                                else or_(created > cursor, and_(created == cursor, ident > after)))
        rows = list((await conn.execute(query.order_by(*order).limit(limit + 1))).all())
    return rows[:limit], len(rows) > limit


async def advance(conn: AsyncConnection, job_id: str, status: str, progress: int, polled_at: int,
                  error: str | None = None, completed_at: int | None = None) -> bool:
    """Move an open job to `status` (open or final); False if it was no longer open (someone else
    moved it first, or it was deleted)."""
    result = await conn.execute(update(video_jobs).where(
        video_jobs.c.id == job_id, video_jobs.c.status.in_(OPEN),
    ).values(status=status, progress=progress, polled_at=polled_at, error=error, completed_at=completed_at))
    return bool(result.rowcount == 1)


async def mark_billed(conn: AsyncConnection, job_id: str) -> bool:
    """Take the right to close the job's hold: True for exactly one caller, ever."""
    result = await conn.execute(update(video_jobs).where(
        video_jobs.c.id == job_id, video_jobs.c.billed.is_(False)).values(billed=True))
    return bool(result.rowcount == 1)


async def touch(engine: AsyncEngine, job_id: str, polled_at: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(video_jobs).where(video_jobs.c.id == job_id).values(polled_at=polled_at))


async def delete_job(conn: AsyncConnection, job_id: str) -> None:
    await conn.execute(delete(video_jobs).where(video_jobs.c.id == job_id))


async def open_jobs(engine: AsyncEngine, polled_before: int, limit: int) -> list[Row[Any]]:
    """Open jobs not asked about since `polled_before`, least recently asked first (the poller)."""
    async with engine.connect() as conn:
        return list((await conn.execute(select(video_jobs).where(
            video_jobs.c.billed.is_(False), video_jobs.c.status.in_(OPEN),
            video_jobs.c.polled_at < polled_before,
        ).order_by(video_jobs.c.polled_at).limit(limit))).all())


async def reread(conn: AsyncConnection, job_id: str) -> Row[Any] | None:
    return (await conn.execute(select(video_jobs).where(video_jobs.c.id == job_id))).first()
