"""Keys, leases and request logs.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("key_prefix", sa.String(16), nullable=False),
        sa.Column("quota_micros", sa.BigInteger, nullable=True),
        sa.Column("spent_micros", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("leased_micros", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("models", sa.Text, nullable=False, server_default="[]"),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("source", sa.String(16), nullable=False, server_default="cli"),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "leases",
        sa.Column("holder", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.Integer, primary_key=True),
        sa.Column("amount_micros", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "request_logs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("key_id", sa.Integer, nullable=True),
        sa.Column("surface", sa.String(32), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("upstream_model", sa.String(128), nullable=True),
        sa.Column("channel", sa.String(128), nullable=True),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("stream", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("completion_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cached_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cache_write_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("reasoning_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("usage_estimated", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("cost_micros", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("charged_micros", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("latency_ms", sa.Integer, nullable=False, server_default="0"),
        sa.Column("ttfb_ms", sa.Integer, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_request_logs_key_created", "request_logs", ["key_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_request_logs_key_created", "request_logs")
    op.drop_table("request_logs")
    op.drop_table("leases")
    op.drop_table("api_keys")
