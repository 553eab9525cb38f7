"""OCSP as an optional revocation source (``REVOCATION_CHECK = "crl+ocsp"`` or ``"ocsp"``).

J-LIS runs an OCSP responder for registered verifiers; its address is not in the certificates,
so it is configured (``REVOCATION_OCSP_URL``). The network stays OFF the request path, as for
CRLs: :meth:`OcspChecker.check` answers from a cache of verified responses only. A certificate
without a fresh answer is ``unknown`` (``revocation-ocsp-pending``) and queued; the
:class:`~gateway.revocation.RevocationRefresher` thread asks the responder
(:meth:`OcspChecker.fetch_pending`) and reports the certificate's id (``ocsp:<key id>:<serial>``)
as changed, so the deferred application is verified again within a poll interval.

A response is used only when signed by the issuing root itself or by a responder certificate
that root issued for OCSP signing (id-kp-OCSPSigning), names this certificate, and is fresh
(nextUpdate + grace, or thisUpdate + ``REVOCATION_OCSP_MAX_AGE_SECONDS`` without nextUpdate).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.certpolicy import strong_signature_hash
from gateway.crlrefresh import FUTURE_SKEW, REASON_CODES, RevocationDataRejected
from gateway.models import CertificateInfo
from gateway.revocation import Clock, RevocationStatus, utcnow

if TYPE_CHECKING:
    from gateway.trust import TrustAnchors

log = logging.getLogger(__name__)
MAX_RESPONSE_BYTES = 1 << 20
MAX_ENTRIES = 100_000
_STATES = {ocsp.OCSPCertStatus.GOOD: "good", ocsp.OCSPCertStatus.REVOKED: "revoked",
           ocsp.OCSPCertStatus.UNKNOWN: "unknown"}


@dataclass(frozen=True)
class OcspAnswer:
    """One verified single response."""

    state: str
    this_update: dt.datetime
    next_update: dt.datetime | None
    produced_at: dt.datetime
    revocation_time: dt.datetime | None
    revocation_reason: str | None
    sha256: str
    """Of the whole DER response, kept as evidence."""


class OcspChecker:
    def __init__(self, url: str, anchors: TrustAnchors, *, timeout: float = 5, max_age_seconds: float = 900,
                 grace_seconds: float = 0, clock: Clock = utcnow) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"OCSP の URL は http(s) です: {url!r}")
        self.url, self.timeout, self.clock = url, timeout, clock
        self.max_age = dt.timedelta(seconds=max_age_seconds)
        self.grace = dt.timedelta(seconds=grace_seconds)
        self._anchors = {a.fingerprint: a for a in anchors.anchors}
        self._answers: dict[tuple[bytes, int], OcspAnswer] = {}
        self._pending: dict[tuple[bytes, int], tuple[x509.Certificate, x509.Certificate]] = {}
        self._errors: dict[tuple[bytes, int], RevocationDataRejected] = {}
        self._lock = threading.Lock()

    def check(self, cert: x509.Certificate, signer: CertificateInfo, at: dt.datetime) -> RevocationStatus:
        anchor = self._anchors.get(signer.anchor_fingerprint)
        if anchor is None:
            return _unknown("revocation-ocsp-invalid", "発行したルート証明書がわかりません", [])
        key = (anchor.key_identifier, cert.serial_number)
        pid = f"ocsp:{key[0].hex()}:{key[1]:x}"
        answer, now = self._answers.get(key), self.clock()
        if answer is not None and self._fresh(answer, max(now, at)):
            return self._decide(answer, cert.serial_number, at)
        with self._lock:
            if len(self._pending) < MAX_ENTRIES:
                self._pending[key] = (cert, anchor.certificate)
            error = self._errors.get(key)
        if error is not None:
            return _unknown(error.code, error.message, [pid])
        if answer is not None:
            return _unknown("revocation-ocsp-stale", "OCSP 応答の期限が切れています（再問い合わせ中）", [pid])
        return _unknown("revocation-ocsp-pending", "OCSP に問い合わせ中です", [pid])

    def fetch_pending(self) -> frozenset[str]:
        """Ask the responder about every queued certificate (the refresher's thread); returns decided ids."""
        with self._lock:
            queued, self._pending = self._pending, {}
        changed = set()
        for key, (cert, issuer) in queued.items():
            try:
                answer = self.query(cert, issuer)  # the network: outside the lock
            except RevocationDataRejected as err:
                log.warning("OCSP 応答を得られません (%s): %s", self.url, err.message)
                with self._lock:
                    _put(self._errors, key, err)
                continue
            with self._lock:
                self._errors.pop(key, None)
                old = self._answers.get(key)
                _put(self._answers, key, answer)
            if answer.state != "unknown" and (old is None or old.sha256 != answer.sha256):
                changed.add(f"ocsp:{key[0].hex()}:{key[1]:x}")
        return frozenset(changed)

    def query(self, cert: x509.Certificate, issuer: x509.Certificate) -> OcspAnswer:
        """One request to the responder and the verified answer about ``cert`` (network)."""
        # SHA-1 only names the certificate in the CertID (what responders expect), it signs nothing.
        request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
        body = request.public_bytes(serialization.Encoding.DER)
        http = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/ocsp-request", "Accept": "application/ocsp-response"})
        try:
            with urllib.request.urlopen(http, timeout=self.timeout) as response:
                data = response.read(MAX_RESPONSE_BYTES + 1)
        except OSError as exc:
            raise RevocationDataRejected("revocation-ocsp-unreachable", f"OCSP レスポンダに接続できません: {exc}") from exc
        return self.verify_response(data, request, issuer)

    def verify_response(self, data: bytes, request: ocsp.OCSPRequest, issuer: x509.Certificate) -> OcspAnswer:
        """Parse and check one DER response for ``request``; raises :class:`RevocationDataRejected`."""
        if len(data) > MAX_RESPONSE_BYTES:
            raise RevocationDataRejected("revocation-ocsp-invalid", "OCSP 応答が大きすぎます")
        try:
            response = ocsp.load_der_ocsp_response(data)
            if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
                raise RevocationDataRejected("revocation-ocsp-unreachable",
                                             f"OCSP 応答の状態: {response.response_status.name}")
            now = self.clock()
            _check_signer(response, issuer, now)
            single = next((s for s in response.responses if s.serial_number == request.serial_number
                           and s.issuer_key_hash == request.issuer_key_hash
                           and s.issuer_name_hash == request.issuer_name_hash), None)
            if single is None:
                raise RevocationDataRejected("revocation-ocsp-invalid", "OCSP 応答に問い合わせた証明書がありません")
            if single.this_update_utc > now + FUTURE_SKEW:
                raise RevocationDataRejected("revocation-ocsp-invalid", "OCSP 応答の thisUpdate が未来です")
            reason = single.revocation_reason if single.certificate_status == ocsp.OCSPCertStatus.REVOKED else None
            answer = OcspAnswer(_STATES[single.certificate_status], single.this_update_utc, single.next_update_utc,
                                response.produced_at_utc, single.revocation_time_utc
                                if single.certificate_status == ocsp.OCSPCertStatus.REVOKED else None,
                                reason.value if reason is not None and reason in REASON_CODES else None,
                                hashlib.sha256(data).hexdigest())
        except ValueError as exc:
            raise RevocationDataRejected("revocation-ocsp-invalid", f"OCSP 応答を解析できません: {exc}") from exc
        if not self._fresh(answer, now):
            raise RevocationDataRejected("revocation-ocsp-stale", "OCSP 応答が古すぎます")
        return answer

    def _fresh(self, answer: OcspAnswer, when: dt.datetime) -> bool:
        if answer.next_update is not None:
            return when <= answer.next_update + self.grace
        return when <= answer.this_update + self.max_age

    def _decide(self, answer: OcspAnswer, serial: int, at: dt.datetime) -> RevocationStatus:
        detail: dict[str, Any] = {
            "responder": self.url, "this_update": answer.this_update.isoformat(),
            "next_update": answer.next_update.isoformat() if answer.next_update else None,
            "produced_at": answer.produced_at.isoformat(), "response_sha256": answer.sha256,
            "serial": format(serial, "x"), "as_of": at.isoformat()}
        if answer.state == "unknown":
            return RevocationStatus("unknown", f"ocsp:{self.url}", {
                **detail, "reason": "revocation-ocsp-unknown-cert", "message": "OCSP レスポンダが証明書を知りません",
                "awaiting": []})
        state = "good"
        if answer.revocation_time is not None:
            detail.update(revocation_date=answer.revocation_time.isoformat(),
                          revocation_reason=answer.revocation_reason)
            if answer.revocation_time <= at:
                state = "revoked"
            else:
                detail["revoked_after_arrival"] = True
        return RevocationStatus(state, f"ocsp:{self.url}", detail)  # type: ignore[arg-type]


def _put(entries: dict[Any, Any], key: Any, value: Any) -> None:
    """Record ``value``, the oldest entry making room: at most :data:`MAX_ENTRIES` (caller holds the lock)."""
    if key not in entries and len(entries) >= MAX_ENTRIES:
        entries.pop(next(iter(entries)))
    entries[key] = value


def _check_signer(response: ocsp.OCSPResponse, issuer: x509.Certificate, now: dt.datetime) -> None:
    """Signed by the issuing root, or by a responder certificate it issued for OCSP signing."""
    if not strong_signature_hash(response):
        raise RevocationDataRejected("revocation-ocsp-invalid", "OCSP 応答の署名アルゴリズムが弱すぎます")
    for candidate in (issuer, *response.certificates):
        if response.responder_key_hash is not None:
            key_id = x509.SubjectKeyIdentifier.from_public_key(candidate.public_key()).digest
            named = key_id == response.responder_key_hash
        else:
            named = candidate.subject == response.responder_name
        if not named or (candidate is not issuer and not _delegated(candidate, issuer, now)):
            continue
        try:
            candidate.public_key().verify(response.signature, response.tbs_response_bytes,  # type: ignore[call-arg]
                                          padding.PKCS1v15(), response.signature_hash_algorithm)
        except (InvalidSignature, TypeError, ValueError, UnsupportedAlgorithm):
            continue
        return
    raise RevocationDataRejected("revocation-ocsp-invalid", "OCSP 応答の署名を検証できません")


def _delegated(cert: x509.Certificate, issuer: x509.Certificate, now: dt.datetime) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (ValueError, InvalidSignature, TypeError, UnsupportedAlgorithm, x509.ExtensionNotFound):
        return False
    return ExtendedKeyUsageOID.OCSP_SIGNING in usages and cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _unknown(code: str, message: str, awaiting: list[str]) -> RevocationStatus:
    return RevocationStatus("unknown", "ocsp", {"reason": code, "message": message, "awaiting": awaiting})
