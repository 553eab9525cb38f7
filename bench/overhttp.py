"""HTTP rows: the gateway app and the floor app, served alike, loaded by wrk over loopback.

The server runs in a subprocess pinned to CPU0 (``taskset``), the load generator on CPU1, as
in perf-baselines.md. Each (round, size, endpoint) gets a fresh server and a fresh DB, so the
same pool of distinct packages serves every run; the first ``warm`` packages warm the server
up and are not measured. The gateway's replay row re-posts those warm-up packages to the same
server right after its "new packages" run: every answer is then 200, the cheap path.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.timing import Summary, cpu_seconds

PROJECT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).resolve().parent / "post.lua"


@dataclass
class HttpRow:
    size: str
    endpoint: str
    req_per_s: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    cpu_us_per_req: list[float] = field(default_factory=list)
    requests: int = 0
    not_expected: int = 0
    """Answers that were not the row's expected status with the expected state in the body."""
    wrapped: int = 0
    errors: int = 0

    def add(self, result: dict, cpu_s: float, expected_status: int) -> None:
        n = max(1, result["requests"])
        self.req_per_s.append(result["requests"] / (result["duration_us"] / 1e6))
        self.p50_ms.append(result["p50_us"] / 1000)
        self.p99_ms.append(result["p99_us"] / 1000)
        self.cpu_us_per_req.append(cpu_s * 1e6 / n)
        self.requests += result["requests"]
        right_status = result["s202"] if expected_status == 202 else result["s200"]
        self.not_expected += result["requests"] - min(right_status, result["good"])
        self.wrapped += result["wrapped"]
        self.errors += sum(result["errors"].values())

    def summary(self) -> dict:
        return {"size": self.size, "endpoint": self.endpoint, "requests": self.requests,
                "not_expected": self.not_expected, "wrapped": self.wrapped, "errors": self.errors,
                **{name: Summary.of(getattr(self, name)).as_dict()
                   for name in ("req_per_s", "p50_ms", "p99_ms", "cpu_us_per_req")}}


def _taskset(cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu)] if cpu is not None and shutil.which("taskset") else []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``python -m bench.server KIND TARGET PORT THREADS`` in a pinned subprocess."""

    def __init__(self, kind: str, target: Path, log_path: Path, *, cpu: int | None, threads: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [*_taskset(cpu), sys.executable, "-m", "bench.server", kind, str(target), str(self.port), str(threads)],
            cwd=PROJECT, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._log.close()
                tail = Path(self._log.name).read_text(encoding="utf-8", errors="replace")[-1500:]
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{tail}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout} s; see {self._log.name}")

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def post_each(url: str, packages: Sequence[bytes], token: str, expected_status: int) -> None:
    """Sequential keep-alive POSTs (warm-up); every answer must be ``expected_status``."""
    port = int(url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/zip", "Authorization": f"Bearer {token}"}
    for data in packages:
        conn.request("POST", "/api/v1/applications", body=data, headers=headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != expected_status:
            raise RuntimeError(f"warm-up POST answered {response.status}: {body[:300]!r}")
    conn.close()


def write_pool(prefix: Path, packages: Sequence[bytes]) -> tuple[Path, Path]:
    """The pool as ``<prefix>.bin`` (back to back) and ``<prefix>.idx`` (one length per line)."""
    bin_path, idx_path = prefix.with_suffix(".bin"), prefix.with_suffix(".idx")
    with bin_path.open("wb") as data, idx_path.open("w", encoding="ascii") as idx:
        for package in packages:
            data.write(package)
            idx.write(f"{len(package)}\n")
    return bin_path, idx_path


def generator() -> str:
    return "wrk" if shutil.which("wrk") else "python"


def load(url: str, pool: tuple[Path, Path], *, first: int, last: int, duration: float, connections: int,
         token: str, expected: str, cpu: int | None) -> dict:
    """One time-bounded load run; the BENCH-JSON summary of wrk (or the Python fallback)."""
    args = [str(pool[0]), str(pool[1]), str(first), str(last), token, expected]
    if generator() == "wrk":
        cmd = [*_taskset(cpu), "wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "30s",
               "-s", str(LUA), url, "--", *args]
    else:
        cmd = [*_taskset(cpu), sys.executable, "-m", "bench.pyload", url, str(duration), str(connections), *args]
    out = subprocess.run(cmd, cwd=PROJECT, capture_output=True, text=True, timeout=duration + 300)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH-JSON "):
            return json.loads(line.removeprefix("BENCH-JSON "))
    raise RuntimeError(f"load generator failed ({out.returncode}): {out.stdout[-500:]} {out.stderr[-500:]}")


def append_pool(pool: tuple[Path, Path], packages: Sequence[bytes]) -> None:
    with pool[0].open("ab") as data, pool[1].open("a", encoding="ascii") as idx:
        for package in packages:
            data.write(package)
            idx.write(f"{len(package)}\n")


def run_http(pools: dict[str, tuple[Path, Path]], warm_packages: dict[str, Sequence[bytes]], *,
             gateway_config: Callable[[Path], dict], grow: Callable[[str, int], None], workdir: Path,
             rounds: int, duration: float, connections: int, threads: int, token: str, warm: int,
             log: Callable[[str], None] = print) -> list[HttpRow]:
    """``grow(size, n)`` appends ``n`` more distinct packages to that size's pool files; it is
    called when a "new packages" run used up its pool, and the run is then repeated."""
    rows: dict[tuple[str, str], HttpRow] = {}
    endpoints = ["floor", "gateway"]
    for r in range(rounds):
        for size, pool in pools.items():
            for endpoint in endpoints[r % 2:] + endpoints[: r % 2]:
                for attempt in range(3):
                    results = _one_server(endpoint, size, r, pool, warm_packages[size], gateway_config,
                                          workdir, duration, connections, threads, token, warm)
                    new = results[0][1]
                    if not new["wrapped"] or attempt == 2:
                        break
                    more = new["requests"] - (_pool_count(pool) - warm) + 200
                    more = max(more, _pool_count(pool) // 2)
                    log(f"  {size} {endpoint}: the pool ran out ({new['requests']} requests); adding {more}"
                        " packages and running again")
                    grow(size, more)
                for kind, result, cpu_s, status in results:
                    name = endpoint if kind == "new" else f"{endpoint} replay"
                    row = rows.setdefault((size, name), HttpRow(size, name))
                    row.add(result, cpu_s, status)
                    log(f"  HTTP round {r + 1}/{rounds} {size:>6} {name:<15} {row.req_per_s[-1]:8.0f} req/s"
                        f"  p50 {row.p50_ms[-1]:6.2f} ms  p99 {row.p99_ms[-1]:6.2f} ms"
                        f"  cpu {row.cpu_us_per_req[-1]:6.0f} µs/req")
    order = [(s, e) for s in pools for e in ("floor", "gateway", "gateway replay")]
    return [rows[key] for key in order if key in rows]


def _pool_count(pool: tuple[Path, Path]) -> int:
    with pool[1].open(encoding="ascii") as idx:
        return sum(1 for line in idx if line.strip())


def _one_server(endpoint: str, size: str, r: int, pool: tuple[Path, Path], warm_packages: Sequence[bytes],
                gateway_config: Callable[[Path], dict], workdir: Path, duration: float, connections: int,
                threads: int, token: str, warm: int) -> list[tuple[str, dict, float, int]]:
    """A fresh server and DB: warm-up, the "new packages" run, and for the gateway the replay run."""
    run_dir = workdir / f"http-{endpoint}-{size}-r{r + 1}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    if endpoint == "gateway":
        target = run_dir / "config.json"
        target.write_text(json.dumps(gateway_config(run_dir / "var")), encoding="utf-8")
        expected = "queued"
    else:
        target, expected = run_dir / "floor.db", "stored"
    server = Server(endpoint, target, workdir / f"server-{endpoint}.log", cpu=0, threads=threads)
    results = []
    try:
        post_each(server.url, warm_packages, token, 202)
        runs = [("new", warm, 0, 202)] + ([("replay", 0, warm, 200)] if endpoint == "gateway" else [])
        for kind, first, last, status in runs:
            cpu0 = server.cpu()
            result = load(server.url, pool, first=first, last=last, duration=duration,
                          connections=connections, token=token, expected=expected, cpu=1)
            results.append((kind, result, server.cpu() - cpu0, status))
    finally:
        server.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
    return results
