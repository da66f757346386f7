"""Stored Responses API responses: read one, list its input items, delete it. A key sees only its own
(another key's is a 404, as an unknown id); see relay/stored_responses.py and docs/responses.md."""

from __future__ import annotations

import msgspec

from polyrelay.errors import invalid_request
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.replies import Reply
from polyrelay.relay.stored_responses import listed_input_items, response_json, response_not_found
from polyrelay.server.asgi import Scope
from polyrelay.server.keys import bearer, query_params
from polyrelay.server.route import Params, Route
from polyrelay.store.keys import KeyRecord
from polyrelay.store.responses import StoredResponse

MAX_LIMIT = 100
DEFAULT_LIMIT = 20


async def _owned(gw: Gateway, key: KeyRecord, response_id: str) -> StoredResponse:
    row = await gw.responses.find(response_id)
    if row is None or row.key_id != key.id or not row.stored:
        raise response_not_found(response_id)
    return row


async def retrieve(gw: Gateway, scope: Scope, body: bytes, key: KeyRecord, params: Params) -> Reply:
    return Reply(200, response_json(await _owned(gw, key, params["response_id"])))


async def input_items(gw: Gateway, scope: Scope, body: bytes, key: KeyRecord, params: Params) -> Reply:
    """OpenAI's list shape; `order` (default desc: newest first), `after` (an item id), `limit` (1-100)."""
    query = query_params(scope)
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid_request("'order' must be 'asc' or 'desc'", "order")
    limit_text = query.get("limit", str(DEFAULT_LIMIT))
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
        raise invalid_request(f"'limit' must be an integer from 1 to {MAX_LIMIT}", "limit")
    limit = int(limit_text)
    response_id = params["response_id"]
    await _owned(gw, key, response_id)
    items = listed_input_items(await gw.responses.chain(response_id))
    if order == "desc":
        items.reverse()
    start = 0
    after = query.get("after")
    if after:
        start = next((i + 1 for i, item in enumerate(items) if item["id"] == after), -1)
        if start < 0:
            raise invalid_request(f"no input item with id '{after}' in response '{response_id}'", "after")
    page = items[start:start + limit]
    return Reply(200, msgspec.json.encode({
        "object": "list", "data": page,
        "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None,
        "has_more": start + limit < len(items),
    }))


async def delete(gw: Gateway, scope: Scope, body: bytes, key: KeyRecord, params: Params) -> Reply:
    response_id = params["response_id"]
    row = await _owned(gw, key, response_id)
    if not await gw.responses.delete(response_id, row.key_id):
        raise response_not_found(response_id)   # deleted meanwhile
    return Reply(200, msgspec.json.encode({"id": response_id, "object": "response", "deleted": True}))


ROUTES = [
    Route("GET", "/v1/responses/{response_id}", retrieve, key=bearer),
    Route("GET", "/v1/responses/{response_id}/input_items", input_items, key=bearer),
    Route("DELETE", "/v1/responses/{response_id}", delete, key=bearer),
]
