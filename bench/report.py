"""The markdown tables and the pass/fail checks of a benchmark run (from the JSON written by run.py)."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

LABELS = {"direct": "direct", "polyrelay": "polyrelay", "polyrelay-base": "polyrelay before (--baseline)",
          "polyrelay-granian": "polyrelay on granian",
          "polyrelay-2w": "polyrelay, 2 workers (unpinned)", "litellm": "LiteLLM (logging off)",
          "litellm-log": "LiteLLM (logging on)"}
NO_VALUE = "\u2013"  # an en dash marks a table cell without a value
CLOSED = ("ns_c1", "ns_c16", "ns_c64", "stream_c1", "stream_c16", "stream_c64", "convert_c16", "image_c4",
          "responses_c16", "responses_convert_c16", "responses_stream_c16", "responses_stored_c16",
          "responses_stored_stream_c16")


def _f(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NO_VALUE
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}"
    return str(value)


def med(report: dict[str, Any], target: str, scenario: str, key: str) -> float | None:
    value = report.get("results", {}).get(target, {}).get(scenario, {}).get("median", {}).get(key)
    return value if isinstance(value, (int, float)) else None


def added_p50(report: dict[str, Any], target: str, scenario: str) -> float | None:
    gw, base = med(report, target, scenario, "p50_ms"), med(report, "direct", scenario, "p50_ms")
    return None if gw is None or base is None or target == "direct" else gw - base


def tables(report: dict[str, Any]) -> str:
    results = report.get("results", {})
    targets = [t for t in LABELS if t in results]
    out = ["| scenario | target | req/s | p50 ms | p99 ms | added p50 ms | CPU µs/req | peak RSS MB | errors "
           "| other load on gateway core % |", "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for scenario in CLOSED:
        for t in targets:
            m = results[t].get(scenario, {}).get("median")
            if not m:
                continue
            out.append(f"| {scenario} | {LABELS[t]} | {_f(m.get('rps'), 0)} | {_f(m.get('p50_ms'))} | "
                       f"{_f(m.get('p99_ms'))} | {_f(added_p50(report, t, scenario))} | "
                       f"{_f(m.get('cpu_us_per_req'), 0)} | {_f(m.get('peak_rss_mb'), 0)} | "
                       f"{_f(results[t][scenario].get('errors_total'), 0)} | {_f(m.get('other_load_pct'), 0)} |")
    open_rows = [t for t in targets if results[t].get("open_loop", {}).get("median")]
    if open_rows:
        out += ["", "Open loop (fixed arrival rate = half the target's closed-loop capacity; latency from the "
                "scheduled start; direct measured at the same rate just before):", "",
                "| target | rate/s | p50 ms | p99 ms | direct p99 ms | added p99 ms | CPU µs/req | errors |",
                "|---|--:|--:|--:|--:|--:|--:|--:|"]
        for t in open_rows:
            m = results[t]["open_loop"]["median"]
            out.append(f"| {LABELS[t]} | {_f(m.get('rate'), 0)} | {_f(m.get('p50_ms'))} | {_f(m.get('p99_ms'))} | "
                       f"{_f(m.get('direct_p99_ms'))} | {_f(m.get('added_p99_ms'))} | "
                       f"{_f(m.get('cpu_us_per_req'), 0)} | {_f(results[t]['open_loop'].get('errors_total'), 0)} |")
    slow_rows = [t for t in targets if results[t].get("slow_streams", {}).get("median")]
    if slow_rows:
        out += ["", "Slow streams (each 1 chunk / 100 ms, all open at once):", "",
                "| target | streams | most in flight | stream p50 s | RSS before MB | peak RSS MB | "
                "KB per stream over idle | "
                "CPU µs/stream | CPU µs/chunk | errors |", "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for t in slow_rows:
            m = results[t]["slow_streams"]["median"]
            out.append(f"| {LABELS[t]} | {_f(m.get('requests'), 0)} | {_f(m.get('max_in_flight'), 0)} | "
                       f"{_f((m.get('p50_ms') or 0) / 1000)} | {_f(m.get('rss_before_mb'), 0)} | "
                       f"{_f(m.get('peak_rss_mb'), 0)} | {_f(m.get('kb_per_stream'), 0)} | "
                       f"{_f(m.get('cpu_us_per_req'), 0)} | {_f(m.get('cpu_us_per_chunk'), 0)} | "
                       f"{_f(results[t]['slow_streams'].get('errors_total'), 0)} |")
    idle = [t for t in targets if results[t].get("idle_rss_mb") is not None]
    if idle:
        out += ["", "| target | RSS after start MB | idle RSS after warm-up MB | RSS at the end MB |",
                "|---|--:|--:|--:|"]
        out += [f"| {LABELS[t]} | {_f(results[t].get('start_rss_mb'), 1)} | {_f(results[t]['idle_rss_mb'], 1)} | "
                f"{_f(results[t].get('end_rss_mb'), 1)} |" for t in idle]
    return "\n".join(out)


def checks(report: dict[str, Any], target: str = "polyrelay") -> list[tuple[str, str, str, bool | None]]:
    """(goal, limit, measured, passed) for the project's performance targets; passed None = not measured."""
    r = report.get("results", {}).get(target, {})
    ns_cpu = med(report, target, "ns_c16", "cpu_us_per_req")
    all_open = (med(report, target, "slow_streams", "max_in_flight") or 0) >= 1000
    slow_peak = med(report, target, "slow_streams", "peak_rss_mb") if all_open else None
    conv_cpu = med(report, target, "convert_c16", "cpu_us_per_req")
    rconv_cpu = med(report, target, "responses_convert_c16", "cpu_us_per_req")
    rows: list[tuple[str, str, float | None, float]] = [
        ("gateway CPU per non-stream request (c=16)", "<= 500 µs (aim 250)", ns_cpu, 500),
        ("added p50 latency at concurrency 1", "<= 0.5 ms", added_p50(report, target, "ns_c1"), 0.5),
        ("open-loop added p99 at half capacity", "<= 5 ms", med(report, target, "open_loop", "added_p99_ms"), 5),
        ("CPU per streamed request (100 chunks, c=16)", "<= 600 µs",
         med(report, target, "stream_c16", "cpu_us_per_req"), 600),
        ("1,000 concurrent slow streams, peak RSS", "< 300 MB", slow_peak, 300),
        ("idle RSS after start", "< 80 MB", r.get("start_rss_mb"), 80),
        ("idle RSS after a 2 s warm-up at c=16", "< 80 MB", r.get("idle_rss_mb"), 80),
        ("convert path CPU / fast path CPU (c=16)", "<= 2.0",
         conv_cpu / ns_cpu if conv_cpu and ns_cpu else None, 2.0),
        ("Responses -> Anthropic CPU / chat fast path CPU (c=16)", "<= 2.0",
         rconv_cpu / ns_cpu if rconv_cpu and ns_cpu else None, 2.0),
    ]
    out = []
    for goal, limit, value, bound in rows:
        passed = None if value is None else value <= bound if "<=" in limit else value < bound
        shown = NO_VALUE if value is None else f"{value:.2f}" if bound < 10 else f"{value:.1f}"
        out.append((goal, limit, shown, passed))
    return out


def checks_table(report: dict[str, Any]) -> str:
    lines = ["| target (polyrelay) | limit | measured | result |", "|---|---|--:|---|"]
    for goal, limit, shown, passed in checks(report):
        verdict = "not measured" if passed is None else "**pass**" if passed else "**FAIL**"
        lines.append(f"| {goal} | {limit} | {shown} | {verdict} |")
    return "\n".join(lines)


def render(report: dict[str, Any]) -> str:
    m = report.get("machine", {})
    head = (f"polyrelay {report.get('polyrelay_commit', '?')} · LiteLLM {report.get('litellm_version', '?')} · "
            f"{m.get('cpu', '?')}, {m.get('nproc', '?')} cores, {m.get('mem_gib', '?')} GiB · "
            f"median of {report.get('repeat', '?')} runs of {report.get('duration', '?')} s")
    return "\n\n".join([head, tables(report), checks_table(report)])


def merged(paths: list[str]) -> dict[str, Any]:
    """Several runs' results as one report: a target measured in a later file replaces an earlier one."""
    out: dict[str, Any] = {}
    for path in paths:
        with open(path) as f:
            run = json.load(f)
        results = {**out.get("results", {}), **run["results"]}
        out = {**out, **{k: v for k, v in run.items() if v not in (None, "not installed")}, "results": results}
    return out


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python bench/report.py RESULT.json [MORE.json ...]  (later files' targets win)")
    print(render(merged(sys.argv[1:])))
