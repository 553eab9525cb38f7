"""What every hostile case is watched with: network, a canary server and file, time, memory.

- :func:`no_network`: Python-level sockets fail *and are recorded* while a package is verified
  (``socket.socket.connect``/``connect_ex``, ``socket.create_connection``, ``getaddrinfo``).
- :class:`CanaryServer`: an HTTP server on loopback that every hostile URL points at. A fetch
  made below Python (libxml2, a C library) would not pass the socket patch, but it would reach
  the canary; the real-server tests rely on it alone.
- :class:`CanaryFile`: the local file hostile entities, XIncludes and references name. Its access
  time is set before its modification time, so (with the default ``relatime``) any read moves it.
- :func:`measure`: wall time, tracemalloc peak and the growth of the process's RSS high-water mark.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@contextlib.contextmanager
def no_network() -> Iterator[list[str]]:
    """Within the block every outbound socket use raises ``OSError`` and is listed in the result."""
    attempts: list[str] = []
    saved = (socket.socket.connect, socket.socket.connect_ex, socket.create_connection, socket.getaddrinfo)

    def refuse(what: str):
        def blocked(*args, **kwargs):  # type: ignore[no-untyped-def]
            attempts.append(f"{what}{args[1:] if what.startswith('socket.') else args}")
            raise OSError(f"network access during verification: {what}")
        return blocked

    socket.socket.connect = refuse("socket.connect")  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse("socket.connect_ex")  # type: ignore[method-assign]
    socket.create_connection = refuse("create_connection")  # type: ignore[assignment]
    socket.getaddrinfo = refuse("getaddrinfo")  # type: ignore[assignment]
    try:
        yield attempts
    finally:
        (socket.socket.connect, socket.socket.connect_ex, socket.create_connection, socket.getaddrinfo) = saved


class CanaryServer:
    """``http://127.0.0.1:<port>``: records every request it gets; hostile URLs point here."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        canary = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                canary.requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"canary")

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> CanaryServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class CanaryFile:
    """A file no verification may read (``file://`` URL for hostile packages)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_text("root:x:0:0:canary:/root:/bin/sh\n", encoding="utf-8")
        self.arm()
        self.detects_reads = self._self_test()

    @property
    def url(self) -> str:
        return self.path.resolve().as_uri()

    def arm(self) -> None:
        stat = self.path.stat()
        os.utime(self.path, ns=(stat.st_mtime_ns - 10**12, stat.st_mtime_ns))

    def was_read(self) -> bool:
        stat = self.path.stat()
        return stat.st_atime_ns >= stat.st_mtime_ns

    def _self_test(self) -> bool:
        """Whether this file system records reads (``noatime`` mounts do not); re-arms."""
        self.path.read_bytes()
        works = self.was_read()
        self.arm()
        return works


@dataclass
class Usage:
    seconds: float = 0.0
    peak_bytes: int = 0
    """tracemalloc's peak (Python allocations) during the block; 0 when not traced."""
    rss_growth_bytes: int = 0
    """How much the process's RSS high-water mark rose during the block (C allocations too)."""
    traced: bool = field(default=False)


def _max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


@contextlib.contextmanager
def measure(trace_memory: bool) -> Iterator[Usage]:
    usage = Usage(traced=trace_memory)
    rss_before = _max_rss_bytes()
    if trace_memory:
        tracemalloc.start()
    start = time.perf_counter()
    try:
        yield usage
    finally:
        usage.seconds = time.perf_counter() - start
        if trace_memory:
            usage.peak_bytes = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        usage.rss_growth_bytes = _max_rss_bytes() - rss_before
