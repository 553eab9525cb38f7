"""Pinned JPKI roots and the signer-certificate check (``jpki-profile.md``).

One tier: a pinned self-signed root issues the signing certificate directly. Several root
generations share one DN, so the issuer is chosen by key identifier **and** signature, never
by name. Everything is judged as of the arrival time.

RFC 5280 path validation is cryptography's ``x509.verification`` (Rust, ~µs): the store of
pinned roots and the extension policies are built once, only the validation time changes (one
verifier per arrival second). :mod:`gateway.certpolicy` holds the profile: what the library is
told and the rules it cannot express. What revocation and identity need (the root the library
chose, its key identifier, the distribution points and subjectAltName entries the library
decoded) is in the returned :class:`~gateway.models.CertificateInfo`; revocation itself is
:mod:`gateway.revocation`.
"""

from __future__ import annotations

import datetime as dt
import glob
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import ClientVerifier, PolicyBuilder, Store, VerificationError

from gateway import certpolicy
from gateway.certpolicy import TEST_ROOT_ORGANIZATION
from gateway.errors import CertificateError, StartupError
from gateway.models import CertificateInfo

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- anchors


@dataclass(frozen=True)
class TrustAnchor:
    certificate: x509.Certificate = field(repr=False)
    fingerprint: str
    """SHA-256 of the DER, hex."""
    key_identifier: bytes
    """The root's subjectKeyIdentifier (computed from its key when the extension is absent)."""
    test: bool
    """A test root (``O=JPKI-TEST``): refused unless test roots are allowed."""
    source: str
    subject: str = ""
    """RFC 4514 subject, rendered once (it is the issuer of every certificate the root signed)."""


@dataclass(frozen=True)
class TrustAnchors:
    anchors: tuple[TrustAnchor, ...] = ()

    @classmethod
    def load(cls, paths: Sequence[str | Path]) -> TrustAnchors:
        """Load PEM (one or more certificates) or DER files; entries may be globs.

        A glob that matches nothing is fine (no roots configured: every signed package is then
        refused as untrusted); a named file that does not exist, or a certificate that cannot be
        a trust anchor (not a self-signed CA, weak key, …: :func:`certpolicy.anchor_refusal`),
        stops start-up.
        """
        anchors: dict[str, TrustAnchor] = {}
        for entry in paths:
            pattern = str(entry)
            files = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
            for name in files:
                for cert in _read_certificates(Path(name)):
                    anchor = _anchor(cert, name)
                    anchors.setdefault(anchor.fingerprint, anchor)
        if not anchors:
            log.warning("信頼するルート証明書が設定されていません: 署名付きの申請はすべて拒否されます")
        return cls(tuple(anchors.values()))

    @property
    def has_test_roots(self) -> bool:
        return any(a.test for a in self.anchors)


def _read_certificates(path: Path) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StartupError(f"ルート証明書を読み込めません: {path}") from exc
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise StartupError(f"ルート証明書の形式が不正です: {path}") from exc


def _anchor(cert: x509.Certificate, source: str) -> TrustAnchor:
    """Everything static about a root, checked and rendered once."""
    refusal = certpolicy.anchor_refusal(cert)
    if refusal:
        raise StartupError(f"信頼するルート証明書にできません（{refusal}）: {source}")
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        ski = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    organizations = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return TrustAnchor(certificate=cert, fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
                       key_identifier=ski, test=TEST_ROOT_ORGANIZATION in organizations, source=source,
                       subject=cert.subject.rfc4514_string())


# --------------------------------------------------------------------------- validation


class SignerCertificateValidator(Protocol):
    """What verification needs: accept the signer's certificate as of ``at``, or raise."""

    def validate(self, cert: x509.Certificate, at: dt.datetime, *, der: bytes | None = None) -> CertificateInfo:
        """:raises CertificateError: with a ``certificate-…`` code.

        :param der: ``cert``'s DER when the caller has it: what ``cert`` was loaded from (strict
            DER, so the very bytes ``public_bytes`` would encode again, ~12 µs).
        """
        ...


class _Seen(threading.local):
    """Extension values the library handed to the policy callbacks during this thread's verify().

    The callbacks are the only place the library shares a parsed extension; they run
    synchronously inside ``verify()`` on the calling thread, so a thread-local carries the
    values back without parsing every extension again (~100 µs for a JPKI certificate).
    """

    policies: tuple[str, ...] = ()
    authority_key_id: bytes | None = None
    crl_distribution_points: x509.CRLDistributionPoints | None = None


_NO_DISTRIBUTION_POINTS = x509.CRLDistributionPoints([])
"""Recorded for a certificate without the extension (None would mean "not recorded")."""
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_SECOND = dt.timedelta(seconds=1)


class CertificateValidator:
    """The signing certificate, one tier below a pinned root, per the JPKI profile.

    Built once; ``validate`` is safe to call from several threads.
    """

    def __init__(self, anchors: TrustAnchors, *, allow_test_roots: bool) -> None:
        self.anchors = anchors
        self.allow_test_roots = allow_test_roots
        self._trusted = tuple(a for a in anchors.anchors if allow_test_roots or not a.test)
        # Every configured root, trusted now or not: only to explain a refusal.
        self._issuers = tuple((a.certificate, a.test) for a in anchors.anchors)
        self._seen = _Seen()
        self._by_identity = {id(a.certificate): a for a in self._trusted}
        self._builder = None
        self._verifier: tuple[int, ClientVerifier] | None = None
        """The verifier of the last arrival second used (see :meth:`_verifier_at`)."""
        if self._trusted:
            ee_policy = certpolicy.signing_certificate_policy(
                key_usage=_check_key_usage, basic_constraints=_check_end_entity,
                policies=self._record_policies, authority_key_id=self._record_authority_key_id,
                crl_distribution_points=self._record_crl_distribution_points)
            self._builder = (PolicyBuilder().store(Store([a.certificate for a in self._trusted]))
                             .max_chain_depth(0)  # one tier: no intermediate CA between root and leaf
                             .extension_policies(ca_policy=certpolicy.root_policy(), ee_policy=ee_policy))

    def validate(self, cert: x509.Certificate, at: dt.datetime, *, der: bytes | None = None) -> CertificateInfo:
        if at.tzinfo is None:
            raise ValueError("at must be timezone-aware")
        if self._builder is None:
            raise self._explain(cert, at, "信頼するルート証明書が設定されていません")
        seen = self._seen
        seen.policies, seen.authority_key_id, seen.crl_distribution_points = (), None, None
        try:
            verified = self._verifier_at(at).verify(cert, [])
        except VerificationError as exc:
            raise self._explain(cert, at, str(exc)) from exc
        except ValueError as exc:  # the library could not turn a subjectAltName entry into Python
            raise certpolicy.malformed_extensions(exc) from exc
        chain = verified.chain
        anchor = self._anchor_of(chain[-1]) if len(chain) == 2 else None
        if anchor is None:
            raise certpolicy.untrusted()
        if seen.authority_key_id not in (None, anchor.key_identifier):
            raise certpolicy.untrusted("鍵識別子（authorityKeyIdentifier）が署名したルート証明書と一致しません")
        policies, points = seen.policies, seen.crl_distribution_points
        refusal = (certpolicy.policy_refusal(policies, test_anchor=anchor.test)
                   or certpolicy.public_key_refusal(cert))
        if refusal:
            raise refusal
        return CertificateInfo(
            subject=cert.subject.rfc4514_string(), issuer=anchor.subject,  # issuer == root subject (path validated)
            serial_number=cert.serial_number, not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc, der=der or cert.public_bytes(serialization.Encoding.DER),
            anchor_fingerprint=anchor.fingerprint, policy_oids=policies, test_root=anchor.test,
            issuer_key_id=anchor.key_identifier, issuer_certificate=anchor.certificate,
            crl_distribution_points=_NO_DISTRIBUTION_POINTS if points is None else points,
            verified_client=verified)

    def _verifier_at(self, at: dt.datetime) -> ClientVerifier:
        """The library's verifier for ``at``, built once per arrival second.

        The library judges validity to the second: it drops the microseconds of the time it is
        given (``tests/test_trust.py`` holds it to that), so every arrival within one second
        gets the very same verifier. Only the store, the policies and that time go into one; an
        arrival in another second builds its own. Threads may race to replace it: each builds a
        correct one.
        """
        second = (at - _EPOCH) // _SECOND
        last = self._verifier
        if last is None or last[0] != second:
            last = self._verifier = (second, self._builder.time(at).build_client_verifier())  # type: ignore[union-attr]
        return last[1]

    def _explain(self, cert: x509.Certificate, at: dt.datetime, library_error: str) -> CertificateError:
        return certpolicy.explain(cert, at, issuers=self._issuers, allow_test_roots=self.allow_test_roots,
                                  library_error=library_error)

    def _anchor_of(self, root: x509.Certificate) -> TrustAnchor | None:
        # The store hands back the very objects it was built from; equality is the fallback.
        return (self._by_identity.get(id(root))
                or next((a for a in self._trusted if a.certificate == root), None))

    def _record_policies(self, _policy: object, _cert: x509.Certificate, value: x509.CertificatePolicies) -> None:
        self._seen.policies = tuple(p.policy_identifier.dotted_string for p in value)

    def _record_crl_distribution_points(self, _policy: object, _cert: x509.Certificate,
                                        value: x509.CRLDistributionPoints | None) -> None:
        self._seen.crl_distribution_points = value

    def _record_authority_key_id(self, _policy: object, _cert: x509.Certificate,
                                 value: x509.AuthorityKeyIdentifier | None) -> None:
        self._seen.authority_key_id = value.key_identifier if value is not None else None


def _check_key_usage(_policy: object, _cert: x509.Certificate, value: x509.KeyUsage) -> None:
    refusal = certpolicy.key_usage_refusal(value, critical=True)  # criticality: the library checked it
    if refusal:
        raise refusal


def _check_end_entity(_policy: object, _cert: x509.Certificate, value: x509.BasicConstraints | None) -> None:
    refusal = certpolicy.end_entity_refusal(value)
    if refusal:
        raise refusal

