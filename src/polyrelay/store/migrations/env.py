"""Alembic environment: runs on the connection polyrelay hands over (see store/db.py)."""

from alembic import context

from polyrelay.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through polyrelay (polyrelay.store.db.migrate)")
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
