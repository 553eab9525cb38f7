"""Running the gateway: the HTTP server (waitress) and the delivery worker thread."""

from __future__ import annotations

import gc
import logging
import threading
from contextlib import contextmanager
from collections.abc import Iterator

from flask import Flask
from waitress.server import create_server

from gateway.worker import DeliveryWorker

log = logging.getLogger(__name__)


def settle_process() -> None:
    """Once the app is built: move everything start-up made (modules, schemas, plugins, trust
    anchors) out of the garbage collector's view. Those objects live as long as the process;
    without this, every full collection walks them again, which cost ~15 % of an intake."""
    gc.collect()
    gc.freeze()


def resume_interrupted(app: Flask) -> None:
    """Finish what an earlier crash left half-way, and what waited for revocation data that has
    arrived since; run before serving or delivering."""
    pipeline = app.extensions["gateway.pipeline"]
    pipeline.resume_stale()
    pipeline.reverify_deferred()


@contextmanager
def running_revocation_refresher(app: Flask) -> Iterator[None]:
    """Keep revocation data fresh off the request path; deferred applications waiting on a
    partition that got fresh data are verified again at once."""
    pipeline = app.extensions["gateway.pipeline"]
    refresher = pipeline.revocation.refresher(on_change=pipeline.reverify_deferred)
    refresher.start()
    try:
        yield
    finally:
        refresher.stop()


def make_worker(app: Flask) -> DeliveryWorker:
    """The delivery worker for this app's store, channels and retry settings."""
    settings = app.config["WORKER"]
    plugins = app.extensions["gateway"]
    return DeliveryWorker(
        app.extensions["gateway.store"],
        plugins.channels,
        route_options=app.config["CHANNELS"],
        max_attempts=int(settings["MAX_ATTEMPTS"]),
        backoff_seconds=float(settings["BACKOFF_SECONDS"]),
        poll_seconds=float(settings["POLL_SECONDS"]),
        lease_seconds=float(settings["LEASE_SECONDS"]),
        # No on_transition: the app's store already announces every transition it makes.
    )


@contextmanager
def running_worker(app: Flask) -> Iterator[DeliveryWorker]:
    """Run the delivery worker in a daemon thread for the duration of the block."""
    worker = make_worker(app)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,), name="delivery-worker", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        stop.set()
        thread.join(timeout=10)


@contextmanager
def running_server(app: Flask, host: str, port: int, threads: int = 8) -> Iterator[str]:
    """Serve ``app`` in a background thread; yields the base URL."""
    server = create_server(app, host=host, port=port, threads=threads, clear_untrusted_proxy_headers=True)
    thread = threading.Thread(target=server.run, name="http", daemon=True)
    thread.start()
    bound_port = server.effective_port
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.close()
        thread.join(timeout=10)


def serve_forever(app: Flask, host: str, port: int, *, threads: int = 8, with_worker: bool = True) -> None:
    """Serve until interrupted; the delivery worker runs in-process unless disabled."""
    resume_interrupted(app)
    settle_process()
    server = create_server(app, host=host, port=port, threads=threads, clear_untrusted_proxy_headers=True)
    log.info("ゲートウェイを起動しました: http://%s:%s", host, server.effective_port)
    with running_revocation_refresher(app):
        if not with_worker:
            server.run()
            return
        with running_worker(app):
            try:
                server.run()
            finally:
                server.close()
