"""``python -m bench.revocation`` (``./dev bench --revocation``): the CRL index at 10⁴, 10⁵, 10⁶ entries.

    python -m bench.revocation                      # 10⁴, 10⁵, 10⁶ (~2 min once the CRLs are cached)
    python -m bench.revocation --sizes 10000,100000 # smaller
    python -m bench.revocation --fresh              # regenerate the cached PKI and CRLs

For each size, one CRL of that many entries for one (root, municipality) partition of the test
PKI, generated once (``gateway.testpki.make_large_crl``; cryptography's builder is quadratic) and
cached in the work directory. Then, in a fresh child process per size so memory figures are
not mixed up:

  refresh  ``gateway.crlrefresh.refresh`` of that CRL: parse, signature, checks, packed index
           written. Wall time (and CPU time: this VM is shared), and peak RSS (VmHWM) over the
           process's RSS before.
  check    ``CrlChecker.check()`` on two real certificates (one good, one listed): µs p50/p99.
  lookup   ``PartitionIndex.lookup`` on random serials, half listed, half not: µs p50/p99.
  naive    cryptography's ``get_revoked_certificate_by_serial_number`` on the same serials with
           the CRL parsed and verified once beforehand (the naive approach at its best): µs p50/p99.

``×naive`` = naive p50 ÷ check p50, both measured in the same child. Results also go to
bench/results/revocation.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.timing import noise, percentile, pin, rss_kb

PROJECT = Path(__file__).resolve().parent.parent
RESULTS = PROJECT / "bench" / "results" / "revocation.json"
ROOT, MUNI = 1, 0  # the newer root, 千代田区: yamada-taro (good) and sato-ichiro (listed) live there


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.revocation", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10000,100000,1000000", help="CRL entries per run, comma-separated")
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "gateway-bench-revocation",
                   help="cache of the test PKI and the generated CRLs (kept between runs)")
    p.add_argument("--fresh", action="store_true", help="regenerate the cached PKI and CRLs")
    p.add_argument("--checks", type=int, default=5000, help="timed check() calls per certificate")
    p.add_argument("--lookups", type=int, default=20000, help="timed index lookups")
    p.add_argument("--naive-seconds", type=float, default=3.0, help="time budget of the naive lookups per size")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def serials_for(size: int) -> list[int]:
    """The listed serials of the size-N CRL (regenerated from the seed, never stored)."""
    rng = random.Random(size)
    return [rng.getrandbits(159) | 1 for _ in range(size)]


def ensure_inputs(args: argparse.Namespace, sizes: list[int]) -> dict[int, dict]:
    from gateway.testpki import init_pki, load_pki, make_large_crl

    if args.fresh:
        shutil.rmtree(args.workdir, ignore_errors=True)
    pki_dir = args.workdir / "pki"
    pki = load_pki(pki_dir) if (pki_dir / "pki.json").is_file() else init_pki(pki_dir)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    sato = pki.resident("sato-ichiro").cert.serial_number
    made = {}
    for size in sizes:
        path, meta_path = args.workdir / f"crl-{size}.der", args.workdir / f"crl-{size}.json"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() and path.is_file() else None
        if meta and dt.datetime.fromisoformat(meta["next_update"]) > now + dt.timedelta(days=1):
            made[size] = {**meta, "cached": True}
            continue
        log(f"generating a {size:,}-entry CRL (cached in {args.workdir})")
        started = time.perf_counter()
        base = now - dt.timedelta(days=5 * 365)
        entries = ((s, base + dt.timedelta(seconds=i * 150)) for i, s in enumerate(serials_for(size)))
        listed = itertools.chain(entries, [(sato, now - dt.timedelta(days=1))])
        data = make_large_crl(pki.roots[ROOT], pki.root_keys[ROOT], pki.municipalities[MUNI], revoked=listed,
                              this_update=now - dt.timedelta(hours=1), next_update=now + dt.timedelta(days=30),
                              number=size)
        path.write_bytes(data)
        meta = {"path": str(path), "bytes": len(data), "generate_s": time.perf_counter() - started,
                "next_update": (now + dt.timedelta(days=30)).isoformat()}
        meta_path.write_text(json.dumps(meta))
        made[size] = {**meta, "cached": False}
    return made


def builder_cost(pki_dir: Path, entries: int = 5000) -> float:
    """Seconds cryptography's CRL builder takes for ``entries`` (it copies its list on every add)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    from gateway.testpki import load_pki

    pki = load_pki(pki_dir)
    now = dt.datetime.now(dt.timezone.utc)
    started = time.perf_counter()
    builder = (x509.CertificateRevocationListBuilder().issuer_name(pki.roots[ROOT].subject).last_update(now)
               .next_update(now + dt.timedelta(days=1)))
    for serial in serials_for(entries):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build())
    builder.sign(pki.root_keys[ROOT], hashes.SHA256())
    return time.perf_counter() - started


# --------------------------------------------------------------------------- one size, in a child


def child(job: dict) -> dict:
    from cryptography import x509

    from gateway.crlcheck import CrlChecker
    from gateway.crlindex import PartitionIndex
    from gateway.crlrefresh import CrlSource, refresh
    from gateway.testpki import load_pki
    from gateway.trust import CertificateValidator, TrustAnchors

    pin(0)
    pki = load_pki(Path(job["pki"]))
    anchors = TrustAnchors.load(pki.root_paths)
    index_dir = Path(job["index"])
    shutil.rmtree(index_dir, ignore_errors=True)
    out: dict = {}

    before = rss_kb()
    started, cpu = time.perf_counter(), time.process_time()
    report = refresh(index_dir, [CrlSource(job["crl"])], anchors)
    out["refresh_s"], out["refresh_cpu_s"] = time.perf_counter() - started, time.process_time() - cpu
    out["refresh_peak_mb"] = (peak_rss_kb() - before) / 1024
    assert report.ok and len(report.changed) == 1, report
    out["index_mb"] = sum(p.stat().st_size for p in index_dir.glob("*.idx")) / 2**20

    started = time.perf_counter()
    checker = CrlChecker(index_dir)
    out["load_ms"] = (time.perf_counter() - started) * 1e3
    validator = CertificateValidator(anchors, allow_test_roots=True)
    now = dt.datetime.now(dt.timezone.utc)
    certs = []
    for resident, expected in (("yamada-taro", "good"), ("sato-ichiro", "revoked")):
        cert = pki.resident(resident).cert
        signer = validator.validate(cert, now)
        assert checker.check(cert, signer, now).state == expected
        certs.append((cert, signer))
    out["check_us"] = timed([lambda c=c, s=s: checker.check(c, s, now) for c, s in certs], job["checks"])

    listed = serials_for(job["size"])
    rng = random.Random(1)
    probe = [rng.choice(listed) if i % 2 else rng.getrandbits(159) | 1 for i in range(job["lookups"])]
    [path] = index_dir.glob("*.idx")
    index = PartitionIndex(path)
    assert index.lookup(listed[0]) is not None and index.lookup(2) is None
    calls = [lambda s=s: index.lookup(s) for s in probe]
    rss_before = rss_kb()
    for serial in probe:
        index.lookup(serial)
    out["index_rss_mb"] = (rss_kb() - rss_before) / 1024
    out["lookup_us"] = timed(calls, 1)

    rss_before = rss_kb()
    started = time.perf_counter()
    crl = x509.load_der_x509_crl(Path(job["crl"]).read_bytes())
    assert crl.is_signature_valid(pki.roots[ROOT].public_key())
    crl.get_revoked_certificate_by_serial_number(2)  # one full scan, as every miss does
    out["naive_load_s"] = time.perf_counter() - started
    out["naive_rss_mb"] = (rss_kb() - rss_before) / 1024
    samples, deadline = [], time.perf_counter() + job["naive_seconds"]
    for serial in probe:
        t0 = time.perf_counter_ns()
        crl.get_revoked_certificate_by_serial_number(serial)
        samples.append((time.perf_counter_ns() - t0) / 1e3)
        if len(samples) >= 10 and time.perf_counter() > deadline:
            break
    out["naive_us"] = summary(samples)
    return out


def peak_rss_kb() -> int:
    """VmHWM: this process's peak RSS (ru_maxrss would carry the parent's peak over exec)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))


def timed(calls: list, repeat: int) -> dict:
    for call in calls[:100]:
        call()  # warm
    samples = []
    clock = time.perf_counter_ns
    for _ in range(repeat):
        for call in calls:
            t0 = clock()
            call()
            samples.append((clock() - t0) / 1e3)
    return summary(samples)


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"p50": percentile(ordered, 0.50), "p99": percentile(ordered, 0.99), "n": len(ordered)}


# --------------------------------------------------------------------------- the report


def log(message: str) -> None:
    print(message, flush=True)


def table(rows: list[dict]) -> str:
    head = ("entries", "CRL MB", "gen s", "refresh s (CPU)", "peak MB", "index MB", "index RSS MB", "check µs p50/p99",
            "lookup µs p50/p99", "naive µs p50/p99", "×naive", "naive RSS MB")
    lines = [head]
    for r in rows:
        lines.append((f"{r['size']:,}", f"{r['crl_bytes'] / 2**20:.1f}",
                      f"{r['generate_s']:.1f}" + ("*" if r["cached"] else ""), f"{r['refresh_s']:.1f} ({r['refresh_cpu_s']:.1f})",
                      f"{r['refresh_peak_mb']:.0f}", f"{r['index_mb']:.1f}", f"{r['index_rss_mb']:.1f}",
                      f"{r['check_us']['p50']:.1f} / {r['check_us']['p99']:.1f}",
                      f"{r['lookup_us']['p50']:.1f} / {r['lookup_us']['p99']:.1f}",
                      f"{r['naive_us']['p50']:,.0f} / {r['naive_us']['p99']:,.0f}",
                      f"{r['naive_us']['p50'] / r['check_us']['p50']:,.0f}×", f"{r['naive_rss_mb']:.0f}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in lines)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s]
    log(f"machine noise at start: {noise()}")
    inputs = ensure_inputs(args, sizes)
    rows = []
    for size in sizes:
        job = {"size": size, "crl": inputs[size]["path"], "pki": str(args.workdir / "pki"),
               "index": str(args.workdir / f"index-{size}"), "checks": args.checks, "lookups": args.lookups,
               "naive_seconds": args.naive_seconds}
        log(f"measuring {size:,} entries in a fresh process")
        done = subprocess.run([sys.executable, "-m", "bench.revocation", "--child", json.dumps(job)],
                              cwd=PROJECT, capture_output=True, text=True)
        if done.returncode != 0:
            log(done.stderr)
            return 2
        rows.append({"size": size, "crl_bytes": inputs[size]["bytes"], "generate_s": inputs[size]["generate_s"],
                     "cached": inputs[size]["cached"], **json.loads(done.stdout.strip().splitlines()[-1])})
    builder_s = builder_cost(args.workdir / "pki")
    log("\nRevocation index vs the naive CRL lookup (one partition; µs per call; same child process per row)")
    log(table(rows))
    log(f"\ngen = gateway.testpki.make_large_crl (DER splice); * = generated by an earlier run,"
        f" cached in {args.workdir}.")
    log(f"cryptography's CertificateRevocationListBuilder: {builder_s:.1f} s for 5,000 entries; it copies its list"
        f" on every add (quadratic), so 10⁶ entries would take ~{builder_s * 200 ** 2 / 3600:.0f} h.")
    log("peak MB = refresh's peak RSS over the child's RSS before it. index RSS = RSS growth over the timed"
        " lookups (the index is memory-mapped: only probed pages become resident). naive RSS = the CRL read,"
        " parsed and scanned once.")
    log(f"machine noise at end: {noise()}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "builder_5000_s": builder_s}, indent=2), encoding="utf-8")
    log(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
