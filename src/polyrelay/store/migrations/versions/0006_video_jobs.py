"""Sora video jobs: the gateway's job id, the channel and upstream id that own it, its state and
its durable quota hold (`held_micros`, inside the key's `leased_micros` until the job is billed).

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "video_jobs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.Integer, nullable=False),
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column("upstream_id", sa.String(256), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("upstream_model", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Integer, nullable=False, server_default="0"),
        sa.Column("seconds", sa.Integer, nullable=False),
        sa.Column("size", sa.String(32), nullable=False),
        sa.Column("prompt", sa.Text, nullable=True),
        sa.Column("remixed_from", sa.String(64), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("held_micros", sa.BigInteger, nullable=False),
        sa.Column("cost_micros", sa.BigInteger, nullable=False),
        sa.Column("billed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("completed_at", sa.BigInteger, nullable=True),
        sa.Column("polled_at", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_index("ix_video_jobs_key_created", "video_jobs", ["key_id", "created_at"])
    op.create_index("ix_video_jobs_open", "video_jobs", ["billed", "polled_at"])


def downgrade() -> None:
    op.drop_index("ix_video_jobs_open", "video_jobs")
    op.drop_index("ix_video_jobs_key_created", "video_jobs")
    op.drop_table("video_jobs")
