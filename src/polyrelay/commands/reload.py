"""`polyrelay reload`: ask a running gateway to re-read its config file (POST /admin/reload)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from polyrelay.commands.database import fail


def _message(body: bytes) -> str:
    """The gateway's error message (OpenAI's error shape, the admin API's), else the body's start."""
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return body[:200].decode("utf-8", "replace").strip() or "(no message)"


def request_reload(url: str, token: str | None, timeout: float) -> str:
    """One line saying what the gateway now serves; a failure exits non-zero with one line."""
    if not token:
        fail("set POLYRELAY_ADMIN_TOKEN to the gateway's admin token (the reload is an admin API call)")
    target = url.rstrip("/") + "/admin/reload"
    request = urllib.request.Request(target, data=b"", method="POST", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            status, body = answer.status, answer.read()
    except urllib.error.HTTPError as e:
        fail(f"reload refused ({e.code}): {_message(e.read())}", 1)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        fail(f"cannot reach the gateway at {url}: {reason}", 1)
    done = json.loads(body)
    if status == 202:
        return f"reloading {done['reloading']}: the workers are being replaced one by one"
    return (f"reloaded {done['reloaded']}: {done['channels']} channels, {done['models']} models, "
            f"{done['prices']} prices, {done['keys']} keys from config")
