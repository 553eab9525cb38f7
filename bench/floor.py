"""The floor: the least work any correct intake of a package must do. An anchor, not a verifier.

Unzip; parse ``kousei.xml``; C14N of 構成情報 and its SHA-256 digest; SHA-256 of every member;
compare them with the DigestValues; C14N of SignedInfo; one RSA-2048 verify with the key of
the certificate in X509Data (cryptography); insert one row holding the package in SQLite with
the gateway's durability settings (WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE``), commit.

It checks no algorithm, no reference set, no certificate chain, validity or revocation, no
schema and no business rule, and it assumes the shape the benchmark's packages have (one
signature, inclusive or exclusive C14N). It does raise when a digest or the signature does
not match, so it can never be "fast" by skipping the cryptography.

Served by the same server stack as the gateway (Flask under waitress) as :func:`create_app`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import sqlite3
import threading
import zipfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from flask import Flask, jsonify, request
from lxml import etree

DS = "{http://www.w3.org/2000/09/xmldsig#}"
EXCLUSIVE = "http://www.w3.org/2001/10/xml-exc-c14n#"
_local = threading.local()


class FloorMismatch(Exception):
    """A digest or the signature did not match (the benchmark's packages never do this)."""


def _parser() -> etree.XMLParser:
    parser = getattr(_local, "parser", None)
    if parser is None:  # the same hardened settings the gateway parses with; one per thread
        parser = _local.parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                                 huge_tree=False, collect_ids=False)
    return parser


def _c14n(node: etree._Element, algorithm: str, *, copy: bool) -> bytes:
    # lxml 6.1 emits a spurious xmlns="" when canonicalizing a subtree in place whose default
    # namespace is declared above it (SignedInfo); a serialized copy canonicalizes correctly.
    # 構成情報 has no namespace in scope, so it is canonicalized in place (checked equal).
    if copy:
        node = etree.fromstring(etree.tostring(node, encoding="UTF-8", with_tail=False), _parser())
    return etree.tostring(node, method="c14n", exclusive=(algorithm == EXCLUSIVE), with_comments=False)


def check_package(data: bytes) -> str:
    """Do the floor's cryptography on one package; return its 到達番号."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    root = etree.fromstring(members.pop("kousei.xml"), _parser())
    manifest = root.find("構成情報")
    signature = root.find(f"署名情報/{DS}Signature")
    signed_info = signature.find(f"{DS}SignedInfo")
    algorithm = signed_info.find(f"{DS}CanonicalizationMethod").get("Algorithm")
    expected = {ref.get("URI"): base64.b64decode(ref.findtext(f"{DS}DigestValue"))
                for ref in signed_info.iterfind(f"{DS}Reference")}
    actual = {"#構成情報": hashlib.sha256(_c14n(manifest, algorithm, copy=False)).digest()}
    actual.update((name, hashlib.sha256(body).digest()) for name, body in members.items())
    if actual != expected:
        raise FloorMismatch("digest")
    der = base64.b64decode(signature.findtext(f"{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate"))
    key = x509.load_der_x509_certificate(der).public_key()
    try:
        key.verify(base64.b64decode(signature.findtext(f"{DS}SignatureValue")),
                   _c14n(signed_info, algorithm, copy=True), padding.PKCS1v15(), hashes.SHA256())
    except Exception as exc:  # cryptography raises InvalidSignature
        raise FloorMismatch("signature") from exc
    return manifest.findtext("管理情報/到達番号")


class FloorStore:
    """One table, one row per package, one fsynced commit per package; a connection per thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._connect().execute(
            "CREATE TABLE IF NOT EXISTS applications (id INTEGER PRIMARY KEY, arrival_number TEXT NOT NULL"
            " UNIQUE, received_at TEXT NOT NULL, package BLOB NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(_local, f"conn:{self.path}", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=30000", "foreign_keys=ON"):
                conn.execute(f"PRAGMA {pragma}")
            setattr(_local, f"conn:{self.path}", conn)
        return conn

    def insert(self, arrival_number: str, package: bytes) -> None:
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("INSERT INTO applications (arrival_number, received_at, package) VALUES (?, ?, ?)",
                         (arrival_number, dt.datetime.now(dt.UTC).isoformat(), package))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def count(self) -> int:
        return self._connect().execute("SELECT count(*) FROM applications").fetchone()[0]


def floor_intake(data: bytes, store: FloorStore) -> str:
    """The in-process floor: the cryptography, then the durable insert."""
    arrival_number = check_package(data)
    store.insert(arrival_number, data)
    return arrival_number


def create_app(db_path: Path) -> Flask:
    """The floor over HTTP: same Flask, same waitress, one endpoint shaped like the gateway's."""
    app = Flask("bench.floor")
    store = FloorStore(db_path)

    @app.post("/api/v1/applications")
    def post_application():
        arrival_number = floor_intake(request.get_data(cache=False), store)
        return jsonify({"arrival_number": arrival_number, "state": "stored"}), 202

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok", "applications": store.count()})

    return app
