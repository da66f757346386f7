"""SQLAlchemy Core tables. Money columns are integer micro-dollars."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

api_keys = Table(
    "api_keys", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(16), nullable=False),
    Column("quota_micros", BigInteger, nullable=True),         # NULL = unlimited
    Column("spent_micros", BigInteger, nullable=False, default=0),
    # Reserved by running gateway processes (sum of their leases); quota - spent - leased >= 0 always.
    Column("leased_micros", BigInteger, nullable=False, default=0),
    Column("models", Text, nullable=False, default="[]"),        # JSON allowlist; [] = every model
    Column("enabled", Boolean, nullable=False, default=True),
    # config | config-removed (left the config: disabled) | cli | admin
    Column("source", String(16), nullable=False, default="cli"),
    Column("created_at", BigInteger, nullable=False),
)

# A gateway process's hold on part of a key's quota. Refreshed while the process lives; an expired
# lease (crashed process) is refunded to the key by whoever sweeps next.
leases = Table(
    "leases", metadata,
    Column("holder", String(64), primary_key=True),
    Column("key_id", Integer, primary_key=True),
    Column("amount_micros", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

# The newest batch of each gateway process's journal (billing/journal.py) that is in the database:
# written in the same transaction as the batch, so replaying a dead process's journal is exact.
ledger_batches = Table(
    "ledger_batches", metadata,
    Column("holder", String(64), primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
)

request_logs = Table(
    "request_logs", metadata,
    # 64-bit on Postgres (migration 0002); SQLite's INTEGER PRIMARY KEY is its 64-bit rowid already
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("created_at", BigInteger, nullable=False),        # unix milliseconds
    Column("key_id", Integer, nullable=True),
    Column("surface", String(32), nullable=False),
    Column("model", String(128), nullable=False),
    Column("upstream_model", String(128), nullable=True),
    Column("channel", String(128), nullable=True),
    Column("status", Integer, nullable=False),
    Column("stream", Boolean, nullable=False, default=False),
    Column("prompt_tokens", Integer, nullable=False, default=0),
    Column("completion_tokens", Integer, nullable=False, default=0),
    Column("cached_tokens", Integer, nullable=False, default=0),
    Column("cache_write_tokens", Integer, nullable=False, default=0),
    Column("reasoning_tokens", Integer, nullable=False, default=0),
    Column("usage_estimated", Boolean, nullable=False, default=False),
    Column("cost_micros", BigInteger, nullable=False, default=0),     # what the usage cost
    Column("charged_micros", BigInteger, nullable=False, default=0),  # what the key paid (= cost unless quota ran out)
    Column("latency_ms", Integer, nullable=False, default=0),
    Column("ttfb_ms", Integer, nullable=True),
    Column("attempts", Integer, nullable=False, default=1),
    Column("error", Text, nullable=True),
    Column("request_id", String(32), nullable=True),           # the x-request-id answered (0003)
    Column("dropped", Text, nullable=True),   # request fields the conversion could not carry (0004)
)
Index("ix_request_logs_key_created", request_logs.c.key_id, request_logs.c.created_at)


# Responses API responses kept for `previous_response_id` and GET/DELETE /v1/responses/{id} (0005).
# JSON columns are text; `response` is the response object as served, without `output` (its own column).
responses = Table(
    "responses", metadata,
    Column("id", String(128), primary_key=True),          # the id the client was answered with
    Column("key_id", Integer, nullable=False),             # the owner: only it may read, continue or delete
    Column("created_at", BigInteger, nullable=False),      # unix seconds (the response's own created_at)
    Column("expires_at", BigInteger, nullable=False),      # unix seconds; purged after (responses.retention_days)
    Column("model", String(128), nullable=False),          # the public model name
    Column("status", String(32), nullable=False),          # completed | incomplete | failed
    Column("previous_response_id", String(128), nullable=True),
    Column("stored", Boolean, nullable=False, default=True),   # False: too large, an ownership stub only
    Column("input_items", Text, nullable=False, default="[]"),  # the request's own input items (JSON list)
    Column("request", Text, nullable=False, default="{}"),      # the request's other fields (JSON object)
    Column("output_items", Text, nullable=False, default="[]"),  # the response's output (JSON list)
    Column("usage", Text, nullable=True),                        # the response's usage (JSON object)
    Column("response", Text, nullable=False, default="{}"),     # the response object without output
)
Index("ix_responses_expires_at", responses.c.expires_at)

# Sora video jobs (relay/videos.py, migration 0006). The gateway's `id` maps to the channel that owns
# the job and its id there. `held_micros` is the job's reservation, made durable: counted in the key's
# `leased_micros` (moved out of the creating process's lease in the create transaction), so neither a
# restart nor the sweep of that process's lease gives it back; `billed` flips from false to true once,
# by compare-and-set, in the one transaction that settles or refunds the hold and writes the log row.
video_jobs = Table(
    "video_jobs", metadata,
    Column("id", String(64), primary_key=True),
    Column("key_id", Integer, nullable=False),
    Column("channel", String(128), nullable=False),
    Column("upstream_id", String(256), nullable=False),
    Column("model", String(128), nullable=False),
    Column("upstream_model", String(128), nullable=False),
    Column("status", String(16), nullable=False),        # queued | in_progress | completed | failed
    Column("progress", Integer, nullable=False, default=0),
    Column("seconds", Integer, nullable=False),
    Column("size", String(32), nullable=False),
    Column("prompt", Text, nullable=True),
    Column("remixed_from", String(64), nullable=True),    # the gateway id of the source video
    Column("error", Text, nullable=True),                 # the failure as JSON {code, message}
    Column("held_micros", BigInteger, nullable=False),    # the durable hold (0 for unlimited keys)
    Column("cost_micros", BigInteger, nullable=False),    # seconds x per_second at the price of the create
    Column("billed", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),     # unix milliseconds
    Column("completed_at", BigInteger, nullable=True),
    Column("polled_at", BigInteger, nullable=False, default=0),   # last asked upstream (ms)
)
Index("ix_video_jobs_key_created", video_jobs.c.key_id, video_jobs.c.created_at)
Index("ix_video_jobs_open", video_jobs.c.billed, video_jobs.c.polled_at)
