"""Fallback load generator when ``wrk`` is absent: keep-alive POSTs from a few threads, time-bounded.

Same arguments and the same ``BENCH-JSON`` line as ``bench/post.lua``. It is slower than wrk
(Python, one GIL), so on two CPUs it can become the bottleneck above ~1,500 req/s; the report
says which generator ran.

    python -m bench.pyload URL DURATION_S CONNECTIONS POOL.bin POOL.idx FIRST LAST TOKEN EXPECTED
"""

from __future__ import annotations

import http.client
import itertools
import json
import sys
import threading
import time
from urllib.parse import urlsplit

from bench.timing import percentile


def load_pool(bin_path: str, idx_path: str, first: int, last: int) -> list[bytes]:
    with open(idx_path, encoding="ascii") as idx, open(bin_path, "rb") as data:
        sizes = [int(line) for line in idx if line.strip()]
        pool = [data.read(n) for n in sizes]
    return pool[first: last or None]


def main(argv: list[str]) -> None:
    url, duration, connections, bin_path, idx_path, first, last, token, expected = argv
    pool = load_pool(bin_path, idx_path, int(first), int(last))
    parts = urlsplit(url)
    headers = {"Content-Type": "application/zip", "Authorization": f"Bearer {token}"}
    marker = f'"{expected}"'.encode()
    sent = itertools.count()
    lock = threading.Lock()
    stats = {"s200": 0, "s202": 0, "other": 0, "good": 0, "errors": 0}
    latencies: list[float] = []
    deadline = time.monotonic() + float(duration)

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        mine: list[float] = []
        counts = dict.fromkeys(stats, 0)
        while time.monotonic() < deadline:
            body = pool[next(sent) % len(pool)]
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/api/v1/applications", body=body, headers=headers)
                response = conn.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException):
                counts["errors"] += 1
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
                continue
            mine.append((time.perf_counter() - t0) * 1e6)
            key = {200: "s200", 202: "s202"}.get(response.status, "other")
            counts[key] += 1
            counts["good"] += marker in answer
        conn.close()
        with lock:
            latencies.extend(mine)
            for key, value in counts.items():
                stats[key] += value

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(int(connections))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed_us = (time.perf_counter() - started) * 1e6
    latencies.sort()
    total_sent = len(latencies)
    result = {
        "requests": total_sent, "duration_us": int(elapsed_us),
        "p50_us": percentile(latencies, 0.50), "p90_us": percentile(latencies, 0.90),
        "p99_us": percentile(latencies, 0.99), "max_us": latencies[-1] if latencies else 0,
        "errors": {"connect": stats["errors"], "read": 0, "write": 0, "status": stats["other"], "timeout": 0},
        "s200": stats["s200"], "s202": stats["s202"], "other": stats["other"], "good": stats["good"],
        "wrapped": max(0, (total_sent - 1) // len(pool)),
    }
    print("BENCH-JSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
