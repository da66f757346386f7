"""CPU time and memory of a process tree, read from /proc (Linux only)."""

from __future__ import annotations

import os

TICK = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """`pid` and all its live descendants."""
    pids = [pid]
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return pids
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children = f.read().split()
        except FileNotFoundError:
            continue
        for child in children:
            pids += tree(int(child))
    return pids


def cpu_seconds(pid: int) -> float:
    """utime + stime of the tree, in seconds (all threads included)."""
    ticks = 0
    for p in set(tree(pid)):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks += int(fields[11]) + int(fields[12])   # fields 14 and 15 of stat(5)
    return ticks / TICK


def core_busy_seconds(core: int) -> float:
    """Busy time (everything but idle and iowait) of one CPU since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{core} "):
                v = [int(x) for x in line.split()[1:]]
                return (sum(v[:8]) - v[3] - v[4]) / TICK
    return 0.0


def memory_kb(pid: int, field: str = "VmRSS") -> int:
    """Sum of a /proc/<pid>/status field (VmRSS, VmHWM) over the tree, in kB."""
    total = 0
    for p in set(tree(pid)):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
                        break
        except FileNotFoundError:
            continue
    return total


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS for every process of the tree (Linux >= 4.0, needs ptrace rights)."""
    ok = True
    for p in set(tree(pid)):
        try:
            with open(f"/proc/{p}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            ok = False
    return ok


def machine() -> dict[str, object]:
    def first(path: str, prefix: str) -> str:
        with open(path) as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith(prefix)), "?")
    mem_kb = int(first("/proc/meminfo", "MemTotal").split()[0])
    return {"cpu": first("/proc/cpuinfo", "model name"), "nproc": os.cpu_count(),
            "mem_gib": round(mem_kb / 1024 / 1024, 1), "kernel": os.uname().release}
