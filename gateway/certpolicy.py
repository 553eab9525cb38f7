"""The JPKI signing-certificate profile (``jpki-profile.md``), as rules and as a library policy.

Path validation itself (chain building, signatures, validity, basicConstraints, critical
extensions, signature algorithms) is cryptography's ``x509.verification``;
:mod:`gateway.trust` runs it. This module holds what the library is *told*: the extension
policies for the signing certificate and for the pinned roots, and the rules of the profile
the library cannot express (leaf key type and size, which policy OID under which root). The
same rule functions also explain a refusal: the library says *that* a certificate failed, and
:func:`explain` says *which* rule, with a stable code and a Japanese message.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Sequence
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtensionOID
from cryptography.x509.verification import Criticality, ExtensionPolicy

from gateway.errors import CertificateError

POLICY_SIGNING = "1.2.392.200149.8.5.1.1.20"
POLICY_SIGNING_TEST = "1.2.392.200149.8.5.1.0.20"
POLICY_USER_AUTHENTICATION = "1.2.392.200149.8.5.1.3.30"
TEST_ROOT_ORGANIZATION = "JPKI-TEST"
MIN_RSA_BITS = 2048
MIN_RSA_EXPONENT = 65537
_STRONG_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)

Callback = Callable[..., None]

# --------------------------------------------------------------------------- the library policy

# Extensions of the signing certificate that may be critical. ``ExtensionPolicy.permit_all()``
# accounts for eight extension types with any criticality; the profile narrows that. Any other
# critical extension is refused by the library ("unaccounted-for critical extensions").
EE_MAY_BE_CRITICAL = frozenset({
    ExtensionOID.KEY_USAGE, ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.CERTIFICATE_POLICIES,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME, ExtensionOID.ISSUER_ALTERNATIVE_NAME,
    ExtensionOID.CRL_DISTRIBUTION_POINTS, ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.SUBJECT_KEY_IDENTIFIER,
})
# What the root's policy accounts for (permit_all's eight plus certificatePolicies). Checked
# when a root is loaded, so a root the library would refuse stops start-up instead.
CA_MAY_BE_CRITICAL = frozenset({
    ExtensionOID.KEY_USAGE, ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.CERTIFICATE_POLICIES,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME, ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.SUBJECT_KEY_IDENTIFIER, ExtensionOID.NAME_CONSTRAINTS, ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
})


def signing_certificate_policy(*, key_usage: Callback, basic_constraints: Callback, policies: Callback,
                               authority_key_id: Callback, crl_distribution_points: Callback | None = None,
                               ) -> ExtensionPolicy:
    """The end-entity policy: keyUsage critical and required, certificatePolicies required.

    The callbacks receive the parsed extension (only that one: parsing them all costs ~100 µs
    per certificate) and raise to refuse. ``policies`` and ``authority_key_id`` only record the
    value, because what they must contain depends on which root the library chose;
    ``crl_distribution_points`` records where the revocation check looks.
    """
    return (ExtensionPolicy.permit_all()
            .require_present(x509.KeyUsage, Criticality.CRITICAL, key_usage)
            .may_be_present(x509.BasicConstraints, Criticality.AGNOSTIC, basic_constraints)
            .require_present(x509.CertificatePolicies, Criticality.AGNOSTIC, policies)
            .may_be_present(x509.AuthorityKeyIdentifier, Criticality.AGNOSTIC, authority_key_id)
            .may_be_present(x509.IssuerAlternativeName, Criticality.AGNOSTIC, None)
            .may_be_present(x509.CRLDistributionPoints, Criticality.AGNOSTIC, crl_distribution_points)
            # Not in the profile, and nothing here processes them: tolerated only non-critical.
            .may_be_present(x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None)
            .may_be_present(x509.AuthorityInformationAccess, Criticality.NON_CRITICAL, None)
            .may_be_present(x509.NameConstraints, Criticality.NON_CRITICAL, None))


def root_policy() -> ExtensionPolicy:
    """The pinned roots were checked once at load (:func:`anchor_refusal`); here only what the library needs."""
    return (ExtensionPolicy.permit_all()
            .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, None)
            .may_be_present(x509.CertificatePolicies, Criticality.AGNOSTIC, None))


# --------------------------------------------------------------------------- rules


def _refuse(code: str, message: str) -> CertificateError:
    return CertificateError(message, code=code)


def untrusted(reason: str = "") -> CertificateError:
    detail = "信頼するルート証明書から発行された証明書ではありません"
    return _refuse("certificate-untrusted", f"{detail}（{reason}）" if reason else detail)


def malformed_extensions(exc: Exception) -> CertificateError:
    """Extensions that cannot be decoded (duplicated, bad DER, a subjectAltName entry that is no
    address …): refused, never an internal error."""
    return _refuse("certificate-malformed", f"証明書の拡張を解析できません（{exc}）")


def validity_refusal(cert: x509.Certificate, at: dt.datetime, which: str) -> CertificateError | None:
    if at < cert.not_valid_before_utc:
        return _refuse("certificate-not-yet-valid", f"{which}の有効期間の開始前です（到達時刻 {at.isoformat()}）")
    if at > cert.not_valid_after_utc:
        return _refuse("certificate-expired", f"{which}の有効期限が切れています（到達時刻 {at.isoformat()}）")
    return None


def key_usage_refusal(usage: x509.KeyUsage | None, *, critical: bool) -> CertificateError | None:
    if usage is None or not critical or not (usage.digital_signature and usage.content_commitment):
        return _refuse("certificate-key-usage",
                       "鍵用途（keyUsage: critical, digitalSignature と nonRepudiation）が不正です")
    return None


def end_entity_refusal(constraints: x509.BasicConstraints | None) -> CertificateError | None:
    if constraints is not None and constraints.ca:
        return _refuse("certificate-not-end-entity", "CA 証明書（basicConstraints cA=TRUE）では申請に署名できません")
    return None


def policy_refusal(policy_oids: Collection[str], *, test_anchor: bool) -> CertificateError | None:
    """The signing policy of the root's kind: production under JPKI, test under JPKI-TEST."""
    if POLICY_USER_AUTHENTICATION in policy_oids:
        return _refuse("certificate-authentication-cert", "利用者証明用電子証明書では申請に署名できません")
    if (POLICY_SIGNING_TEST if test_anchor else POLICY_SIGNING) not in policy_oids:
        found = ", ".join(policy_oids) or "なし"
        return _refuse("certificate-policy", f"証明書ポリシーが署名用電子証明書のものではありません（{found}）")
    return None


def public_key_refusal(cert: x509.Certificate) -> CertificateError | None:
    """RSA of at least 2048 bits, e ≥ 65537: the library only checks the *issuer's* key size."""
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        key = None
    if (not isinstance(key, rsa.RSAPublicKey) or key.key_size < MIN_RSA_BITS
            or key.public_numbers().e < MIN_RSA_EXPONENT):
        return _refuse("certificate-weak-key", f"公開鍵が弱すぎます（RSA {MIN_RSA_BITS} ビット以上が必要）")
    return None


def strong_signature_hash(signed: x509.Certificate | x509.CertificateRevocationList | Any) -> bool:
    """SHA-256 or stronger in the signature of a certificate, CRL or OCSP response."""
    try:
        return isinstance(signed.signature_hash_algorithm, _STRONG_HASHES)
    except UnsupportedAlgorithm:
        return False


def signature_algorithm_refusal(cert: x509.Certificate) -> CertificateError | None:
    strong = strong_signature_hash(cert) and isinstance(cert.signature_algorithm_parameters,
                                                         (padding.PKCS1v15, padding.PSS))
    if not strong:
        return _refuse("certificate-weak-algorithm", "証明書の署名アルゴリズムが弱すぎます（SHA-256 以上の RSA が必要）")
    return None


def critical_extension_refusal(extensions: x509.Extensions) -> CertificateError | None:
    for ext in extensions:
        if ext.critical and ext.oid not in EE_MAY_BE_CRITICAL:
            return _refuse("certificate-critical-extension",
                           f"未知の重要（critical）拡張があります: {ext.oid.dotted_string}")
    return None


def anchor_refusal(cert: x509.Certificate) -> str | None:
    """Why a configured root cannot be a trust anchor (checked once, at load), or ``None``."""
    try:
        cert.verify_directly_issued_by(cert)
        extensions = cert.extensions
        constraints = extensions.get_extension_for_class(x509.BasicConstraints).value
    except (ValueError, InvalidSignature, TypeError, UnsupportedAlgorithm, x509.ExtensionNotFound):
        return "自己署名の CA 証明書ではありません"
    if not constraints.ca:
        return "CA 証明書ではありません"
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < MIN_RSA_BITS:
        return f"ルート証明書の鍵が RSA {MIN_RSA_BITS} ビット未満です"
    usage = _extension(extensions, x509.KeyUsage)
    if usage is not None and not usage.value.key_cert_sign:
        return "鍵用途に keyCertSign がありません"
    unknown = [e.oid.dotted_string for e in extensions if e.critical and e.oid not in CA_MAY_BE_CRITICAL]
    if unknown:
        return f"未知の重要（critical）拡張があります: {', '.join(unknown)}"
    return None


# --------------------------------------------------------------------------- explaining a refusal


def explain(cert: x509.Certificate, at: dt.datetime, *, issuers: Sequence[tuple[x509.Certificate, bool]],
            allow_test_roots: bool, library_error: str) -> CertificateError:
    """The refusal for a certificate path validation did not accept (slow path, never "accept").

    ``issuers``: every configured root with its test flag, including test roots that are not
    trusted now (so that case gets its own code). Order: untrusted, test root, validity, then
    the profile rules in the order the old checks reported them; a failure none of them
    explains stays ``certificate-untrusted`` with the library's reason.
    """
    if any(root == cert for root, _ in issuers):
        return untrusted("ルート証明書そのものは署名用電子証明書ではありません")
    issuer = next(((root, test) for root, test in issuers if _signed_by(cert, root)), None)
    if issuer is None:
        # A weak hash (SHA-1) cannot even be checked against a root: name it when a root
        # of that name exists; refused either way.
        named = any(root.subject == cert.issuer for root, _ in issuers)
        return (named and signature_algorithm_refusal(cert)) or untrusted()
    root, test = issuer
    if test and not allow_test_roots:
        return _refuse("certificate-test-root", "テスト用ルート証明書（JPKI-TEST）の証明書は受け付けません")
    refusal = validity_refusal(cert, at, "署名用電子証明書") or validity_refusal(root, at, "ルート証明書")
    if refusal:
        return refusal
    try:
        extensions = cert.extensions
    except ValueError as exc:  # duplicate or undecodable extensions
        return malformed_extensions(exc)
    usage, policies = _extension(extensions, x509.KeyUsage), _extension(extensions, x509.CertificatePolicies)
    basic = _extension(extensions, x509.BasicConstraints)
    oids = tuple(p.policy_identifier.dotted_string for p in policies.value) if policies else ()
    return (policy_refusal(oids, test_anchor=test)
            or key_usage_refusal(usage.value if usage else None, critical=usage is not None and usage.critical)
            or end_entity_refusal(basic.value if basic else None)
            or public_key_refusal(cert)
            or signature_algorithm_refusal(cert)
            or critical_extension_refusal(extensions)
            or untrusted(library_error.split(" (encountered processing", 1)[0]))


def _signed_by(cert: x509.Certificate, root: x509.Certificate) -> bool:
    """Issuer name and signature: only to *name* the issuer of a refused certificate."""
    try:
        cert.verify_directly_issued_by(root)
    except (ValueError, InvalidSignature, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _extension(extensions: x509.Extensions, kind: type[x509.ExtensionType]) -> x509.Extension | None:
    try:
        return extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None
