"""In-process rows: the floor function and ``Pipeline.intake``, each on its own fresh SQLite DB.

Every call takes a package never seen by that DB (no replays). Rounds are interleaved: round
r runs every (size, subject) for a bounded time on the next packages of the pool before round
r+1 starts, so noise on this shared VM hits every row alike. Per round: per-call p50 and p99
from ``perf_counter_ns`` and docs/s = calls / wall time; the table shows the median over
rounds and the spread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from bench.timing import Summary, percentile

Intake = Callable[[bytes], bool]


@dataclass
class Row:
    """One (size, subject) row with one value per round."""

    size: str
    subject: str
    docs_per_s: list[float] = field(default_factory=list)
    p50_us: list[float] = field(default_factory=list)
    p99_us: list[float] = field(default_factory=list)
    calls: int = 0
    unexpected: int = 0
    """Calls that did not end as a new, queued application (must stay 0)."""

    def summary(self) -> dict:
        return {"size": self.size, "subject": self.subject, "calls": self.calls, "unexpected": self.unexpected,
                "docs_per_s": Summary.of(self.docs_per_s).as_dict(),
                "p50_us": Summary.of(self.p50_us).as_dict(), "p99_us": Summary.of(self.p99_us).as_dict()}


def time_calls(intake: Intake, packages: Sequence[bytes], seconds: float) -> tuple[list[float], float, int]:
    """Per-call µs, the wall time in s and the calls not as expected, for up to ``seconds``."""
    per_call: list[float] = []
    unexpected = 0
    clock = time.perf_counter_ns
    wall = clock()
    deadline = wall + int(seconds * 1e9)
    for data in packages:
        t0 = clock()
        ok = intake(data)
        t1 = clock()
        per_call.append((t1 - t0) / 1000)
        unexpected += not ok
        if t1 >= deadline:
            break
    return per_call, (clock() - wall) / 1e9, unexpected


def run_rounds(subjects: Mapping[tuple[str, str], Intake], pools: Mapping[str, Sequence[bytes]], *,
               rounds: int, per_round: int, seconds: float, first: int,
               log: Callable[[str], None] = print) -> list[Row]:
    """``subjects``: (size, name) -> intake. Each round gives each row up to ``per_round`` new
    packages or ``seconds``, whichever ends first; every row walks its own pool from ``first``."""
    rows = {key: Row(*key) for key in subjects}
    cursor = dict.fromkeys(subjects, first)
    keys = list(subjects)
    for r in range(rounds):
        order = keys[r % len(keys):] + keys[: r % len(keys)]  # rotate, so no row always goes first
        for key in order:
            size, name = key
            chunk = pools[size][cursor[key]: cursor[key] + per_round]
            per_call, wall, unexpected = time_calls(subjects[key], chunk, seconds)
            cursor[key] += len(per_call)
            per_call.sort()
            row = rows[key]
            row.docs_per_s.append(len(per_call) / wall)
            row.p50_us.append(percentile(per_call, 0.50))
            row.p99_us.append(percentile(per_call, 0.99))
            row.calls += len(per_call)
            row.unexpected += unexpected
            log(f"  in-process round {r + 1}/{rounds} {size:>6} {name:<8} {len(per_call):5d} calls"
                f" {row.docs_per_s[-1]:7.0f} docs/s  p50 {row.p50_us[-1]:7.0f} µs  p99 {row.p99_us[-1]:7.0f} µs")
    return [rows[key] for key in keys]


def warm_up(subjects: Mapping[tuple[str, str], Intake], pools: Mapping[str, Sequence[bytes]], count: int) -> None:
    """The first ``count`` packages of each pool through each subject (imports, caches, DB pages)."""
    for (size, _), intake in subjects.items():
        for data in pools[size][:count]:
            if not intake(data):
                raise RuntimeError(f"warm-up package did not end as expected ({size})")


def profile_intake(intake: Intake, packages: Sequence[bytes], top: int = 15) -> dict[str, str]:
    """cProfile of ``intake`` over ``packages``: the ``top`` entries by cumulative and own time."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for data in packages:
        intake(data)
    profiler.disable()
    tables = {}
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(top)
        text = out.getvalue()  # keep the table: drop pstats' preamble up to the header
        tables[order] = text[text.find("   ncalls"):].rstrip() if "   ncalls" in text else text
    return tables
