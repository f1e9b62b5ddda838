"""Where the CPU went while a benchmark ran, and whether the machine's cores were the limit.

    with measuring({"botkit": [pid], "postgresql": [postmaster]}) as usage:
        ...  # the load
    usage.figures()   # busy % of all cores, each group's share, the busiest app process

Read from /proc (Linux; psutil is not a dependency): /proc/stat for the whole machine,
whatever ran on it, and /proc/<pid>/stat for the processes of each group, with their
descendants (a PostgreSQL server is a tree of processes, and a backend that exits leaves
its CPU time to its parent). The benchmark's own process (the load generator) counts
without its children, which are the servers, counted in their own groups.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
BUSY = 0.9  # the share of the cores at which they are the limit
# The share of one core at which an app process is the limit: its Python, event loop and
# helper threads alike, runs on one core at a time (the GIL).
ONE_CORE = 0.85
OTHER = 10.0  # % of the cores taken by other work that spoils a run's figures
GENERATOR = "generator"


@dataclass(frozen=True)
class Times:
    """CPU seconds since boot: the machine's, and each process's (own, and its reaped
    children's) with its parent, at one moment."""

    at: float  # time.monotonic()
    busy: float  # all cores, running anything
    idle: float  # all cores, idle (iowait included)
    iowait: float  # all cores, idle with a disk read or write outstanding
    processes: dict[int, tuple[int, float, float]]  # pid: (ppid, own, reaped children)


def times() -> Times:
    """The machine's and every process's CPU times now."""
    return Times(time.monotonic(), *_machine(), _processes())


def _machine() -> tuple[float, float, float]:
    """(busy, idle, iowait) CPU seconds of all cores, from /proc/stat's first line."""
    user, nice, system, idle, iowait, irq, softirq, steal = (
        int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    busy = user + nice + system + irq + softirq + steal
    return busy / TICKS, (idle + iowait) / TICKS, iowait / TICKS


def _processes() -> dict[int, tuple[int, float, float]]:
    """pid: (ppid, utime + stime, cutime + cstime) in seconds, of every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = _stat(entry / "stat")
            own = (int(fields[11]) + int(fields[12])) / TICKS
            reaped = (int(fields[13]) + int(fields[14])) / TICKS
            table[int(entry.name)] = (int(fields[1]), own, reaped)
    return table


def _stat(path: Path) -> list[str]:
    """The fields of a /proc stat file after "pid (command)", which may hold spaces:
    state, ppid, ... (utime is the 12th of them, stime the 13th)."""
    stat = path.read_text()
    return stat[stat.rindex(")") + 2 :].split()


def descendants(pid: int, table: Mapping[int, tuple[int, float, float]]) -> list[int]:
    """`pid` and every live process below it in `table`."""
    children: dict[int, list[int]] = {}
    for child, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        if current in table:
            found.append(current)
            todo += children.get(current, [])
    return found


def seconds(pid: int, snapshot: Times, tree: bool = True) -> float:
    """CPU seconds `pid` has used (with its descendants, live and reaped, if `tree`)."""
    if not tree:
        return snapshot.processes.get(pid, (0, 0.0, 0.0))[1]
    return sum(
        own + reaped
        for _, own, reaped in (snapshot.processes[p] for p in descendants(pid, snapshot.processes))
    )


@dataclass
class Usage:
    """CPU used between two snapshots, by the machine and by named groups of processes."""

    groups: dict[str, list[int]]
    start: Times
    end: Times | None = None
    by_pid: dict[int, float] = field(default_factory=dict)
    own_by_pid: dict[int, float] = field(default_factory=dict)  # without descendants

    def figures(self) -> dict[str, Any]:
        """Wall seconds; the cores' busy and iowait shares, in % of all cores; each
        group's share in % of all cores; the busiest `botkit` process, all its threads
        but none of its children (the gateway client's process has a core of its own),
        in % of one core."""
        assert self.end is not None, "figures() after the block"
        wall = self.end.at - self.start.at
        busy = self.end.busy - self.start.busy
        total = busy + (self.end.idle - self.start.idle)
        capacity = total or (wall * (os.cpu_count() or 1))
        apps = [self.own_by_pid[pid] for pid in self.groups.get("botkit", [])]
        ours = {name: sum(self.by_pid[pid] for pid in pids) for name, pids in self.groups.items()}
        return {
            "cpu_wall_s": round(wall, 2),
            "cpu_cores": os.cpu_count(),
            "cpu_busy_pct": _pct(busy, capacity),
            "cpu_iowait_pct": _pct(self.end.iowait - self.start.iowait, capacity),
            "cpu_pct": {name: _pct(used, capacity) for name, used in ours.items()},
            # Whatever else ran on the machine meanwhile (and the kernel's own work).
            "cpu_other_pct": _pct(max(0.0, busy - sum(ours.values())), capacity),
            "app_process_max_pct": _pct(max(apps), wall) if apps and wall else None,
        }


def _pct(part: float, whole: float) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


@contextlib.contextmanager
def measuring(groups: Mapping[str, Sequence[int]]) -> Iterator[Usage]:
    """Snapshot CPU times around the block; the Usage of `groups` (name: root pids) and
    of this process (as GENERATOR, without its children), complete after the block."""
    named = {name: list(pids) for name, pids in groups.items()}
    named[GENERATOR] = [os.getpid()]
    usage = Usage(named, times())
    yield usage
    usage.end = times()
    for name, pids in named.items():
        tree = name != GENERATOR
        for pid in pids:
            usage.by_pid[pid] = seconds(pid, usage.end, tree) - seconds(pid, usage.start, tree)
            usage.own_by_pid[pid] = seconds(pid, usage.end, False) - seconds(
                pid, usage.start, False
            )


def verdict(run: Mapping[str, Any]) -> str:
    """A plain sentence: whether the cores were the limit in `run` (its figures: CPU,
    offered and answered rates, replies, whether it drained), or what else was."""
    busy, other = run["cpu_busy_pct"], run["cpu_other_pct"]
    head = described(run)
    if busy >= 100 * BUSY and other >= OTHER:
        return (
            f"{head}: the cores are the limit, but {other:g}% of them went to other work on "
            "the machine: the figures understate botkit; measure on a quiet machine"
        )
    if busy >= 100 * BUSY and kept(run):
        return f"{head}: the rate was kept, with the cores full: the machine's limit is here"
    if busy >= 100 * BUSY:
        return f"{head}: the machine, not botkit, is the limit"
    single = run.get("app_process_max_pct") or 0.0
    if single >= 100 * ONE_CORE:
        return (
            f"{head}; one app process kept a core {single:g}% busy: that process is the "
            "limit (its Python runs on one core at a time), and the cores have room for "
            f"another process{_on_postgresql([run])}"
        )
    if kept(run):
        return f"{head}: the offered rate was kept with cores to spare; nothing is the limit yet"
    return (
        f"{head}, iowait {run['cpu_iowait_pct']:g}%: the rate was not kept, yet the cores "
        "had room: the limit is a wait (locks, retried transactions, leases, the disk), "
        "not the CPU"
    )


def described(run: Mapping[str, Any]) -> str:
    """`CPU busy 96% of 2 cores (botkit 60%, ..., other 3%)`: the cores and each part."""
    shares = ", ".join(f"{name} {pct:g}%" for name, pct in run["cpu_pct"].items())
    return (
        f"CPU busy {run['cpu_busy_pct']:g}% of {run['cpu_cores']} cores ({shares}, "
        f"other {run['cpu_other_pct']:g}%)"
    )


def kept(run: Mapping[str, Any]) -> bool:
    """Whether the app kept up: nearly every MO answered at the offered rate, every
    reply sent before the drain's deadline, at nearly the offered rate."""
    offered = run["offered_per_s"]
    return (
        run["errors"] == 0
        and run["throughput_per_s"] >= 0.95 * offered
        and run.get("drained", True)
        and run.get("replies_per_s", offered) >= 0.9 * offered
    )


def summary(runs: Sequence[Mapping[str, Any]]) -> str:
    """One plain sentence over the runs: at which the cores were the limit, at which a
    single app process was, or that neither was; and which other work spoiled."""
    measured = [run for run in runs if "cpu_busy_pct" in run]
    if not measured:
        return ""
    cores = measured[0]["cpu_cores"]
    full = [run for run in measured if run["cpu_busy_pct"] >= 100 * BUSY]
    spoiled = [run for run in full if run["cpu_other_pct"] >= OTHER]
    full = [run for run in full if run not in spoiled]
    single = [
        run
        for run in measured
        if run not in full + spoiled and (run.get("app_process_max_pct") or 0) >= 100 * ONE_CORE
    ]
    sentences = []
    if full:
        sentences.append(
            f"The {cores} cores are the limit (busy at least {100 * BUSY:g}%) in: "
            f"{_names(full)}; there more app processes cannot help on this machine, only "
            "more cores can."
        )
    if single:
        names = ", ".join(
            f"{run['name']} ({run['app_process_max_pct']:g}% of a core)" for run in single
        )
        sentences.append(
            f"One app process, a core busy, is the limit in: {names}; the cores had room for "
            f"another process{_on_postgresql(single)}."
        )
    quiet = [run for run in measured if run not in spoiled]
    if quiet and not full and not single:
        busiest = max(quiet, key=lambda run: run["cpu_busy_pct"])
        sentences.append(
            f"The {cores} cores were not the limit in any run (the busiest: {_names([busiest])})."
        )
    if spoiled:
        sentences.append(
            f"Other work on the machine kept the cores busy in: {_names(spoiled)}; those "
            "figures understate botkit: measure them again on a quiet machine."
        )
    return " ".join(sentences)


def _names(runs: Sequence[Mapping[str, Any]]) -> str:
    """`postgresql x2 at 500/s (96%), ...`, with other work's share where it was large."""
    return ", ".join(f"{run['name']} ({_busy(run)})" for run in runs)


def _busy(run: Mapping[str, Any]) -> str:
    """`96%`, or `96%, 30% other work` when other work on the machine took a share."""
    other = run["cpu_other_pct"]
    return f"{run['cpu_busy_pct']:g}%" + (f", {other:g}% other work" if other >= OTHER else "")


def _on_postgresql(runs: Sequence[Mapping[str, Any]]) -> str:
    """Where another process could run, when `runs` are all SQLite's: it serves one."""
    sqlite = all(run.get("backend", "sqlite") == "sqlite" for run in runs)
    return " (on PostgreSQL: SQLite serves one)" if sqlite else ""
