"""``python -m bench``: the gateway against its floor, in-process and over HTTP, then a soak.

    python -m bench              # full run (~10 min): 3 rounds, 10 s HTTP runs, 100,000-doc soak
    python -m bench --quick      # smoke run (~1-2 min)
    python -m bench --soak 0 --no-http --strict

Prints tables with every figure as a ratio to the floor measured in the same run, PASS/FAIL
per goal, and writes everything to bench/results/latest.json. Exit status 0 unless
``--strict`` and a goal failed. Method and how to read it: bench/README.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import breakdown, inprocess, overhttp, packages, report, subjects
from bench.timing import machine_info, noise, pin
from gateway.serving import settle_process

SIZES = {"10KB": 10_000, "100KB": 100_000}
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
PROJECT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 2 s HTTP runs, small counts, 2,000-doc soak")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--duration", type=float, help="seconds per HTTP run (default 10; quick 2)")
    p.add_argument("--inproc-n", type=int, help="at most this many packages per in-process round per row"
                   " (default 1000; quick 100)")
    p.add_argument("--inproc-seconds", type=float, help="at most this long per in-process round per row"
                   " (default 2; quick 0.5)")
    p.add_argument("--soak", type=int, help="soak documents (default 100000; quick 2000; 0 skips)")
    p.add_argument("--diagnose", action="store_true", help="attribute memory per component even without growth")
    p.add_argument("--connections", type=int, default=2, help="load generator connections (default 2)")
    p.add_argument("--threads", type=int, default=8, help="waitress threads (default 8, as gateway serve)")
    p.add_argument("--log-level", default="INFO", help="gateway log level (default INFO, the production default)")
    p.add_argument("--no-http", action="store_true")
    p.add_argument("--no-inprocess", action="store_true")
    p.add_argument("--strict", action="store_true", help="exit 1 when a goal fails")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--keep", action="store_true", help="keep the work directory (DBs, logs, pools)")
    args = p.parse_args(argv)
    args.duration = args.duration or (2.0 if args.quick else 10.0)
    args.inproc_n = args.inproc_n or (100 if args.quick else 1000)
    args.inproc_seconds = args.inproc_seconds or (0.5 if args.quick else 2.0)
    args.soak = (2000 if args.quick else 100_000) if args.soak is None else args.soak
    args.warm = 20 if args.quick else 50
    return args


def log(message: str) -> None:
    print(message, flush=True)


def main(argv: list[str]) -> int:
    if "--revocation" in argv:  # a separate benchmark: the CRL index (bench/revocation.py)
        from bench import revocation

        return revocation.main([a for a in argv if a != "--revocation"])
    if "--mandated" in argv:  # a separate measurement: the bound any gateway could reach (bench/mandated.py)
        from bench import mandated

        return mandated.main([a for a in argv if a != "--mandated"])
    args = parse_args(argv)
    started = time.time()
    info = machine_info()
    info["main_process"] = pin(0)
    info["noise_at_start"] = noise()
    info["load_generator"] = overhttp.generator()
    log(f"machine: {info['cpu_count']} CPU ({info['cpu_model']}), {info['mem_gib']} GiB, Linux {info['kernel']},"
        f" Python {info['python']}, libxml2 {info['libxml2']}, SQLite {info['sqlite']}, wrk {info['wrk']}")
    log("packages: " + ", ".join(f"{k} {v}" for k, v in info["packages"].items()))
    if info["load_generator"] != "wrk":
        log("NOTE: wrk not found (apt-get install -y wrk); using the Python load generator (bench/pyload.py),"
            " which may itself limit the HTTP rates above ~1,500 req/s.")
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    results: dict = {"machine": info, "settings": {k: (str(v) if isinstance(v, Path) else v)
                                                    for k, v in vars(args).items()}}
    try:
        run(args, workdir, results)
    except Exception as exc:  # report what was measured before the failure, then fail
        import traceback

        traceback.print_exc()
        results["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if args.keep:
            log(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results["seconds"] = round(time.time() - started, 1)
    info["noise_at_end"] = noise()
    found = report.goals(results.get("http", []), results.get("inprocess", []), results.get("soak"))
    results["goals"] = [g.as_dict() for g in found]
    print_report(results, found)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    log(f"\nresults written to {args.out} ({results['seconds']:.0f} s in all)")
    if "error" in results:
        log(f"the run stopped early: {results['error']}")
        return 2
    return 1 if args.strict and not all(g.passed for g in found) else 0


def run(args: argparse.Namespace, workdir: Path, results: dict) -> None:
    from gateway.testpki import init_pki

    pki = init_pki(workdir / "pki")
    subjects.log_to_file(workdir / "gateway.log", args.log_level)

    def config(data_dir: Path) -> dict:
        return subjects.gateway_config(data_dir, pki, args.log_level)

    # One gateway (own DB) and one floor (own DB) per size, built as `gateway serve` builds them.
    gateways = {size: subjects.make_gateway(config(workdir / f"inproc-{size}")) for size in SIZES}
    specs = {size: packages.make_spec(gateways[size][0].config, pki.directory, label=size, target_bytes=target,
                                      seq_base=i * 1_000_000_000)
             for i, (size, target) in enumerate(SIZES.items())}
    need = args.warm + args.rounds * args.inproc_n
    pools: dict[str, list[bytes]] = {}
    for size, spec in specs.items():
        t0 = time.perf_counter()
        pools[size] = packages.generate(spec, 0, need)
        log(f"generated {need} distinct signed {size} packages ({len(pools[size][0]):,} B each)"
            f" in {time.perf_counter() - t0:.1f} s")
    results["packages"] = {size: {"bytes": len(pools[size][0]), "procedure": spec.procedure_code,
                                  "members": {"form": len(spec.form_xml),
                                              **{n: len(a[2]) for n, a in spec.attachments.items()}}}
                           for size, spec in specs.items()}

    floor_rate: dict[str, float] = {}
    if not args.no_inprocess:
        log(f"\nin-process: {args.rounds} interleaved rounds, each row ≤ {args.inproc_n} new packages"
            f" or ≤ {args.inproc_seconds:g} s per round")
        rows_in = {}
        for size in SIZES:
            rows_in[(size, "floor")] = subjects.floor_intake(workdir / f"inproc-floor-{size}.db")
            rows_in[(size, "gateway")] = subjects.gateway_intake(gateways[size][1])
        inprocess.warm_up(rows_in, pools, args.warm)
        settle_process()  # as `gateway serve` does once the app is built (both rows share the process)
        rows = inprocess.run_rounds(rows_in, pools, rounds=args.rounds, per_round=args.inproc_n,
                                    seconds=args.inproc_seconds, first=args.warm, log=log)
        results["inprocess"] = [r.summary() for r in rows]
        # The fastest floor round bounds how fast the floor can take new packages over HTTP.
        floor_rate = {r.size: max(r.docs_per_s) for r in rows if r.subject == "floor"}

    n = min(len(pools["10KB"]) - args.warm, 60 if args.quick else 300)
    log(f"\nphase breakdown of Pipeline.intake: {n} new packages per size on a fresh gateway,"
        " in 3 interleaved chunks")
    fresh_by_size = {size: subjects.make_gateway(config(workdir / f"breakdown-{size}"))[1] for size in SIZES}
    raw: dict[str, dict] = {size: {} for size in SIZES}
    for size, fresh in fresh_by_size.items():
        inprocess.warm_up({(size, "gateway"): subjects.gateway_intake(fresh)}, pools, args.warm)
    chunk = n // 3
    for c in range(3):
        for size, fresh in fresh_by_size.items():
            first = args.warm + c * chunk
            raw[size] = breakdown.measure(fresh, pools[size][first:first + chunk], raw[size])
    results["breakdown"] = {size: breakdown.summarize(raw[size]) for size in SIZES}
    fresh = subjects.make_gateway(config(workdir / "profile"))[1]
    inprocess.warm_up({("10KB", "gateway"): subjects.gateway_intake(fresh)}, pools, args.warm)
    log(f"profiling Pipeline.intake on {n} new 10KB packages")
    results["profile_10KB"] = inprocess.profile_intake(subjects.gateway_intake(fresh),
                                                       pools["10KB"][args.warm:args.warm + n])

    if not args.no_http:
        files = {}
        for size, spec in specs.items():
            # Enough distinct packages for the fastest row: the floor's in-process rate bounds it
            # (HTTP only adds work on the same core); the margin absorbs this VM's noise.
            rate = floor_rate.get(size) or 2000.0
            want = args.warm + math.ceil(rate * args.duration * 1.5) + 200
            if want > len(pools[size]):
                t0 = time.perf_counter()
                pools[size] += packages.generate(spec, len(pools[size]), want - len(pools[size]))
                log(f"generated {want} {size} packages in all for HTTP ({time.perf_counter() - t0:.1f} s more)")
            files[size] = overhttp.write_pool(workdir / f"pool-{size}", pools[size])
        warm_packages = {size: pools[size][: args.warm] for size in SIZES}
        made = {size: len(pools[size]) for size in SIZES}
        pools.clear()
        gc.collect()
        log(f"\nHTTP: {args.rounds} rounds × {args.duration:g} s per row, server pinned to CPU0 (waitress,"
            f" {args.threads} threads), {overhttp.generator()} -c{args.connections} on CPU1")

        def grow(size: str, n: int) -> None:
            overhttp.append_pool(files[size], packages.generate(specs[size], made[size], n))
            made[size] += n

        rows_http = overhttp.run_http(files, warm_packages, gateway_config=config, grow=grow, workdir=workdir,
                                      rounds=args.rounds, duration=args.duration, connections=args.connections,
                                      threads=args.threads, token=subjects.TOKEN, warm=args.warm, log=log)
        results["http"] = [r.summary() for r in rows_http]
        for paths in files.values():
            for path in paths:
                path.unlink(missing_ok=True)
    pools.clear()
    gateways.clear()
    gc.collect()

    if args.soak:
        run_soak(args, workdir, results, config, specs["10KB"])


def run_soak(args: argparse.Namespace, workdir: Path, results: dict, config, spec) -> None:
    """The soak in a fresh process (see bench/soak.py): nothing freed here can hide its growth."""
    log(f"\nsoak: {args.soak} new 10KB packages through Pipeline.intake in a fresh process on CPU0"
        " (producer process on CPU1)")
    job, out = workdir / "soak-job.pickle", workdir / "soak-result.json"
    with job.open("wb") as fh:
        pickle.dump({"config": config(workdir / "soak"), "spec": spec, "count": args.soak,
                     "first_seq": 500_000_000, "diagnose": args.diagnose,
                     "iterations": 1000 if args.quick else 10_000, "log_level": args.log_level,
                     "log_file": workdir / "gateway-soak.log"}, fh)
    done = subprocess.run([sys.executable, "-m", "bench.soak", str(job), str(out)], cwd=PROJECT)
    if done.returncode != 0 or not out.is_file():
        raise RuntimeError(f"the soak process failed ({done.returncode})")
    found = json.loads(out.read_text(encoding="utf-8"))
    results["soak"] = found["soak"]
    if "diagnosis" in found:
        results["soak_diagnosis"] = found["diagnosis"]


def print_report(results: dict, found: list[report.Goal]) -> None:
    info = results["machine"]
    log("\n" + "=" * 100)
    log(f"RESULTS  ({info['cpu_count']} CPU, Python {info['python']}, generator {info['load_generator']};"
        " medians of rounds, spread = (max-min)/median; ×floor = gateway ÷ floor, same run)")
    log(f"machine noise: start {info['noise_at_start']}; end {info.get('noise_at_end', '?')}")
    if "packages" in results:
        log("packages: " + ", ".join(f"{s} = {p['bytes']:,} B ({p['procedure']}, members "
                                     + ", ".join(f"{n} {b:,}" for n, b in p["members"].items()) + ")"
                                     for s, p in results["packages"].items()))
    if results.get("inprocess"):
        log("\nIn-process (one core, fresh SQLite per row, every package new):")
        log(report.inprocess_table(results["inprocess"]))
    if results.get("http"):
        log("\nHTTP (waitress + Flask pinned to CPU0, load on CPU1; 'replay' = same 到達番号 and bytes again → 200):")
        log(report.http_table(results["http"]))
    if results.get("soak"):
        log("\nSoak (full pipeline in-process, new 10KB packages):")
        log(report.soak_text(results["soak"]))
    if results.get("soak_diagnosis"):
        diag = results["soak_diagnosis"]
        log("  per-stage growth (cumulative stages, no store):")
        for stage in diag["stages"]:
            log(f"    {stage['stage']:<40} {stage['growth_kb_per_doc']:7.3f} KB/doc  {stage['us_per_doc']:7.0f} µs/doc")
        if diag["tracemalloc_top"]:
            log(f"  tracemalloc, stage '{diag['worst']}' (Python allocations only):")
            log("\n".join("    " + line for line in diag["tracemalloc_top"]))
    for size, rows in results.get("breakdown", {}).items():
        log(f"\nWhere the time goes, {size}: Pipeline.intake by phase (median CPU µs per package; indented = inside the"
            " phase above it):")
        log(breakdown.table(rows))
    if results.get("profile_10KB"):
        log("\nWhere the time goes: cProfile of Pipeline.intake, 10KB, top 15 by cumulative time:")
        log(results["profile_10KB"]["cumulative"])
    log("\nGoals:")
    for goal in found:
        log(goal.line())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
