"""Request log ids are 64-bit on Postgres.

0001 made request_logs.id an INTEGER: on SQLite that is the 64-bit rowid, on Postgres a SERIAL, whose
int4 column and sequence run out after 2,147,483,647 logged requests. Postgres only (SQLite: nothing
to do); the ALTER rewrites the table, so it takes a while on a large existing one.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column("request_logs", "id", type_=sa.BigInteger, existing_type=sa.Integer,
                    existing_nullable=False)
    op.execute("DO $$ BEGIN EXECUTE format('ALTER SEQUENCE %s AS bigint', "
               "pg_get_serial_sequence('request_logs', 'id')); END $$")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DO $$ BEGIN EXECUTE format('ALTER SEQUENCE %s AS integer', "
               "pg_get_serial_sequence('request_logs', 'id')); END $$")
    op.alter_column("request_logs", "id", type_=sa.Integer, existing_type=sa.BigInteger,
                    existing_nullable=False)
