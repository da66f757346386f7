"""The database a command works on: chosen like `serve` chooses it, named on stderr, never created by
a command that only reads, and every failure to use it one line with exit code 2."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from polyrelay.store.db import DEFAULT_DATABASE_URL, DatabaseURLError, create_engine, migrate

T = TypeVar("T")

DatabaseOption = Annotated[str | None, typer.Option(
    "--database", metavar="URL",
    help="database URL, e.g. sqlite:///./polyrelay.db or postgresql://user:pw@host/db "
         "(default: $POLYRELAY_DATABASE_URL, else sqlite:///./polyrelay.db)")]

_HOW = {
    "--database": "from --database",
    "POLYRELAY_DATABASE_URL": "from POLYRELAY_DATABASE_URL",
    "default": "the default, ./polyrelay.db in the current directory",
    "temporary": "temporary: deleted when the demo stops; --database URL keeps one",
}
POINT_AT_IT = "name the gateway's database with --database URL or POLYRELAY_DATABASE_URL"


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"polyrelay: {message}", err=True)
    raise typer.Exit(code)


@dataclass(frozen=True)
class Database:
    url: str
    source: str  # "--database", "POLYRELAY_DATABASE_URL", "default" or "temporary" (the demo's own)

    @property
    def sqlite_path(self) -> Path | None:
        """The absolute file of a SQLite URL; None for another database or an in-memory one."""
        try:
            parsed = make_url(self.url)
        except Exception:
            return None
        if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
            return None
        # SQLite's URI form (sqlite:///file:/path/x.db?mode=ro&uri=true): the file after `file:`
        return Path(parsed.database.removeprefix("file:")).resolve()

    @property
    def in_memory(self) -> bool:
        return self.url.startswith("sqlite") and self.sqlite_path is None

    def describe(self) -> str:
        """Where the data is (file or URL without its password) and why this one."""
        path = self.sqlite_path
        if path is not None:
            where = str(path)
        elif self.in_memory:
            where = "SQLite in memory"
        else:
            try:
                where = make_url(self.url).render_as_string(hide_password=True)
            except Exception:
                where = "(unparsable URL)"
        return f"{where} ({_HOW[self.source]})"


def choose(option: str | None) -> Database:
    """--database, else POLYRELAY_DATABASE_URL, else ./polyrelay.db: the order `serve` uses."""
    if option:
        return Database(option, "--database")
    env = os.environ.get("POLYRELAY_DATABASE_URL")
    if env:
        return Database(env, "POLYRELAY_DATABASE_URL")
    return Database(DEFAULT_DATABASE_URL, "default")


def open_engine(db: Database) -> AsyncEngine:
    try:
        return create_engine(db.url, source=db.source)
    except DatabaseURLError as e:
        fail(str(e))


def one_line(error: BaseException) -> str:
    """The driver's own message (SQLAlchemy wraps it with a link and the SQL), first line only."""
    inner = getattr(error, "orig", None) or error
    text = str(inner).strip().splitlines()
    return text[0] if text else type(inner).__name__


async def has_schema(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: inspect(c).has_table("api_keys"))


def run(db: Database, work: Callable[[AsyncEngine], Awaitable[T]], *, create: bool,
        announce: bool = True, check: Callable[[AsyncEngine], Awaitable[None]] | None = None) -> T:
    """Run `work` on the up-to-date schema of `db`.

    `create=False` (commands that read or change what exists) refuses a database that does not exist
    or holds no gateway tables, rather than making an empty one. `check` looks at an existing
    database before anything is written to it (migrations included). A duplicate name (IntegrityError)
    propagates for the caller to word; any other database failure is one line and exit code 2.
    """
    engine = open_engine(db)
    path = db.sqlite_path
    missing = db.in_memory or (path is not None and not path.exists())
    if missing and not create:
        fail(f"no database at {db.describe()}: {POINT_AT_IT}")
    if create and path is not None and not path.parent.is_dir():
        fail(f"cannot create the database {path}: directory {path.parent} does not exist")

    async def go() -> T:
        try:
            if not create and not await has_schema(engine):
                fail(f"{db.describe()} holds no polyrelay tables (not a gateway database): {POINT_AT_IT}")
            if check is not None and not missing:
                await check(engine)
            await migrate(engine)
            result = await work(engine)
            if announce:   # after the work: a failure is one line that names the database itself
                typer.echo(f"polyrelay: database {db.describe()}{', created now' if missing else ''}", err=True)
            return result
        finally:
            await engine.dispose()

    try:
        return asyncio.run(go())
    except IntegrityError:
        raise
    except (SQLAlchemyError, OSError) as e:
        problem = one_line(e)
        hint = " (can this user write there?)" if path is not None and "unable to open" in problem else ""
        fail(f"cannot use the database {db.describe()}: {problem}{hint}")
