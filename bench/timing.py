"""Measuring helpers: medians and spread over rounds, percentiles, RSS, process CPU, machine info."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """The median of per-round values and their spread, as perf-baselines.md reports them."""

    median: float
    spread: float
    """(max - min) / median of the rounds."""
    rounds: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        values = tuple(float(v) for v in values)
        if not values:
            return cls(float("nan"), float("nan"), ())
        mid = statistics.median(values)
        return cls(mid, (max(values) - min(values)) / mid if mid else 0.0, values)

    def as_dict(self) -> dict:
        return {"median": self.median, "spread": self.spread, "rounds": list(self.rounds)}


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values) + 0.5) - 1))
    return float(sorted_values[rank])


def rss_kb(pid: int | str = "self") -> int:
    """Resident set size in KiB (VmRSS from /proc/<pid>/status)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc status")


def cpu_seconds(pid: int | str = "self") -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pin(cpu: int | None) -> str:
    """Pin this process to one CPU when there are at least two; returns a note for the report."""
    cpus = sorted(os.sched_getaffinity(0))
    if cpu is None or len(cpus) < 2 or cpu not in cpus:
        return f"not pinned (CPUs available: {cpus})"
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU{cpu}"


def noise() -> str:
    """Load average and pressure stall (share of time some task waited on CPU / IO, last 60 s)."""
    parts = []
    try:
        with open("/proc/loadavg", encoding="ascii") as fh:
            parts.append("load " + " ".join(fh.read().split()[:3]))
        for kind in ("cpu", "io"):
            with open(f"/proc/pressure/{kind}", encoding="ascii") as fh:
                some = dict(f.split("=") for f in fh.readline().split()[1:])
            parts.append(f"{kind} pressure {some['avg60']}%")
    except OSError:
        pass
    return ", ".join(parts) or "?"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def machine_info() -> dict:
    from lxml import etree

    model = "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "?")
    except OSError:
        pass
    wrk = shutil.which("wrk")
    wrk_version = "-"
    if wrk:
        out = subprocess.run([wrk, "--version"], capture_output=True, text=True).stdout or ""
        wrk_version = out.split("[")[0].strip() or "?"
    with open("/proc/meminfo", encoding="ascii") as fh:
        mem_kb = int(fh.readline().split()[1])
    return {
        "cpu_count": os.cpu_count(), "cpu_model": model, "mem_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(), "python": platform.python_version(),
        "libxml2": ".".join(map(str, etree.LIBXML_VERSION)), "sqlite": sqlite3.sqlite_version,
        "wrk": wrk_version, "taskset": bool(shutil.which("taskset")),
        "packages": {name: _version(name) for name in (
            "lxml", "signxml", "cryptography", "xmlschema", "flask", "werkzeug", "waitress",
            "sqlalchemy", "pluggy")},
    }
