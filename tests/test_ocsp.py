"""OcspChecker against a real OCSP responder on loopback, signed by the test PKI."""

from __future__ import annotations

import datetime as dt
import socket

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.ocsp import OcspChecker
from gateway.revocation import FirstDecisive, RevocationStatus
from tests.revocation_helpers import DAY, anchors_of, attacker_root, http_server, signer_of, utcnow


class Responder:
    """Answers from ``statuses`` (serial → None for good, or the revocation time), signed as configured."""

    def __init__(self, pki) -> None:
        self.pki = pki
        self.statuses: dict[int, dt.datetime | None] = {}
        self.signer: tuple[x509.Certificate, rsa.RSAPrivateKey] | None = None  # default: the issuing root
        self.extra_certs: list[x509.Certificate] = []
        self.next_update = DAY
        self.requests = 0
        self.fail = False

    def __call__(self, request) -> tuple[int, str, bytes]:
        self.requests += 1
        if self.fail:
            return 500, "text/plain", b"down"
        body = request.rfile.read(int(request.headers["Content-Length"]))
        asked = ocsp.load_der_ocsp_request(body)
        resident = next(r for r in self.pki.residents if r.cert.serial_number == asked.serial_number)
        root, root_key = self.pki.roots[resident.root_index], self.pki.root_keys[resident.root_index]
        now = utcnow()
        if asked.serial_number in self.statuses:
            revoked = self.statuses[asked.serial_number]
            status = ocsp.OCSPCertStatus.GOOD if revoked is None else ocsp.OCSPCertStatus.REVOKED
        else:
            revoked, status = None, ocsp.OCSPCertStatus.UNKNOWN
        cert, key = self.signer or (root, root_key)
        builder = (ocsp.OCSPResponseBuilder()
                   .add_response(cert=resident.cert, issuer=root, algorithm=hashes.SHA1(), cert_status=status,
                                 this_update=now - dt.timedelta(minutes=1), next_update=now + self.next_update,
                                 revocation_time=revoked,
                                 revocation_reason=x509.ReasonFlags.key_compromise if revoked else None)
                   .responder_id(ocsp.OCSPResponderEncoding.HASH, cert))
        if self.extra_certs:
            builder = builder.certificates(self.extra_certs)
        data = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
        return 200, "application/ocsp-response", data


@pytest.fixture
def responder(pki):
    found = Responder(pki)
    with http_server(found) as url:
        found.url = url + "/ocsp"
        yield found


def checker(pki, responder, **kw) -> OcspChecker:
    return OcspChecker(responder.url, anchors_of(pki), timeout=5, **kw)


def serial(pki, resident):
    return pki.resident(resident).cert.serial_number


def test_pending_then_fetched_off_the_request_path(pki, responder, monkeypatch):
    responder.statuses[serial(pki, "yamada-taro")] = None
    ocsp_checker = checker(pki, responder)
    cert, signer = signer_of(pki, "yamada-taro")
    def no_network(*args):
        raise AssertionError("network access during check()")

    with monkeypatch.context() as patch:
        patch.setattr(socket.socket, "connect", no_network)
        first = ocsp_checker.check(cert, signer, utcnow())  # no network: queued, deferred
    assert first.state == "unknown" and first.detail["reason"] == "revocation-ocsp-pending"
    assert responder.requests == 0
    assert ocsp_checker.fetch_pending() == frozenset(first.awaiting)
    assert responder.requests == 1
    status = ocsp_checker.check(cert, signer, utcnow())
    assert status.state == "good" and status.source == f"ocsp:{responder.url}"
    assert {"this_update", "next_update", "produced_at", "response_sha256", "responder"} <= set(status.detail)
    assert ocsp_checker.fetch_pending() == frozenset()  # nothing queued: a fresh answer was at hand


def test_revoked_before_and_after_arrival(pki, responder):
    revoked_at = utcnow() - dt.timedelta(hours=2)
    responder.statuses[serial(pki, "sato-ichiro")] = revoked_at
    ocsp_checker = checker(pki, responder)
    cert, signer = signer_of(pki, "sato-ichiro")
    ocsp_checker.check(cert, signer, utcnow())
    ocsp_checker.fetch_pending()
    status = ocsp_checker.check(cert, signer, utcnow())
    assert status.state == "revoked" and status.detail["revocation_date"] == revoked_at.isoformat()
    assert status.detail["revocation_reason"] == "keyCompromise"
    earlier = ocsp_checker.check(cert, signer, revoked_at - dt.timedelta(minutes=1))
    assert earlier.state == "good" and earlier.detail["revoked_after_arrival"] is True


def asked_once(pki, responder, resident="yamada-taro", **kw) -> RevocationStatus:
    ocsp_checker = checker(pki, responder, **kw)
    cert, signer = signer_of(pki, resident)
    ocsp_checker.check(cert, signer, utcnow())
    changed = ocsp_checker.fetch_pending()
    status = ocsp_checker.check(cert, signer, utcnow())
    assert not changed or status.state != "unknown"
    return status


def test_response_signed_by_another_key_is_refused(pki, responder):
    responder.statuses[serial(pki, "yamada-taro")] = None
    responder.signer = attacker_root()  # same DN as the roots, other key
    status = asked_once(pki, responder)
    assert status.state == "unknown" and status.detail["reason"] == "revocation-ocsp-invalid"


def delegated(pki, root_index: int, *, ocsp_signing: bool):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = utcnow()
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "OCSP responder")]))
               .issuer_name(pki.roots[root_index].subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - DAY).not_valid_after(now + DAY))
    if ocsp_signing:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
    return builder.sign(pki.root_keys[root_index], hashes.SHA256()), key


@pytest.mark.parametrize("ocsp_signing, expected", [(True, "good"), (False, "unknown")])
def test_delegated_responder_needs_the_ocsp_signing_purpose(pki, responder, ocsp_signing, expected):
    responder.statuses[serial(pki, "yamada-taro")] = None
    responder.signer = delegated(pki, pki.resident("yamada-taro").root_index, ocsp_signing=ocsp_signing)
    responder.extra_certs = [responder.signer[0]]
    assert asked_once(pki, responder).state == expected


def test_unknown_certificate_unreachable_and_stale(pki, responder):
    status = asked_once(pki, responder)  # the responder does not know the serial
    assert status.state == "unknown" and status.detail["reason"] == "revocation-ocsp-unknown-cert"
    responder.fail = True
    status = asked_once(pki, responder)
    assert status.state == "unknown" and status.detail["reason"] == "revocation-ocsp-unreachable"
    responder.fail = False
    responder.statuses[serial(pki, "yamada-taro")] = None
    responder.next_update = -dt.timedelta(seconds=30)
    status = asked_once(pki, responder)
    assert status.state == "unknown" and status.detail["reason"] == "revocation-ocsp-stale"
    assert asked_once(pki, responder, grace_seconds=300).state == "good"


class Fixed:
    def __init__(self, state: str) -> None:
        self.state, self.calls = state, 0

    def check(self, cert, signer, at) -> RevocationStatus:
        self.calls += 1
        return RevocationStatus(self.state, f"fixed-{self.state}",  # type: ignore[arg-type]
                                {"reason": "x", "awaiting": [f"id-{self.state}-{self.calls}"]})


def test_first_decisive_asks_ocsp_only_when_the_crl_cannot_decide(pki):
    cert, signer = signer_of(pki, "yamada-taro")
    crl, second = Fixed("revoked"), Fixed("good")
    assert FirstDecisive(crl, second).check(cert, signer, utcnow()).state == "revoked" and second.calls == 0
    crl, second = Fixed("unknown"), Fixed("good")
    assert FirstDecisive(crl, second).check(cert, signer, utcnow()).source == "fixed-good"
    status = FirstDecisive(Fixed("unknown"), Fixed("unknown")).check(cert, signer, utcnow())
    assert status.state == "unknown" and status.awaiting == ("id-unknown-1", "id-unknown-1")
    assert [c["source"] for c in status.detail["checks"]] == ["fixed-unknown", "fixed-unknown"]


def test_failed_queries_are_remembered_within_the_bound(pki, responder, monkeypatch):
    """The reason a query failed (shown to check() until an answer comes) is kept for at most
    MAX_ENTRIES certificates, the oldest going first, and updated under the checker's lock."""
    import gateway.ocsp as ocsp_module

    monkeypatch.setattr(ocsp_module, "MAX_ENTRIES", 2)
    responder.fail = True
    ocsp_checker = checker(pki, responder)
    residents = ["yamada-taro", "suzuki-hanako", "yamasaki-jiro"]
    locked: list[bool] = []
    query = ocsp_checker.query
    monkeypatch.setattr(ocsp_checker, "query", lambda *a: (locked.append(ocsp_checker._lock.locked()), query(*a))[1])
    put = ocsp_module._put
    monkeypatch.setattr(ocsp_module, "_put", lambda *a: (locked.append(ocsp_checker._lock.locked()), put(*a))[1])
    for resident in residents:
        ocsp_checker.check(*signer_of(pki, resident), utcnow())
        ocsp_checker.fetch_pending()
    assert locked == [False, True] * 3  # the network outside the lock, the record under it
    assert len(ocsp_checker._errors) == 2
    assert {key[1] for key in ocsp_checker._errors} == {serial(pki, r) for r in residents[1:]}
    status = ocsp_checker.check(*signer_of(pki, "yamasaki-jiro"), utcnow())
    assert status.detail["reason"] == "revocation-ocsp-unreachable"
    responder.fail = False
    responder.statuses[serial(pki, "yamasaki-jiro")] = None
    ocsp_checker.fetch_pending()
    assert len(ocsp_checker._errors) == 1 and len(ocsp_checker._answers) == 1  # the answer replaces the error
