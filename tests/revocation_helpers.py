"""Shared by the revocation tests: CRLs from the test PKI, an attacker root, a loopback HTTP server."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.models import CertificateInfo
from gateway.testpki import TestPKI, make_crl, root_name
from gateway.trust import CertificateValidator, TrustAnchors

DAY = dt.timedelta(days=1)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def anchors_of(pki: TestPKI) -> TrustAnchors:
    return TrustAnchors.load(pki.root_paths)


def signer_of(pki: TestPKI, resident: str) -> tuple[x509.Certificate, CertificateInfo]:
    """The certificate and what trust recorded about it (as verification hands them over)."""
    cert = pki.resident(resident).cert
    return cert, CertificateValidator(anchors_of(pki), allow_test_roots=True).validate(cert, utcnow())


def crl_bytes(pki: TestPKI, root: int, muni: int, *, revoked: Sequence[tuple[int, dt.datetime]] = (),
              this_update: dt.datetime | None = None, next_update: dt.datetime | None = None,
              number: int = 1) -> bytes:
    this_update = this_update or utcnow() - dt.timedelta(hours=1)
    return make_crl(pki.roots[root], pki.root_keys[root], pki.municipalities[muni], revoked=revoked,
                    this_update=this_update, next_update=next_update or this_update + 2 * DAY, number=number)


def write(directory: Path, name: str, data: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data)
    return directory / name


def attacker_root(ski: bytes | None = None) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A self-signed root with the JPKI test DN and its own key; ``ski`` forges a pinned root's key id."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = utcnow()
    identifier = x509.SubjectKeyIdentifier(ski) if ski else x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder().subject_name(root_name()).issuer_name(root_name())
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - DAY).not_valid_after(now + 365 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(identifier, critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


@contextmanager
def http_server(handler: Callable[[BaseHTTPRequestHandler], tuple[int, str, bytes]]) -> Iterator[str]:
    """Serve ``handler(request) -> (status, content type, body)`` on loopback; yields the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            status, kind, body = handler(self)
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
