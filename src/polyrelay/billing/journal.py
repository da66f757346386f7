"""The ledger's local append-only journal: what a process settled and has not yet written to the database.

One line per settled request (`[key_id, charged, from_lease, log_row]`), one `write()` to an O_APPEND
file, no fsync: a killed process (kill -9, OOM) loses nothing, because the kernel already holds the
bytes; an OS crash or power loss may lose the lines the kernel had not written back yet (seconds, by
the kernel's dirty-page writeback). Each flush ends a numbered batch with a marker line `["b", seq]`;
the flush transaction stores (holder, seq) in `ledger_batches`, so replay knows exactly which batches
the database already has. Files are `<tag>.<pid>-<rand>.<gen>.journal`, locked (flock) by their live
owner; an unlocked file belongs to a dead process and is replayed by whoever finds it (ledger.py).

    settle -> append line ─┐
    flush  -> mark(seq) ───┴─> commit(batches, holder/seq) -> retire files whose batches are all in
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

log = logging.getLogger("polyrelay.ledger")

ROTATE_BYTES = 4 * 1024 * 1024   # start a new file after a flush once the current one is this big
_SUFFIX = ".journal"


def journal_dir_for(url: str) -> Path | None:
    """POLYRELAY_JOURNAL_DIR, else next to a SQLite file (`<file>.ledger/`), else `./polyrelay-ledger`
    (Postgres: a node's journal is replayed when that node starts again, or by any node sharing the
    directory). None for an in-memory SQLite database: there is nothing to be durable for."""
    configured = os.environ.get("POLYRELAY_JOURNAL_DIR")
    if configured:
        return Path(configured)
    scheme, _, rest = url.partition("://")
    if scheme.startswith("sqlite"):
        path = rest[1:] if rest.startswith("/") else rest
        if not path or path == ":memory:" or "mode=memory" in path:
            return None
        return Path(path.split("?", 1)[0] + ".ledger")
    return Path("polyrelay-ledger")


def database_tag(url: str) -> str:
    """A short name of the database (no password): journals are only ever replayed into their own."""
    scheme, _, rest = url.partition("://")
    if scheme.startswith("sqlite"):
        ident = os.path.realpath(rest[1:].split("?", 1)[0]) if rest.startswith("/") else rest
    else:
        netloc, _, db = rest.partition("/")
        ident = netloc.rpartition("@")[2] + "/" + db.split("?", 1)[0]
    return hashlib.sha256(ident.encode()).hexdigest()[:12]


def _lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


@dataclass
class _File:
    path: Path
    fd: int
    last_seq: int = 0   # the newest batch marked in it


class Journal:
    """This process's journal files (the newest one is written; older ones wait for their commit)."""

    def __init__(self, directory: Path, tag: str, holder: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._dir, self._holder = directory, holder
        self._stem = f"{tag}.{os.getpid()}-{os.urandom(4).hex()}"
        self._gen = 0
        self._files: list[_File] = []
        self._encode = msgspec.json.Encoder().encode
        self._broken = False
        self._open_next()

    def _open_next(self) -> None:
        path = self._dir / f"{self._stem}.{self._gen}{_SUFFIX}"
        self._gen += 1
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        if not _lock(fd):   # a new name nobody else knows: cannot happen
            raise RuntimeError(f"journal {path} is locked by another process")
        os.write(fd, self._encode(("h", self._holder)) + b"\n")
        self._files.append(_File(path, fd))

    def append(self, key_id: int | None, charged: int, from_lease: bool, row: dict[str, Any] | None) -> None:
        try:
            os.write(self._files[-1].fd, self._encode((key_id, charged, from_lease, row)) + b"\n")
        except OSError as e:
            if not self._broken:   # disk full: keep serving; the database write is still tried
                self._broken = True
                log.error("ledger journal %s cannot be written (%s): spend settled now is lost if "
                          "this process dies before its next successful flush", self._files[-1].path, e)

    def mark(self, seq: int) -> None:
        """Close batch `seq` (every line written since the previous mark)."""
        current = self._files[-1]
        try:
            os.write(current.fd, self._encode(("b", seq)) + b"\n")
            current.last_seq = seq
            if os.fstat(current.fd).st_size >= ROTATE_BYTES:
                self._open_next()
        except OSError as e:
            log.error("ledger journal %s: cannot mark batch %d (%s)", current.path, seq, e)

    def committed(self, seq: int) -> None:
        """Batches up to `seq` are in the database: drop the older files that hold nothing newer."""
        while len(self._files) > 1 and self._files[0].last_seq <= seq:
            self._remove(self._files.pop(0))

    def close(self, delete: bool) -> None:
        """Graceful stop. `delete` only once everything is in the database; else the files stay for
        the next start (closing them releases the locks, which marks them as a dead process's)."""
        for f in self._files:
            if delete:
                self._remove(f)
            else:
                os.close(f.fd)
        self._files = []

    def _remove(self, f: _File) -> None:
        with contextlib.suppress(FileNotFoundError):
            f.path.unlink()
        os.close(f.fd)


# ---- replay: the journals of dead processes ---------------------------------------------------------

@dataclass
class DeadJournal:
    """The files of one dead process, locked by the replayer while it works on them."""

    holder: str
    files: list[tuple[Path, int]] = field(default_factory=list)   # (path, locked fd), in write order
    # batch seq -> its lines; lines after the last marker get the next seq
    batches: list[tuple[int, list[tuple[int | None, int, bool, dict[str, Any] | None]]]] = field(
        default_factory=list)

    def release(self, delete: bool) -> None:
        for path, fd in self.files:
            if delete:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            os.close(fd)
        self.files = []


def _generation(path: Path) -> int:
    try:
        return int(path.name.rsplit(".", 2)[-2])
    except (ValueError, IndexError):
        return 0


def dead_journals(directory: Path | None, tag: str) -> Iterator[DeadJournal]:
    """Journals in `directory` of `tag`'s database whose owner is gone, each locked by us; the caller
    replays and releases each (a live owner's files cannot be locked and are skipped)."""
    if directory is None or not directory.is_dir():
        return
    groups: dict[str, list[Path]] = {}
    for path in directory.glob(f"{tag}.*{_SUFFIX}"):
        groups.setdefault(path.name.rsplit(".", 2)[0], []).append(path)
    for paths in groups.values():
        dead = DeadJournal(holder="")
        alive = False
        for path in sorted(paths, key=_generation):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            if not _lock(fd):
                os.close(fd)
                alive = True
                break
            dead.files.append((path, fd))
        if alive or not dead.files:
            dead.release(delete=False)
            continue
        _parse(dead)
        if dead.holder:
            yield dead
        else:
            dead.release(delete=True)   # an empty file (killed while creating it)


def _parse(dead: DeadJournal) -> None:
    decode = msgspec.json.Decoder().decode
    lines: list[tuple[int | None, int, bool, dict[str, Any] | None]] = []
    last_seq = 0
    for path, _ in dead.files:
        data = path.read_bytes()
        for raw in data.split(b"\n"):
            if not raw:
                continue
            try:
                item = decode(raw)
            except msgspec.DecodeError:
                log.warning("ledger journal %s: skipping a torn line (%d bytes)", path, len(raw))
                continue
            if item[0] == "h":
                dead.holder = dead.holder or item[1]
            elif item[0] == "b":
                last_seq = item[1]
                dead.batches.append((last_seq, lines))
                lines = []
            else:
                lines.append((item[0], item[1], item[2], item[3]))
    if lines:
        dead.batches.append((last_seq + 1, lines))
