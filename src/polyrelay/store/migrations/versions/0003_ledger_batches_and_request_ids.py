"""The ledger journal's committed batches; request ids in the request log.

`ledger_batches` holds, per gateway process, the newest journal batch its flushes wrote (in the same
transaction), so a dead process's journal is replayed without charging anything twice.
`request_logs.request_id` is the `x-request-id` the client was answered with.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_batches",
        sa.Column("holder", sa.String(64), primary_key=True),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
    )
    op.add_column("request_logs", sa.Column("request_id", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("request_logs") as batch:
        batch.drop_column("request_id")
    op.drop_table("ledger_batches")
