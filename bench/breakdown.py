"""Where one ``Pipeline.intake`` spends its time, phase by phase, without a profiler's overhead.

The bench wraps the pipeline's collaborators *from the outside*, for the duration of this
measurement only (module attributes the pipeline and verification look up at call time, and
attributes of this one pipeline's instances); no production code path exists for it. Times
are inclusive; the table marks the top-level phases, whose sum plus "other" is the intake.

Times are the thread's **CPU** time (``time.thread_time_ns``), not wall time: the HTTP goal
is a CPU budget on one core (the server's µs/req), and wall time would add the fsync waits,
which overlap with other requests, and whatever else this shared VM runs. The intake's wall
time is reported beside it.
"""

from __future__ import annotations

import dataclasses
import importlib
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

# (module, attribute, label, top-level?)
MODULE_PHASES = [
    ("gateway.pipeline", "read_package", "archive: read_package", True),
    ("gateway.pipeline", "parse_kousei", "manifest: parse kousei.xml (once)", True),
    ("gateway.pipeline", "peek_arrival_number", "manifest: peek 到達番号", True),
    ("gateway.verification", "parse_xml", "  verify: parse kousei.xml (resume only)", False),
    ("gateway.verification", "inspect_signature", "  verify: inspect_signature", False),
    ("gateway.verification", "verify_signature", "  verify: verify_signature (signxml)", False),
    ("gateway.verification", "parse_manifest", "  verify: parse_manifest", False),
    ("gateway.pipeline", "parse_xml", "  validate: parse form", False),
    ("gateway.pipeline", "validate_form", "  validate: form schema (lxml)", False),
    ("gateway.pipeline", "run_checks", "  validate: procedure rules", False),
]
# (attribute path on the pipeline, label, top-level?)
INSTANCE_PHASES = [
    ("store.record_arrival", "store: record_arrival", True),
    ("verify", "verify (all)", True),
    ("validator.validate", "  verify: certificate trust", False),
    ("procedure_for", "procedure_for", True),
    ("validate", "validate (all)", True),
    ("store.transition", "store: transition", True),
    ("store.advance", "store: advance", True),
    ("store.queue_delivery", "store: queue_delivery", True),
    ("plugins.route_delivery", "plugins: route_delivery", True),
    ("plugins.state_changed", "plugins: state_changed", True),
]
OTHER = "other (pipeline, logging, receipt)"


CLOCK = time.thread_time_ns
"""What the phases are timed with (CPU time of the calling thread)."""


def _timed(fn: Callable[..., Any], label: str, sink: dict[str, int]) -> Callable[..., Any]:
    clock = CLOCK

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            sink[label] += clock() - t0
            sink["#" + label] += 1

    return wrapper


@contextmanager
def _patched(owner: Any, name: str, value: Any):
    old = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


def measure(pipeline: Any, packages: Sequence[bytes],
            per_package: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Time each phase of ``Pipeline.intake`` for every package (all new); the raw values per
    phase are appended to ``per_package`` (so chunks can be interleaved) and returned."""
    per_package = defaultdict(list, per_package or {})
    sink: dict[str, int] = defaultdict(int)
    labels: list[tuple[str, bool]] = []
    with ExitStack() as stack:
        stack.enter_context(_sql_counter(pipeline.store.engine, sink))
        for module_name, attr, label, top in MODULE_PHASES:
            module = importlib.import_module(module_name)
            if hasattr(module, attr):
                stack.enter_context(_patched(module, attr, _timed(getattr(module, attr), label, sink)))
                labels.append((label, top))
        for path, label, top in INSTANCE_PHASES:
            *parents, attr = path.split(".")
            owner = pipeline
            for parent in parents:
                owner = getattr(owner, parent)
            if not hasattr(owner, attr):
                continue
            labels.append((label, top))
            if path == "procedure_for":  # time the transform too: it is a field of the Procedure
                stack.enter_context(_patched(owner, attr, _with_timed_transform(getattr(owner, attr), sink)))
                labels.append(("transform", True))
            stack.enter_context(_patched(owner, attr, _timed(getattr(owner, attr), label, sink)))
        for data in packages:
            sink.clear()
            w0, t0 = time.perf_counter_ns(), CLOCK()
            receipt = pipeline.intake(data, source="bench")
            total, wall = CLOCK() - t0, time.perf_counter_ns() - w0
            if receipt.state != "queued":
                raise RuntimeError(f"breakdown package ended {receipt.state}")
            per_package["intake (total)"].append(total / 1000)
            per_package["@wall"].append(wall / 1000)
            top_sum = 0
            for label, top in labels:
                per_package[label].append(sink[label] / 1000)
                per_package["#" + label].append(sink["#" + label])
                top_sum += sink[label] if top else 0
            per_package[OTHER].append((total - top_sum) / 1000)
            per_package["#sql"].append(sink["#sql"])
            per_package["#commit"].append(sink["#commit"])
    per_package["@labels"] = labels  # type: ignore[assignment]
    return per_package


def summarize(per_package: dict[str, list[float]]) -> list[dict]:
    """Per-phase median µs per package, its share of the intake, calls, statements, commits."""
    labels: list[tuple[str, bool]] = per_package["@labels"]  # type: ignore[assignment]
    total = statistics.median(per_package["intake (total)"])
    order = ["intake (total)", *[label for label, _ in labels], OTHER]
    tops = {label for label, top in labels if top} | {OTHER}
    rows = [{"phase": label, "top_level": label in tops, "median_us": statistics.median(per_package[label]),
             "share": statistics.median(per_package[label]) / total if total else 0.0,
             "calls_per_package": statistics.mean(per_package.get("#" + label, [1]))}
            for label in order if label == OTHER or label == "intake (total)" or any(per_package["#" + label])]
    rows[0]["sql_statements_per_package"] = statistics.mean(per_package["#sql"])
    rows[0]["commits_per_package"] = statistics.mean(per_package["#commit"])
    rows[0]["wall_median_us"] = statistics.median(per_package["@wall"])
    return rows


@contextmanager
def _sql_counter(engine: Any, sink: dict[str, int]):
    """Count statements and commits on the store's engine (SQLAlchemy events, removed after)."""
    import sqlalchemy as sa

    def statement(*_: Any) -> None:
        sink["#sql"] += 1

    def commit(*_: Any) -> None:
        sink["#commit"] += 1

    sa.event.listen(engine, "before_cursor_execute", statement)
    sa.event.listen(engine, "commit", commit)
    try:
        yield
    finally:
        sa.event.remove(engine, "before_cursor_execute", statement)
        sa.event.remove(engine, "commit", commit)


def _with_timed_transform(procedure_for: Callable[..., Any], sink: dict[str, int]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        procedure = procedure_for(*args, **kwargs)
        return dataclasses.replace(procedure, transform=_timed(procedure.transform, "transform", sink))

    return wrapper


def table(rows: Sequence[dict]) -> str:
    out = [f"  {'phase':<46} {'CPU µs':>9} {'share':>7} {'calls/pkg':>10}"]
    for row in rows:
        calls = "" if row["phase"] in ("intake (total)", OTHER) else f"{row['calls_per_package']:.1f}"
        out.append(f"  {row['phase']:<46} {row['median_us']:9.0f} {row['share'] * 100:6.1f}% {calls:>10}")
    first = rows[0]
    out.append(f"  SQL statements per package: {first['sql_statements_per_package']:.1f},"
               f" commits per package: {first['commits_per_package']:.1f};"
               f" intake wall time {first.get('wall_median_us', 0):.0f} µs (CPU plus waits: fsync, other processes)")
    return "\n".join(out)
