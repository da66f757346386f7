"""Request log rows: appended in batches, summed for the billing endpoints."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from polyrelay.store.tables import api_keys, request_logs

_LOG_COLUMNS = [c.name for c in request_logs.columns if c.name != "id"]


def placeholders(paramstyle: str, count: int) -> str:
    """`count` parameter markers in the driver's own style, for a driver-level executemany."""
    if paramstyle == "qmark":
        return ", ".join("?" for _ in range(count))
    if paramstyle == "numeric_dollar":
        return ", ".join(f"${i + 1}" for i in range(count))
    return ", ".join("%s" for _ in range(count))


async def insert_logs(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """One driver-level executemany: SQLAlchemy's per-row parameter processing was a visible share of
    the gateway's CPU in the profile, and these rows need none of it."""
    if rows:
        sql = (f"INSERT INTO request_logs ({', '.join(_LOG_COLUMNS)}) "
               f"VALUES ({placeholders(conn.dialect.paramstyle, len(_LOG_COLUMNS))})")
        await conn.exec_driver_sql(sql, [tuple(row.get(c) for c in _LOG_COLUMNS) for row in rows])


async def charged_between(engine: AsyncEngine, key_id: int, start_ms: int, end_ms: int) -> int:
    """Micro-dollars charged to `key_id` for requests logged in [start_ms, end_ms)."""
    query = select(func.coalesce(func.sum(request_logs.c.charged_micros), 0)).where(
        request_logs.c.key_id == key_id,
        request_logs.c.created_at >= start_ms,
        request_logs.c.created_at < end_ms,
    )
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def recent_logs(engine: AsyncEngine, limit: int = 50) -> list[dict[str, Any]]:
    """The newest rows first, each with `key_name` (None when the key row is gone or was never known)."""
    query = (select(request_logs, api_keys.c.name.label("key_name"))
             .select_from(request_logs.outerjoin(api_keys, api_keys.c.id == request_logs.c.key_id))
             .order_by(request_logs.c.id.desc()).limit(limit))
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in (await conn.execute(query)).all()]
