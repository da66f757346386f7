"""Stored Responses API responses (`store: true`), owned by the key that made them.

`responses` holds, per response id the client was answered with: the owning key, the request's own
input items and its other fields (JSON), the response object as served without its `output`, the
output items (JSON), and the time after which the periodic purge removes the row (`expires_at`).
A row with `stored` false is an ownership stub: the response was too large to keep, but its id stays
bound to its key (docs/responses.md).

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("key_id", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("previous_response_id", sa.String(128), nullable=True),
        sa.Column("stored", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("input_items", sa.Text, nullable=False, server_default="[]"),
        sa.Column("request", sa.Text, nullable=False, server_default="{}"),
        sa.Column("output_items", sa.Text, nullable=False, server_default="[]"),
        sa.Column("usage", sa.Text, nullable=True),
        sa.Column("response", sa.Text, nullable=False, server_default="{}"),
    )
    op.create_index("ix_responses_expires_at", "responses", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_responses_expires_at", table_name="responses")
    op.drop_table("responses")
