"""Soak: many distinct packages through the full in-process pipeline, watching resident memory.

It runs in a fresh process (``python -m bench.soak``, started by ``python -m bench``): memory
the parent freed earlier (the package pools) would otherwise sit in the heap and hide a leak.
The packages come from a producer process on the other CPU through a small bounded queue, so
the measured process holds only a few packages at a time. RSS (VmRSS) is sampled at the start,
after warm-up and at regular intervals, twice each time: as it is, and right after
``malloc_trim(0)`` hands free heap pages back to the kernel (glibc), which makes RSS follow
live memory closely. Growth per document is the least-squares slope over documents after
warm-up, of either series. The SQLite file grows by design (every application is kept); this
measures the process, not the disk.

When the soak grows (or on ``--diagnose``), :func:`diagnose` runs each component alone in a
loop over a small pool (no store, so packages may repeat) and adds the next component in turn:
the component whose addition makes RSS climb is the one that leaks. A tracemalloc diff of the
worst stage shows Python-level allocations (libxml2's C allocations do not appear there).
"""

from __future__ import annotations

import ctypes
import datetime as dt
import gc
import json
import os
import pickle
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench.timing import rss_kb
from gateway.serving import settle_process

GROWTH_LIMIT_KB_PER_DOC = 0.2


@dataclass(frozen=True)
class SoakResult:
    docs: int
    seconds: float
    warmup_docs: int
    start_kb: int
    after_warmup_kb: int
    end_kb: int
    peak_kb: int
    growth_kb_per_doc: float
    """Least-squares slope of RSS over documents after warm-up."""
    live_growth_kb_per_doc: float
    """The same slope of RSS sampled right after ``malloc_trim(0)`` (live memory)."""
    samples: tuple[tuple[int, int], ...]
    """(documents done, RSS KiB)."""
    live_samples: tuple[tuple[int, int], ...]
    """(documents done, RSS KiB after malloc_trim)."""
    unexpected: int

    @property
    def flagged(self) -> bool:
        return max(self.growth_kb_per_doc, self.live_growth_kb_per_doc) > GROWTH_LIMIT_KB_PER_DOC

    def as_dict(self) -> dict:
        return {**asdict(self), "samples": [list(s) for s in self.samples],
                "live_samples": [list(s) for s in self.live_samples], "flagged": self.flagged,
                "limit_kb_per_doc": GROWTH_LIMIT_KB_PER_DOC}


def slope(points: Sequence[tuple[int, int]]) -> float:
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


def warmup_for(count: int) -> int:
    return min(10_000, max(count // 10, min(200, count // 2)))


def _malloc_trim() -> Callable[[], None]:
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: the live series equals the raw one
        return lambda: None
    return lambda: trim(0) and None


def run_soak(intake: Callable[[bytes], bool], packages: Iterable[bytes], count: int, *,
             log: Callable[[str], None] = print, samples: int = 50) -> SoakResult:
    warmup = warmup_for(count)
    every = max(1, count // samples)
    trim = _malloc_trim()
    gc.collect()
    start = rss_kb()
    trim()
    points: list[tuple[int, int]] = [(0, start)]
    live: list[tuple[int, int]] = [(0, rss_kb())]
    unexpected = 0
    t0 = time.perf_counter()
    done = 0
    for done, data in enumerate(packages, start=1):
        unexpected += not intake(data)
        if done % every == 0 or done == warmup or done == count:
            points.append((done, rss_kb()))
            trim()
            live.append((done, rss_kb()))
            if done % (every * 5) == 0 or done == count:
                rate = done / (time.perf_counter() - t0)
                log(f"  soak {done:>7}/{count}  RSS {points[-1][1] / 1024:7.1f} MiB  {rate:6.0f} docs/s"
                    f"  (about {(count - done) / rate / 60:.1f} min left)")
        if done >= count:
            break
    seconds = time.perf_counter() - t0
    after = [p for p in points if p[0] >= warmup]
    after_warmup_kb = next((kb for docs, kb in points if docs >= warmup), points[-1][1])
    return SoakResult(docs=done, seconds=seconds, warmup_docs=warmup, start_kb=start,
                      after_warmup_kb=after_warmup_kb, end_kb=points[-1][1], peak_kb=max(kb for _, kb in points),
                      growth_kb_per_doc=slope(after), live_growth_kb_per_doc=slope([p for p in live if p[0] >= warmup]),
                      samples=tuple(points), live_samples=tuple(live), unexpected=unexpected)


# --------------------------------------------------------------------------- attribution


def stages(pipeline: Any) -> list[tuple[str, Callable[[bytes], Any]]]:
    """Cumulative prefixes of the pipeline's work, without the store (packages repeat here)."""
    from gateway.archive import MANIFEST_MEMBER, read_package
    from gateway.manifest import parse_kousei, peek_arrival_number
    from gateway.signature import inspect_signature, verify_signature
    from gateway.xmlsafe import parse_xml

    limits = pipeline.policy.limits
    now = dt.datetime.now(dt.UTC)

    def archive(data: bytes) -> Any:
        raw = read_package(data, limits)
        peek_arrival_number(parse_kousei(raw.members))
        return raw

    def signature(data: bytes) -> Any:
        raw = archive(data)
        document = parse_xml(raw.members[MANIFEST_MEMBER], what=MANIFEST_MEMBER)
        members = {k: v for k, v in raw.members.items() if k != MANIFEST_MEMBER}
        candidate = inspect_signature(document, members)
        return verify_signature(candidate, certificate=candidate.certificate, at=now)

    def verify(data: bytes) -> Any:
        return pipeline.verify(archive(data), arrival_time=now)

    def validate(data: bytes) -> Any:
        verified = verify(data)
        procedure = pipeline.procedure_for(verified)
        return procedure, pipeline.validate(verified, procedure)

    def transform(data: bytes) -> Any:
        procedure, context = validate(data)
        return procedure.transform(context)

    return [("archive + peek 到達番号", archive), ("+ parse kousei + signature (signxml)", signature),
            ("+ trust + manifest (verify_package)", verify), ("+ form schema + rules (validate)", validate),
            ("+ transform", transform)]


def diagnose(pipeline: Any, pool: Sequence[bytes], iterations: int, *, trace_iterations: int,
             log: Callable[[str], None] = print) -> dict:
    """RSS slope per cumulative stage, then a tracemalloc diff of the stage that grows most."""
    results = []
    named = stages(pipeline)
    for name, step in named:
        warm = max(1, iterations // 10)
        for i in range(warm):
            step(pool[i % len(pool)])
        gc.collect()
        points = [(0, rss_kb())]
        every = max(1, iterations // 20)
        t0 = time.perf_counter()
        for i in range(1, iterations + 1):
            step(pool[i % len(pool)])
            if i % every == 0:
                points.append((i, rss_kb()))
        growth = slope(points)
        results.append({"stage": name, "iterations": iterations, "growth_kb_per_doc": growth,
                        "start_kb": points[0][1], "end_kb": points[-1][1],
                        "us_per_doc": (time.perf_counter() - t0) / iterations * 1e6})
        log(f"  diagnose {name:<40} {growth:7.3f} KB/doc  RSS {points[0][1] / 1024:.1f} → {points[-1][1] / 1024:.1f} MiB")
    worst = max(range(len(results)), key=lambda i: results[i]["growth_kb_per_doc"])
    trace = _trace(named[worst][1], pool, trace_iterations) if trace_iterations else []
    return {"stages": results, "worst": results[worst]["stage"], "tracemalloc_top": trace}


def _trace(step: Callable[[bytes], Any], pool: Sequence[bytes], iterations: int) -> list[str]:
    for i in range(max(1, iterations // 10)):
        step(pool[i % len(pool)])
    gc.collect()
    tracemalloc.start(12)
    try:
        before = tracemalloc.take_snapshot()
        for i in range(iterations):
            step(pool[i % len(pool)])
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    keep = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap>")]
    diffs = after.filter_traces(keep).compare_to(before.filter_traces(keep), "traceback")
    lines = []
    for stat in diffs[:6]:
        if stat.size_diff <= 0:
            break
        lines.append(f"{stat.size_diff / iterations:+.1f} B/doc ({stat.count_diff:+d} blocks)")
        lines.extend("    " + line for line in stat.traceback.format(limit=6, most_recent_first=True)[:12])
    return lines


# --------------------------------------------------------------------------- the fresh process


def main(job_path: str, out_path: str) -> None:
    """Run one soak (and its diagnosis) as described by the pickled job; write JSON results."""
    from bench import packages, subjects

    with open(job_path, "rb") as fh:
        job = pickle.load(fh)
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {0})
    subjects.log_to_file(job["log_file"], job["log_level"])
    pipeline = subjects.make_gateway(job["config"])[1]
    settle_process()  # as `gateway serve` does
    spec, count = job["spec"], job["count"]
    cpus = {1} if (os.cpu_count() or 1) > 1 else None

    def log(message: str) -> None:
        print(message, flush=True)

    result = run_soak(subjects.gateway_intake(pipeline), packages.stream(spec, job["first_seq"], count, cpus=cpus),
                      count, log=log)
    out: dict = {"soak": result.as_dict()}
    if result.flagged or job["diagnose"]:
        pool = packages.generate(spec, job["first_seq"] + count, 500)
        log(f"\nattributing memory: each stage alone, {job['iterations']} iterations over {len(pool)} packages")
        out["diagnosis"] = diagnose(pipeline, pool, job["iterations"], trace_iterations=job["iterations"] // 5,
                                    log=log)
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(out, fh, ensure_ascii=False)


if __name__ == "__main__":
    main(*sys.argv[1:])
