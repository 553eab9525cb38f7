"""``python -m bench.mandated`` (``./dev bench --mandated``): how close to the floor can *any*
gateway get on this stack? A lower bound for the HTTP goal, measured beside the floor.

It times, in CPU, only the library calls that the issue and the spec make every accepted
package pay, with no Python of ours around them:

- unzip (``zipfile``) and parse ``kousei.xml`` (lxml, hardened parser);
- the XMLDSig verification with signxml, which the issue requires (through
  :mod:`gateway.signxml_adapter`, the issue's narrow fixes), and RFC 5280 path validation to the
  pinned roots (cryptography's verifier, built once);
- parse the form and check it against its XSD (lxml's validator, compiled once);
- the procedure's transform (an lxml tree) and the check of the record against its target XSD;
- the store's rows in plain ``sqlite3`` (no SQLAlchemy), with the spec's durability: the
  arrival (package bytes, application, transition) committed before anything else, then the
  three transitions, the evidence, the record and the outbox row in one fully synced commit.

Not timed, although the spec requires them too: the structural signature rules (reference set,
wrapping), revocation, the JPKI certificate profile, business rules, the four basic facts, the
evidence. Whatever an implementation spends on those comes on top. The floor is
:func:`bench.floor.check_package` plus its insert, timed the same way in the same process,
package by package in turn.

Over HTTP both sides also pay the same server stack (about 0.6–0.7 ms of CPU per request on
this VM, measured as server CPU minus intake CPU): the bound for the HTTP ratio printed at the
end assumes exactly that, so it is optimistic for the gateway.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import shutil
import sqlite3
import statistics
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from cryptography.x509.verification import PolicyBuilder
from cryptography.x509.verification import Store as TrustStore
from lxml import etree

from bench import packages, subjects
from bench.floor import FloorStore, check_package
from gateway.archive import read_package
from gateway.signature import inspect_signature, verify_signature
from gateway.testpki import init_pki
from gateway.validation import compiled_schema
from gateway.xmlsafe import hardened_parser

HTTP_STACK_US = 650
"""Server CPU per request outside the intake (waitress, Flask, the handler), floor and gateway alike."""
_CLOCK = time.thread_time_ns


class RawStore:
    """The rows of an accepted package in the gateway's own schema, straight through ``sqlite3``."""

    def __init__(self, path: Path) -> None:
        from gateway.store import Store

        made = Store(f"sqlite:///{path}")
        made.upgrade()
        made.close()
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
            self.db.execute(f"PRAGMA {pragma}")

    def arrive(self, number: str, package: bytes, at: str) -> int:
        db, sha = self.db, hashlib.sha256(package).hexdigest()
        db.execute("PRAGMA synchronous=NORMAL")  # as the gateway: the next, fully synced commit covers it
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO blobs (sha256, size, data, created_at) VALUES (?, ?, ?, ?)"
                   " ON CONFLICT (sha256) DO NOTHING", (sha, len(package), package, at))
        app_id = db.execute(
            "INSERT INTO applications (arrival_number, package_sha256, live, state, flags, received_at, source,"
            " updated_at) VALUES (?, ?, 1, 'received', '[]', ?, 'bench', ?)", (number, sha, at, at)).lastrowid
        db.execute("INSERT INTO transitions (application_id, from_state, to_state, at, actor, reason)"
                   " VALUES (?, NULL, 'received', ?, 'system', '受信')", (app_id, at))
        db.execute("COMMIT")
        return app_id

    def queue(self, app_id: int, record: Any, evidence: str, at: str) -> None:
        db, sha = self.db, hashlib.sha256(record.content).hexdigest()
        db.execute("PRAGMA synchronous=FULL")
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE applications SET state = 'queued', updated_at = ?, evidence = ?, verified_at = ?"
                   " WHERE id = ? AND state = 'received'", (at, evidence, at, app_id))
        db.executemany("INSERT INTO transitions (application_id, from_state, to_state, at, actor, reason)"
                       " VALUES (?, ?, ?, ?, 'system', '')",
                       [(app_id, "received", "verified", at), (app_id, "verified", "validated", at),
                        (app_id, "validated", "queued", at)])
        db.execute("INSERT INTO blobs (sha256, size, data, created_at) VALUES (?, ?, ?, ?)"
                   " ON CONFLICT (sha256) DO NOTHING", (sha, len(record.content), record.content, at))
        record_id = db.execute(
            "INSERT INTO records (application_id, target, media_type, filename, content_sha256, plugin,"
            " plugin_version, created_at) VALUES (?, ?, ?, ?, ?, 'bench', '1', ?)",
            (app_id, record.target, record.media_type, record.filename, sha, at)).lastrowid
        db.execute("INSERT INTO outbox (application_id, record_id, channel, options, status, attempts,"
                   " next_attempt_at, created_at) VALUES (?, ?, 'filedrop', '{}', 'pending', 0, ?, ?)",
                   (app_id, record_id, at, at))
        db.execute("COMMIT")


def measure(n: int, workdir: Path) -> dict[str, float]:
    """Median CPU µs per package of the mandated calls and of the floor, ``n`` packages each."""
    pki = init_pki(workdir / "pki")
    subjects.log_to_file(workdir / "gateway.log", "INFO")
    app, pipeline = subjects.make_gateway(subjects.gateway_config(workdir / "gateway", pki, "INFO"))
    spec = packages.make_spec(app.config, pki.directory, label="10KB", target_bytes=10_000, seq_base=0)
    pool = packages.generate(spec, 0, 2 * n + 20)
    now = dt.datetime.now(dt.UTC)
    at = now.isoformat(" ")
    verifier = PolicyBuilder().store(TrustStore([a.certificate for a in pipeline.validator.anchors.anchors])) \
        .time(now).build_client_verifier()
    raw_store, floor_store = RawStore(workdir / "mandated.db"), FloorStore(workdir / "floor.db")
    evidence = json.dumps(pipeline.verify(read_package(pool[0], pipeline.policy.limits), arrival_time=now).evidence,
                          ensure_ascii=False, default=str)

    def mandated(data: bytes, seq: int) -> int:
        spent = 0
        t0 = _CLOCK()
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = {info.filename: archive.read(info) for info in archive.infolist()}
        kousei = etree.fromstring(members.pop("kousei.xml"), hardened_parser())
        spent += _CLOCK() - t0
        candidate = inspect_signature(kousei, members, max_signatures=1)  # ours: not timed
        t0 = _CLOCK()
        verify_signature(candidate, certificate=candidate.certificate, at=now)
        verifier.verify(candidate.certificate, [])
        spent += _CLOCK() - t0
        verified = pipeline.verify(read_package(data, pipeline.policy.limits), arrival_time=now,
                                   kousei=kousei)  # not timed
        procedure = pipeline.procedure_for(verified)
        t0 = _CLOCK()
        form = etree.fromstring(verified.form_xml, hardened_parser())
        compiled_schema(procedure.form_schema).validate(form)
        spent += _CLOCK() - t0
        context = pipeline.validate(verified, procedure)  # the rules: not timed
        t0 = _CLOCK()
        record = procedure.transform(context)
        compiled_schema(record.schema).validate(record.tree.getroottree())
        app_id = raw_store.arrive(f"9{seq:017d}", data, at)
        raw_store.queue(app_id, record, evidence, at)
        return spent + _CLOCK() - t0

    def floor(data: bytes, seq: int) -> int:
        t0 = _CLOCK()
        check_package(data)
        floor_store.insert(f"9{seq:017d}", data)
        return _CLOCK() - t0

    for seq, data in enumerate(pool[1:20]):  # warm-up
        mandated(data, seq)
        floor(data, seq)
    times: dict[str, list[int]] = {"mandated": [], "floor": []}
    for seq, data in enumerate(pool[20:], start=20):  # in turn, so noise hits both alike
        kind = "mandated" if seq % 2 else "floor"
        times[kind].append((mandated if seq % 2 else floor)(data, seq))
    return {kind: statistics.median(values) / 1000 for kind, values in times.items()}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.mandated", description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=400, help="packages per side (default 400)")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    rounds = []
    for r in range(args.rounds):
        workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-mandated-"))
        try:
            found = measure(args.n, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        rounds.append(found)
        print(f"round {r + 1}/{args.rounds}: floor {found['floor']:.0f} µs, mandated library calls"
              f" {found['mandated']:.0f} µs of CPU per 10 KB package (medians)", flush=True)
    floor = statistics.median(r["floor"] for r in rounds)
    mandated = statistics.median(r["mandated"] for r in rounds)
    bound = (floor + HTTP_STACK_US) / (mandated + HTTP_STACK_US)
    print(f"\nmedian of rounds: floor {floor:.0f} µs, mandated library calls alone {mandated:.0f} µs"
          f" ({mandated / floor:.2f}× the floor)")
    print(f"best HTTP ratio any gateway doing that work could reach (shared server stack of"
          f" {HTTP_STACK_US} µs): {bound:.0%} (goal: ≥ 60 %), before the checks not timed here")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
