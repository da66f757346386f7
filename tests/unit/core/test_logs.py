"""Log lines (logs.py): one line per record, controls escaped, URL keys and secrets dropped; queued
access lines are the formatter's lines, in order (over HTTP: tests/e2e/test_secrets_and_logs.py)."""

from __future__ import annotations

import io
import logging
import re

import pytest

from secret_leaks import leaks

UPSTREAM_KEY = "sk-proj-Up5treamSecretKey-0123456789abcdefXYZ"


def _leaks(text: str, secret: str = UPSTREAM_KEY) -> list[str]:
    return leaks(text, secret)


def test_queued_access_lines_are_the_formatters_lines_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """configure()'s handler takes access lines ready-made (no LogRecord per request): each must be
    the very line the logging path makes, escaped, and come out before any record logged after it."""
    from polyrelay import logs

    monkeypatch.setenv("POLYRELAY_LOG_LEVEL", "info")
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.getLogger("polyrelay").level)
    logs.configure("info")
    handler = logs._WRITER
    assert handler is not None
    out = io.StringIO()
    handler.setStream(out)
    ctx = logs.RequestContext("0badc0de00000001")
    token = logs.CURRENT.set(ctx)
    args = (ctx, "team\r\nFAKE", "POST /v1/x\x1b[2J\u2028", "m\n", None, 200, 12, 3, 1_500, 7)
    try:
        logs.access(*args)
        logging.getLogger("polyrelay.test").warning("after")
        logs.access(*args)
        handler.flush()
        queued = out.getvalue().splitlines()
        logs._WRITER = None   # the logging module's path, for comparison
        logs.access(*args)
        handler.flush()
    finally:
        logs.CURRENT.reset(token)
        logs._WRITER = None
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("polyrelay").setLevel(saved[2])
    lines = out.getvalue().splitlines()
    assert queued == lines[:3] and len(lines) == 4 and "after" in lines[1], lines
    def strip(line: str) -> str:
        return line[23:]  # the time stamp cut off

    assert strip(lines[0]) == strip(lines[2]) == strip(lines[3]), lines
    assert strip(lines[3]) == (" INFO polyrelay.access [0badc0de00000001] key=team\\r\\nFAKE "
                               "POST /v1/x\\x1b[2J\\u2028 model=m\\n channel=- status=200 tokens=12/3 "
                               "cost_usd=0.001500 latency_ms=7"), lines
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO", lines[0]), lines


def test_safe_formatter_escapes_controls_drops_url_keys_and_secrets(caplog: pytest.LogCaptureFixture) -> None:
    from polyrelay import logs

    logs.set_secrets([UPSTREAM_KEY])
    try:
        formatter = logs.SafeFormatter(logs.FORMAT)
        record = logging.LogRecord("polyrelay.x", logging.WARNING, __file__, 1,
                                   "GET %s failed: %s\nnext", ("https://g.example/v1beta/models/m?alt=sse&key=AIzaSECRET1",
                                                               UPSTREAM_KEY.lower()), None)
        logs.RequestIdFilter().filter(record)
        line = formatter.format(record)
        assert "\n" not in line and "\\nnext" in line
        assert "AIzaSECRET1" not in line and "key=***" in line and "alt=sse" in line
        assert not _leaks(line)
    finally:
        logs.set_secrets(())
