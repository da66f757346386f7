"""Engine creation and migrations. SQLite (WAL) by default; Postgres through asyncpg (the optional
extra `polyrelay[postgres]`; the tests run it against a real server, see tests/pg.py)."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

DEFAULT_DATABASE_URL = "sqlite:///./polyrelay.db"
_MIGRATIONS = Path(__file__).parent / "migrations"


def database_url() -> str:
    return os.environ.get("POLYRELAY_DATABASE_URL") or DEFAULT_DATABASE_URL


class DatabaseURLError(ValueError):
    """POLYRELAY_DATABASE_URL cannot be used; the message is one line for the operator."""


def async_url(url: str, source: str = "POLYRELAY_DATABASE_URL") -> str:
    """Map a plain database URL to its async driver (`sqlite:` -> aiosqlite, `postgresql:` -> asyncpg).

    Postgres needs the optional extra `polyrelay[postgres]` (asyncpg). `source` names where the URL
    came from (the environment variable or a command line option) in the one-line error.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise DatabaseURLError(f"{source}: not a database URL (use sqlite:///FILE or "
                               "postgresql://user:pw@host/db)")
    base = scheme.split("+", 1)[0]
    driver = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg",
              "postgres": "postgresql+asyncpg"}.get(base)
    if driver is None:
        raise DatabaseURLError(f"{source}: unsupported database {base!r}: "
                               "use sqlite:// or postgresql://")
    if base == "sqlite" and rest and not rest.startswith("/"):
        # sqlite://name.db reads `name.db` as a host name and SQLAlchemy fails deep inside
        raise DatabaseURLError(f"{source}: {url} has two slashes: a SQLite file is sqlite:///{rest} "
                               f"(three slashes, relative path) or sqlite:////abs/path.db (four, absolute)")
    if driver == "postgresql+asyncpg":
        try:
            import asyncpg  # noqa: F401
        except ImportError:
            raise DatabaseURLError(f"{source}: postgresql needs the asyncpg driver: "
                                   "pip install 'polyrelay[postgres]'") from None
    return f"{driver}://{rest}"


def create_engine(url: str | None = None, source: str = "POLYRELAY_DATABASE_URL") -> AsyncEngine:
    url = async_url(url or database_url(), source)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    # hide_parameters: an SQL error or the debug SQL log never shows a key hash, a name or a log row
    return create_async_engine(url, pool_size=10, max_overflow=10, hide_parameters=True)


HEAD_REVISION = "0006"  # the newest file in store/migrations/versions

_START_LOCK = 0x706F6C79  # Postgres advisory lock id ("poly") taken by the start-up writes below


async def lock_for_start(conn: AsyncConnection) -> None:
    """Postgres: hold a transaction-scoped advisory lock, so that nodes starting together on one
    database migrate and upsert the config's keys one after another (the later ones find the work
    done) instead of racing to CREATE the same tables or INSERT the same key names. SQLite: nothing."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _START_LOCK})


def _current_revision(sync_conn: Connection) -> str | None:
    if not inspect(sync_conn).has_table("alembic_version"):
        return None  # a new database
    return sync_conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _upgrade(sync_conn: Connection) -> None:
    if _current_revision(sync_conn) == HEAD_REVISION:
        return  # up to date: spare the serving process Alembic's import and memory
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, "head")


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest Alembic revision."""
    async with engine.begin() as conn:
        await lock_for_start(conn)
        await conn.run_sync(_upgrade)


def driver_reason(exc: BaseException) -> str:
    """The database driver's message for a log line: first line only, without the SQL statement and
    its parameters that SQLAlchemy's wrapper adds."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).splitlines()
    return f"{type(orig).__name__}: {text[0][:200] if text else ''}"
