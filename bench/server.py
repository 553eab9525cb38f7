"""Serve the gateway or the floor for the HTTP rows, with one and the same waitress call.

    python -m bench.server gateway CONFIG.json PORT THREADS
    python -m bench.server floor   DB_PATH     PORT THREADS

Both apps go through the waitress ``create_server`` call ``gateway.serving`` makes (same
threads, same options), so the server stack is identical; the gateway's start-up steps
around it (resuming interrupted work on a database that is fresh here anyway) are left out.
The delivery worker is not started: the rows measure the intake, and a worker delivering in
the same process would compete for the same CPU.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from waitress.server import create_server

from gateway.serving import settle_process


def main(argv: list[str]) -> None:
    kind, target, port, threads = argv
    if kind == "gateway":
        from gateway.app import create_app

        app = create_app(json.loads(Path(target).read_text(encoding="utf-8")))
    elif kind == "floor":
        from bench.floor import create_app as create_floor

        app = create_floor(Path(target))
    else:
        raise SystemExit(f"unknown server kind {kind!r}")
    settle_process()  # as `gateway serve` does, for both apps alike
    server = create_server(app, host="127.0.0.1", port=int(port), threads=int(threads),
                           clear_untrusted_proxy_headers=True)
    server.run()


if __name__ == "__main__":
    main(sys.argv[1:])
