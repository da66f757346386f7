"""What the CLI prints: tables for people (key names, UTC times, USD), JSON with --json for scripts."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table


def usd(micros: int | None, unlimited: str = "unlimited") -> str:
    """Exact dollars from integer micro-dollars: $5.00, $0.000125 (no float rounding)."""
    if micros is None:
        return unlimited
    sign = "-" if micros < 0 else ""
    dollars, rest = divmod(abs(micros), 1_000_000)
    cents = f"{rest:06d}".rstrip("0").ljust(2, "0")
    return f"{sign}${dollars:,}.{cents}"


def utc(ms: int) -> str:
    """Unix milliseconds as ISO 8601 UTC: 2026-12-02T16:40:01.123Z."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


def print_table(columns: Sequence[str], rows: Sequence[Sequence[str]], *, right: Collection[str] = (),
                empty: str) -> None:
    if not rows:
        sys.stderr.write(f"({empty})\n")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name in columns:
        table.add_column(name, justify="right" if name in right else "left", overflow="fold")
    for row in rows:
        table.add_row(*row)
    # a pipe gets the full table too (rich would squeeze it into 80 columns)
    width = max(shutil.get_terminal_size((200, 24)).columns, 100)
    Console(width=width, highlight=False, soft_wrap=False).print(table)


def keys_json(keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**k, "quota_usd": usd(k["quota_micros"], "unlimited"), "spent_usd": usd(k["spent_micros"])}
            for k in keys]


def print_keys(keys: list[dict[str, Any]]) -> None:
    rows = []
    for k in keys:
        quota = k["quota_micros"]
        left = None if quota is None else quota - k["spent_micros"] - k["leased_micros"]
        rows.append([k["name"], k["prefix"], "enabled" if k["enabled"] else "disabled", usd(quota),
                     usd(k["spent_micros"]), usd(left), ", ".join(k["models"]) or "all", k["source"]])
    print_table(["name", "key", "state", "quota", "spent", "left", "models", "source"], rows,
                right={"quota", "spent", "left"}, empty="no keys")


def logs_json(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"time": utc(r["created_at"]), "key": r.get("key_name"), **r,
             "cost_usd": usd(r["cost_micros"]), "charged_usd": usd(r["charged_micros"])} for r in rows]


def print_logs(rows: list[dict[str, Any]]) -> None:
    table = []
    for r in rows:
        tokens = f"{r['prompt_tokens']}/{r['completion_tokens']}" + ("~" if r["usage_estimated"] else "")
        table.append([utc(r["created_at"]), r.get("key_name") or "-", r["model"], r["channel"] or "-",
                      str(r["status"]), "yes" if r["stream"] else "", tokens, usd(r["charged_micros"]),
                      f"{r['latency_ms']} ms", (r["error"] or "")[:80]])
    print_table(["time (UTC)", "key", "model", "channel", "status", "stream", "tokens in/out", "charged",
                 "latency", "error"], table, right={"status", "tokens in/out", "charged", "latency"},
                empty="no requests logged yet")
