"""Stored Responses API responses: written in batches, read one at a time or as a chain, deleted by
their owner, purged when expired. Ownership is checked by the caller (relay.stored_responses): these
queries say what is stored, so that "another key's" and "unknown" can be told apart there."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import Select, bindparam, delete, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from polyrelay.store.logs import placeholders
from polyrelay.store.tables import responses

MAX_CHAIN = 10_000   # links followed from one previous_response_id (a guard, never reached by real use)
# what the columns hold (a longer value would fail the whole batch on Postgres: rows are checked first)
MAX_ID_CHARS = 128
MAX_MODEL_CHARS = 128
MAX_STATUS_CHARS = 32
MAX_TIME = 2**40     # unix seconds; an upstream's absurd created_at is replaced by the time it was stored


class StoredResponse(msgspec.Struct):
    """One row of `responses`; the JSON columns stay text until someone needs them."""

    id: str
    key_id: int
    created_at: int
    expires_at: int
    model: str
    status: str
    previous_response_id: str | None
    stored: bool               # False: an ownership stub (the response was too large to keep)
    input_items: str           # JSON list: the request's own input items
    request: str               # JSON object: the request's other fields
    output_items: str          # JSON list
    usage: str | None          # JSON object
    response: str              # JSON object: the response as served, without `output`

    def size(self) -> int:
        return len(self.input_items) + len(self.request) + len(self.output_items) + len(self.response)


_FIELDS = StoredResponse.__struct_fields__


async def insert_responses(engine: AsyncEngine, rows: Sequence[StoredResponse]) -> None:
    """One driver-level executemany for the batch (as the request log's rows: SQLAlchemy's per-row
    parameter processing would cost more than the rows need); an id already stored is left as it is
    (the first writer owns it)."""
    if not rows:
        return
    async with engine.begin() as conn:
        values = placeholders(conn.dialect.paramstyle, len(_FIELDS))
        sql = f"INSERT INTO responses ({', '.join(_FIELDS)}) VALUES ({values}) ON CONFLICT (id) DO NOTHING"
        await conn.exec_driver_sql(sql, [msgspec.structs.astuple(row) for row in rows])


def _row(mapping: object) -> StoredResponse:
    return StoredResponse(**{name: getattr(mapping, name) for name in _FIELDS})


async def _find(conn: AsyncConnection, response_id: str, now: int) -> StoredResponse | None:
    query = select(*(responses.c[name] for name in _FIELDS)).where(
        responses.c.id == response_id, responses.c.expires_at > now)
    row = (await conn.execute(query)).first()
    return None if row is None else _row(row)


async def find_response(engine: AsyncEngine, response_id: str, now: int) -> StoredResponse | None:
    """The unexpired response stored under `response_id`, whoever owns it."""
    async with engine.connect() as conn:
        return await _find(conn, response_id, now)


async def find_chain(engine: AsyncEngine, response_id: str, now: int,
                     known: dict[str, StoredResponse] | None = None) -> list[StoredResponse]:
    """`response_id` and the responses before it (following previous_response_id), newest first;
    empty when `response_id` is not stored. The walk stops at a link that is gone (purged, deleted),
    belongs to another key than the first, or was seen already. `known` holds rows not yet written
    (the writer's queue, whose rows come after the written ones), looked at before the database;
    the written part of the chain is one recursive query, however long."""
    chain: list[StoredResponse] = []
    next_id: str | None = response_id
    while known and next_id is not None and next_id in known:
        row = known[next_id]
        if (chain and row.key_id != chain[0].key_id) or len(chain) >= MAX_CHAIN:
            return chain
        chain.append(row)
        next_id = row.previous_response_id
    if next_id is None:
        return chain
    async with engine.connect() as conn:
        rows = (await conn.execute(_CHAIN, {"response_id": next_id, "now": now})).all()
    seen = {row.id for row in chain}
    for found in rows:
        row = _row(found)
        if (chain and row.key_id != chain[0].key_id) or row.id in seen:
            break
        seen.add(row.id)
        chain.append(row)
    return chain


def _chain_query() -> Select[Any]:
    """WITH RECURSIVE: the row, then each previous one of the same key, with its depth (the depth
    bound ends a cycle, which only hand-made rows could form)."""
    r = responses
    start = (select(r.c.id, r.c.previous_response_id, r.c.key_id, literal(0).label("depth"))
             .where(r.c.id == bindparam("response_id"), r.c.expires_at > bindparam("now"))
             .cte("chain", recursive=True))
    step = (select(r.c.id, r.c.previous_response_id, r.c.key_id, (start.c.depth + 1).label("depth"))
            .join(start, r.c.id == start.c.previous_response_id)
            .where(r.c.key_id == start.c.key_id, r.c.expires_at > bindparam("now"), start.c.depth < MAX_CHAIN - 1))
    chain = start.union_all(step)
    return (select(*(r.c[name] for name in _FIELDS)).join(chain, r.c.id == chain.c.id)
            .order_by(chain.c.depth))


_CHAIN = _chain_query()


async def delete_response(engine: AsyncEngine, response_id: str, key_id: int) -> bool:
    """Delete `key_id`'s response `response_id`; False when it has none by that id."""
    async with engine.begin() as conn:
        result = await conn.execute(delete(responses).where(
            responses.c.id == response_id, responses.c.key_id == key_id))
    return bool(result.rowcount)


async def purge_expired(engine: AsyncEngine, now: int) -> int:
    """Delete every response whose retention ended; return how many."""
    async with engine.begin() as conn:
        result = await conn.execute(delete(responses).where(responses.c.expires_at <= now))
    return int(result.rowcount or 0)
