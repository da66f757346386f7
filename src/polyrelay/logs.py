"""The gateway's logging: the request id of the current request, the access log, and a formatter that
lets no log line forge another.

- `begin_request()` gives each request an id (answered as `x-request-id`, stored in its log row) in a
  context variable; every record logged while serving it carries it (`RequestIdFilter`), so a
  conversion warning in protocols/* names the request it came from.
- `access(...)` is the one access-log line per request, on the `polyrelay.access` logger at INFO:
  time, request id, key name, surface, model, channel, status, tokens, cost, latency. Never a secret
  or a body.
- `SafeFormatter` escapes CR, LF and every other C0/C1 control character in the final line (key,
  channel and model names and upstream text are not trusted) and drops `key=` values from URLs.
- `configure(level)` installs them; `serve`, `demo` and the workers call it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

from polyrelay.scrub import Scrubber

ACCESS = logging.getLogger("polyrelay.access")
_LEVEL_ENV = "POLYRELAY_LOG_LEVEL"   # how `serve --workers N` hands --log-level to its workers
DEFAULT_LEVEL = "info"


class RequestContext:
    """Per request, shared by reference with the tasks serving it (a stream's producer, a shield)."""

    __slots__ = ("id", "logged")

    def __init__(self, request_id: str) -> None:
        self.id = request_id
        self.logged = False   # its access line is written (generation requests: by the meter)


_WRITER: _StderrHandler | None = None   # configure()'s handler: access lines go to it directly
CURRENT: ContextVar[RequestContext | None] = ContextVar("polyrelay_request", default=None)
_PREFIX = os.urandom(4).hex()   # unique across processes; a counter within one
_COUNTER = itertools.count(1)


def begin_request() -> RequestContext:
    ctx = RequestContext(f"{_PREFIX}{next(_COUNTER):08x}")
    CURRENT.set(ctx)
    return ctx


def current_request_id() -> str | None:
    ctx = CURRENT.get()
    return ctx.id if ctx is not None else None


def access(ctx: RequestContext | None, key: str | None, surface: str, model: str | None,
           channel: str | None, status: int, tokens_in: int, tokens_out: int, cost_micros: int,
           latency_ms: int) -> None:
    """The access line of one request (nothing is built when INFO is off for `polyrelay.access`)."""
    if ctx is not None:
        ctx.logged = True
    if not ACCESS.isEnabledFor(logging.INFO):
        return
    writer = _WRITER
    if writer is None:   # configure() was not called (a library user's logging): the logging module
        # the request id is the record's (RequestIdFilter), as on every line logged for the request
        ACCESS.info("key=%s %s model=%s channel=%s status=%d tokens=%d/%d cost_usd=%.6f latency_ms=%d",
                    key or "-", surface, model or "-", channel or "-", status, tokens_in, tokens_out,
                    cost_micros / 1e6, latency_ms)
        return
    # The same line SafeFormatter would make, without a LogRecord, filter, formatter and handler lock
    # per request (~8 us): queued here, written by the handler in one write with its neighbours.
    now = time.time()
    second = int(now)
    if second != _STAMP[0]:
        _STAMP[0], _STAMP[1] = second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
    line = (f"{_STAMP[1]},{int((now - second) * 1000):03d} INFO polyrelay.access "
            f"[{ctx.id if ctx is not None else '-'}] key={key or '-'} {surface} model={model or '-'} "
            f"channel={channel or '-'} status={status:d} tokens={tokens_in:d}/{tokens_out:d} "
            f"cost_usd={cost_micros / 1e6:.6f} latency_ms={latency_ms:d}")
    writer.queue(escape_controls(line))


_STAMP: list[Any] = [-1, ""]   # the second of the last access line and its strftime


# ---- filters and formatter ---------------------------------------------------------------------------

class RequestIdFilter(logging.Filter):
    """Adds `request_id` ("-" outside a request) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = CURRENT.get()
        record.request_id = ctx.id if ctx is not None else "-"
        return True


# C0 controls but tab, DEL, C1 controls, and the Unicode line and paragraph separators
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r"}
_URL_KEY = re.compile(r"([?&;]key=)[^&\s'\"]*", re.IGNORECASE)


def _escape_one(m: re.Match[str]) -> str:
    c = m.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def escape_controls(text: str) -> str:
    """One line whatever the text: control characters as visible escapes."""
    return _CONTROL.sub(_escape_one, text) if _CONTROL.search(text) else text


def drop_url_keys(text: str) -> str:
    """`?key=SECRET` (Gemini's query key) -> `?key=***` in any URL in `text`."""
    return _URL_KEY.sub(r"\1***", text)


_SECRETS = Scrubber(())   # what the running gateway's config holds; set_secrets() replaces it


def set_secrets(secrets: Iterable[str]) -> None:
    """The secrets no log line may show (upstream keys, proxy passwords, gateway key values)."""
    global _SECRETS
    _SECRETS = Scrubber(secrets)


def clean(text: str) -> str:
    """Text safe for a log line: no secret, no `key=` value, no control character."""
    return escape_controls(drop_url_keys(_SECRETS.scrub(text)))


class SafeFormatter(logging.Formatter):
    """The message line cleaned; an exception's traceback follows as usual, each line cleaned.
    Access lines are built from names and numbers only: escaped, not searched for secrets."""

    _second = -1
    _stamp = ""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802  (logging.Formatter's name)
        line = super().formatMessage(record)
        return escape_controls(line) if record.name == ACCESS.name else clean(line)

    def formatException(self, ei) -> str:  # type: ignore[no-untyped-def]  # noqa: N802
        return "\n".join(clean(line) for line in super().formatException(ei).split("\n"))

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        second = int(record.created)   # strftime once per second, not once per line
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second))
        return f"{self._stamp},{int(record.msecs):03d}"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """stderr without a write() system call per line: a warning or worse is flushed at once, INFO
    lines (the access log) within FLUSH_S by a small thread. A killed process may lose up to FLUSH_S of
    access lines; the request log rows in the database are the durable record (billing/journal.py).

    Access lines come ready-made through `queue()` (a list append) and are written before any record
    handled after them, so the order of lines is the order they were logged in."""

    FLUSH_S = 0.2

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self._dirty = False
        self._queued: list[str] = []
        threading.Thread(target=self._flusher, name="polyrelay-log-flush", daemon=True).start()

    def queue(self, line: str) -> None:
        self._queued.append(line)   # atomic under the GIL; drained under the handler's lock

    def _drain(self) -> None:
        queued = self._queued
        n = len(queued)
        if n:
            lines = queued[:n]
            del queued[:n]   # lines appended meanwhile stay for the next drain
            self.stream.write("\n".join(lines) + "\n")
            self._dirty = True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._drain()
            self.stream.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)
            return
        if record.levelno >= logging.WARNING:
            self.flush()
        else:
            self._dirty = True

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            with contextlib.suppress(Exception):   # stderr gone: as logging does, never raise from a log call
                self._drain()
            self._dirty = False
            super().flush()

    def _flusher(self) -> None:
        while True:
            time.sleep(self.FLUSH_S)
            if self._dirty or self._queued:
                self.flush()


FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def configure(level: str | None = None) -> None:
    """Log to stderr at `level` (debug, info, warning, error; default info: the access log on) with
    the request id and the safe formatter. Worker processes started later inherit the level."""
    name = (level or os.environ.get(_LEVEL_ENV) or DEFAULT_LEVEL).lower()
    numeric = logging.getLevelName(name.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}: use debug, info, warning or error")
    os.environ[_LEVEL_ENV] = name
    # no caller lookup, thread or process names: the format uses none of them, each costs per line
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = _StderrHandler()
    handler.setFormatter(SafeFormatter(FORMAT))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_polyrelay", False)]:
        old.flush()   # its queued access lines first
        root.removeHandler(old)
    handler._polyrelay = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    global _WRITER
    _WRITER = handler
    root.setLevel(logging.WARNING)
    logging.getLogger("polyrelay").setLevel(numeric)
    # SQL statements (never their parameters: engines are made with hide_parameters) only at debug
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO if numeric <= logging.DEBUG else logging.WARNING)
