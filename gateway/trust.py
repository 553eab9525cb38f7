"""Pinned JPKI roots and the signer-certificate check (``jpki-profile.md``).

One tier: a pinned self-signed root issues the signing certificate directly. Several root
generations share one DN, so the issuer is chosen by key identifier **and** signature, never
by name. Everything is judged as of the arrival time.

Seams for the next step (RFC 5280 path validation with pyhanko-certvalidator, CRL/OCSP):
:class:`SignerCertificateValidator` is what verification depends on, and
:class:`RevocationChecker` is called after trust; :class:`NoRevocationChecker` records
"not checked" in the evidence until real revocation data is wired in.
"""

from __future__ import annotations

import datetime as dt
import glob
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from gateway.errors import CertificateError, StartupError
from gateway.models import CertificateInfo

log = logging.getLogger(__name__)

POLICY_SIGNING = "1.2.392.200149.8.5.1.1.20"
POLICY_SIGNING_TEST = "1.2.392.200149.8.5.1.0.20"
POLICY_USER_AUTHENTICATION = "1.2.392.200149.8.5.1.3.30"
TEST_ROOT_ORGANIZATION = "JPKI-TEST"
MIN_RSA_BITS = 2048
_STRONG_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)
# Critical extensions this check understands; any other critical one is refused (RFC 5280 §4.2).
_UNDERSTOOD_CRITICAL = frozenset({
    ExtensionOID.KEY_USAGE, ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.CERTIFICATE_POLICIES,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME, ExtensionOID.ISSUER_ALTERNATIVE_NAME,
    ExtensionOID.CRL_DISTRIBUTION_POINTS, ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.SUBJECT_KEY_IDENTIFIER,
})


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
        refused as untrusted); a named file that does not exist, or a certificate that is not
        a self-signed CA, stops start-up.
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

    def candidates_for(self, extensions: x509.Extensions) -> tuple[TrustAnchor, ...]:
        """Anchors whose key identifier matches the certificate's AKI (all of them without an AKI)."""
        try:
            aki = extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        except x509.ExtensionNotFound:
            aki = None
        if aki is None:
            return self.anchors
        return tuple(a for a in self.anchors if a.key_identifier == aki)


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
    try:
        cert.verify_directly_issued_by(cert)
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (ValueError, InvalidSignature, TypeError, UnsupportedAlgorithm, x509.ExtensionNotFound) as exc:
        raise StartupError(f"自己署名の CA 証明書ではありません: {source}") from exc
    if not constraints.ca:
        raise StartupError(f"CA 証明書ではありません: {source}")
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

    def validate(self, cert: x509.Certificate, at: dt.datetime) -> CertificateInfo:
        """:raises CertificateError: with a ``certificate-…`` code."""
        ...


class CertificateValidator:
    """The signing certificate, one tier below a pinned root, per the JPKI profile."""

    def __init__(self, anchors: TrustAnchors, *, allow_test_roots: bool) -> None:
        self.anchors = anchors
        self.allow_test_roots = allow_test_roots

    def validate(self, cert: x509.Certificate, at: dt.datetime) -> CertificateInfo:
        if at.tzinfo is None:
            raise ValueError("at must be timezone-aware")
        extensions = _extensions(cert)  # refuses undecodable or duplicate extensions up front
        anchor = self._issuer(cert, extensions)
        if anchor.test and not self.allow_test_roots:
            raise CertificateError("テスト用ルート証明書（JPKI-TEST）の証明書は受け付けません",
                                   code="certificate-test-root")
        for subject, which in ((cert, "署名用電子証明書"), (anchor.certificate, "ルート証明書")):
            if at < subject.not_valid_before_utc:
                raise CertificateError(f"{which}の有効期間の開始前です（到達時刻 {at.isoformat()}）",
                                       code="certificate-not-yet-valid")
            if at > subject.not_valid_after_utc:
                raise CertificateError(f"{which}の有効期限が切れています（到達時刻 {at.isoformat()}）",
                                       code="certificate-expired")
        policies = _policies(extensions)
        self._check_policy(policies, anchor)
        _check_key_usage(extensions)
        _check_key_and_algorithm(cert)
        for ext in extensions:
            if ext.critical and ext.oid not in _UNDERSTOOD_CRITICAL:
                raise CertificateError(f"未知の重要（critical）拡張があります: {ext.oid.dotted_string}",
                                       code="certificate-critical-extension")
        return CertificateInfo(
            subject=cert.subject.rfc4514_string(), issuer=anchor.subject,  # issuer == root subject, checked
            serial_number=cert.serial_number, not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc, der=cert.public_bytes(serialization.Encoding.DER),
            anchor_fingerprint=anchor.fingerprint, policy_oids=policies, test_root=anchor.test)

    def _issuer(self, cert: x509.Certificate, extensions: x509.Extensions) -> TrustAnchor:
        for anchor in self.anchors.candidates_for(extensions):
            if anchor.certificate == cert:
                break  # a root is not a signing certificate, even signed by itself
            try:
                # Checks issuer DN == root subject and the signature with the root's key.
                cert.verify_directly_issued_by(anchor.certificate)
            except (ValueError, InvalidSignature, TypeError, UnsupportedAlgorithm):
                continue
            return anchor
        raise CertificateError("信頼するルート証明書から発行された証明書ではありません", code="certificate-untrusted")

    def _check_policy(self, policies: tuple[str, ...], anchor: TrustAnchor) -> None:
        if POLICY_USER_AUTHENTICATION in policies:
            raise CertificateError("利用者証明用電子証明書では申請に署名できません",
                                   code="certificate-authentication-cert")
        expected = POLICY_SIGNING_TEST if anchor.test else POLICY_SIGNING
        if expected not in policies:
            found = ", ".join(policies) or "なし"
            raise CertificateError(f"証明書ポリシーが署名用電子証明書のものではありません（{found}）",
                                   code="certificate-policy")


def _extensions(cert: x509.Certificate) -> x509.Extensions:
    try:
        return cert.extensions
    except ValueError as exc:  # duplicate or undecodable extensions
        raise CertificateError("証明書の拡張を解析できません", code="certificate-malformed") from exc


def _policies(extensions: x509.Extensions) -> tuple[str, ...]:
    try:
        value = extensions.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(p.policy_identifier.dotted_string for p in value)


def _check_key_usage(extensions: x509.Extensions) -> None:
    try:
        ext = extensions.get_extension_for_class(x509.KeyUsage)
    except x509.ExtensionNotFound:
        ext = None
    if ext is None or not ext.critical or not (ext.value.digital_signature and ext.value.content_commitment):
        raise CertificateError("鍵用途（keyUsage: critical, digitalSignature と nonRepudiation）が不正です",
                               code="certificate-key-usage")
    try:
        if extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise CertificateError("CA 証明書では申請に署名できません", code="certificate-key-usage")
    except x509.ExtensionNotFound:
        pass


def _check_key_and_algorithm(cert: x509.Certificate) -> None:
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < MIN_RSA_BITS or key.public_numbers().e < 65537:
        raise CertificateError(f"公開鍵が弱すぎます（RSA {MIN_RSA_BITS} ビット以上が必要）",
                               code="certificate-weak-key")
    try:
        strong = isinstance(cert.signature_hash_algorithm, _STRONG_HASHES) and isinstance(
            cert.signature_algorithm_parameters, (padding.PKCS1v15, padding.PSS))
    except UnsupportedAlgorithm:
        strong = False
    if not strong:
        raise CertificateError("証明書の署名アルゴリズムが弱すぎます（SHA-256 以上の RSA が必要）",
                               code="certificate-weak-algorithm")


# --------------------------------------------------------------------------- revocation seam


RevocationState = Literal["good", "revoked", "unknown", "not-checked"]


@dataclass(frozen=True)
class RevocationStatus:
    """The revocation decision for one certificate as of the arrival time."""

    state: RevocationState
    source: str = ""
    """Which data decided it, e.g. ``crl:<issuer key id>/<number>`` or ``ocsp:<responder>``."""
    detail: Mapping[str, object] = field(default_factory=dict)
    """JSON-serialisable evidence (CRL number, thisUpdate, revocation date…)."""


class RevocationChecker(Protocol):
    def check(self, cert: x509.Certificate, signer: CertificateInfo, at: dt.datetime) -> RevocationStatus:
        """Status of ``cert`` (already trusted as ``signer``) as of ``at``; never raises for "unknown"."""
        ...


class NoRevocationChecker:
    """No revocation data configured: every certificate is "not checked", and says so in the evidence."""

    def check(self, cert: x509.Certificate, signer: CertificateInfo, at: dt.datetime) -> RevocationStatus:
        return RevocationStatus(state="not-checked", source="none",
                                detail={"reason": "失効確認は未設定です（CRL/OCSP なし）"})
