"""What a conversion could not carry, in the request log.

`request_logs.dropped` holds the request fields a converted request lost on its way upstream
(`field: what (why); ...`, the text of the `x-polyrelay-dropped` header), NULL when nothing was lost.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("request_logs", sa.Column("dropped", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("request_logs") as batch:
        batch.drop_column("dropped")
