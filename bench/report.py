"""The printed report: tables with every figure also given as a ratio to the same run's floor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

HTTP_GOAL = 0.60
"""The gateway over HTTP must reach at least this share of the floor's request rate."""


@dataclass(frozen=True)
class Goal:
    name: str
    measured: str
    target: str
    passed: bool

    def line(self) -> str:
        return f"  {'PASS' if self.passed else 'FAIL'}  {self.name:<52} {self.measured:<26} (goal {self.target})"

    def as_dict(self) -> dict:
        return {"name": self.name, "measured": self.measured, "target": self.target, "passed": self.passed}


def _cell(summary: dict, fmt: str) -> str:
    return f"{format(summary['median'], fmt)} ({summary['spread'] * 100:.0f}%)"


def _ratio(value: float, floor: float) -> str:
    return f"{value / floor:5.2f}×" if floor else "  -  "


def inprocess_table(rows: Sequence[dict]) -> str:
    floors = {r["size"]: r for r in rows if r["subject"] == "floor"}
    out = [f"  {'size':<6} {'subject':<9} {'docs/s (spread)':>17} {'×floor':>7} {'p50 µs':>14} {'×floor':>7}"
           f" {'p99 µs':>14} {'×floor':>7}"]
    for r in rows:
        f = floors.get(r["size"])
        out.append(
            f"  {r['size']:<6} {r['subject']:<9} {_cell(r['docs_per_s'], '.0f'):>17}"
            f" {_ratio(r['docs_per_s']['median'], f['docs_per_s']['median']) if f else '':>7}"
            f" {_cell(r['p50_us'], '.0f'):>14} {_ratio(r['p50_us']['median'], f['p50_us']['median']) if f else '':>7}"
            f" {_cell(r['p99_us'], '.0f'):>14} {_ratio(r['p99_us']['median'], f['p99_us']['median']) if f else '':>7}"
            + (f"  !! {r['unexpected']} not queued" if r["unexpected"] else ""))
    return "\n".join(out)


def http_table(rows: Sequence[dict]) -> str:
    floors = {r["size"]: r for r in rows if r["endpoint"] == "floor"}
    out = [f"  {'size':<6} {'endpoint':<15} {'req/s (spread)':>16} {'×floor':>7} {'p50 ms':>13} {'×floor':>7}"
           f" {'p99 ms':>13} {'×floor':>7} {'CPU µs/req':>14} {'×floor':>7}"]
    for r in rows:
        f = floors.get(r["size"])

        def ratio(key: str) -> str:
            return _ratio(r[key]["median"], f[key]["median"]) if f else ""

        notes = []
        if r["not_expected"]:
            notes.append(f"{r['not_expected']} unexpected answers")
        if r["wrapped"] and "replay" not in r["endpoint"]:
            notes.append(f"pool wrapped {r['wrapped']}× (replays mixed in)")
        if r["errors"]:
            notes.append(f"{r['errors']} socket/status errors")
        out.append(
            f"  {r['size']:<6} {r['endpoint']:<15} {_cell(r['req_per_s'], '.0f'):>16} {ratio('req_per_s'):>7}"
            f" {_cell(r['p50_ms'], '.2f'):>13} {ratio('p50_ms'):>7} {_cell(r['p99_ms'], '.2f'):>13} {ratio('p99_ms'):>7}"
            f" {_cell(r['cpu_us_per_req'], '.0f'):>14} {ratio('cpu_us_per_req'):>7}"
            + (f"  !! {'; '.join(notes)}" if notes else ""))
    return "\n".join(out)


def soak_text(soak: dict) -> str:
    mib = 1024
    lines = [
        f"  {soak['docs']} documents in {soak['seconds']:.0f} s ({soak['docs'] / soak['seconds']:.0f} docs/s),"
        f" warm-up {soak['warmup_docs']} documents",
        f"  RSS start {soak['start_kb'] / mib:.1f} MiB, after warm-up {soak['after_warmup_kb'] / mib:.1f} MiB,"
        f" end {soak['end_kb'] / mib:.1f} MiB, peak {soak['peak_kb'] / mib:.1f} MiB",
        f"  growth after warm-up: {soak['growth_kb_per_doc']:.3f} KB/doc as RSS is,"
        f" {soak['live_growth_kb_per_doc']:.3f} KB/doc after malloc_trim (least-squares slopes;"
        f" limit {soak['limit_kb_per_doc']} KB/doc)" + ("  !! FLAGGED" if soak["flagged"] else ""),
    ]
    for name, key in (("RSS", "samples"), ("RSS after malloc_trim", "live_samples")):
        series = soak[key]
        step = max(1, len(series) // 10)
        picks = series[::step] + ([series[-1]] if (len(series) - 1) % step else [])
        lines.append(f"  {name} by documents: " + ", ".join(f"{d}: {kb / mib:.1f}" for d, kb in picks) + " MiB")
    if soak["unexpected"]:
        lines.append(f"  !! {soak['unexpected']} packages did not end queued")
    return "\n".join(lines)


def goals(http_rows: Sequence[dict], inprocess_rows: Sequence[dict], soak: dict | None) -> list[Goal]:
    found: list[Goal] = []
    floors = {r["size"]: r for r in http_rows if r["endpoint"] == "floor"}
    for r in http_rows:
        if r["endpoint"] != "gateway" or r["size"] not in floors:
            continue
        share = r["req_per_s"]["median"] / floors[r["size"]]["req_per_s"]["median"]
        found.append(Goal(f"HTTP {r['size']}: gateway req/s vs floor req/s", f"{share * 100:.0f} %",
                          f"≥ {HTTP_GOAL * 100:.0f} %", share >= HTTP_GOAL))
    if soak is not None:
        worst = max(soak["growth_kb_per_doc"], soak["live_growth_kb_per_doc"])
        found.append(Goal(f"soak: RSS growth after warm-up ({soak['docs']} docs)",
                          f"{worst:.3f} KB/doc", f"≤ {soak['limit_kb_per_doc']} KB/doc", not soak["flagged"]))
    bad = sum(r["not_expected"] for r in http_rows) + sum(r["unexpected"] for r in inprocess_rows)
    bad += soak["unexpected"] if soak else 0
    wrapped = sum(r["wrapped"] for r in http_rows if "replay" not in r["endpoint"])
    found.append(Goal("validity: every new package queued, every replay 200", f"{bad} unexpected, {wrapped} wraps",
                      "0 and 0", bad == 0 and wrapped == 0))
    return found
