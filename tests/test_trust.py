"""Pinned roots and the signing-certificate profile (jpki-profile.md; security.md §4, cases 47-54)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.errors import CertificateError, StartupError
from gateway.testpki import (
    POLICY_SIGNING_PRODUCTION,
    POLICY_SIGNING_TEST,
    TestPKI,
    issue_certificate,
    root_name,
)
from gateway.trust import CertificateValidator, NoRevocationChecker, TrustAnchors

NOW = dt.datetime.now(dt.timezone.utc)
_KEYS: dict[int, rsa.RSAPrivateKey] = {}


def key(bits: int = 2048) -> rsa.RSAPrivateKey:
    if bits not in _KEYS:
        _KEYS[bits] = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return _KEYS[bits]


@pytest.fixture(scope="module")
def anchors(pki: TestPKI) -> TrustAnchors:
    return TrustAnchors.load([str(pki.roots_dir / "*.pem")])


@pytest.fixture(scope="module")
def validator(anchors: TrustAnchors) -> CertificateValidator:
    return CertificateValidator(anchors, allow_test_roots=True)


def leaf(pki: TestPKI, *, root_index: int = 1, policy=POLICY_SIGNING_TEST, auth: bool = False, bits: int = 2048,
         root_cert: x509.Certificate | None = None, root_key: rsa.RSAPrivateKey | None = None) -> x509.Certificate:
    return issue_certificate(
        root_cert or pki.roots[root_index], root_key or pki.root_keys[root_index], key(bits),
        municipality=pki.municipalities[0], cn="20261128000000000001131016", not_before=NOW - dt.timedelta(days=1),
        not_after=NOW + dt.timedelta(days=365), facts=None if auth else ("山田　太郎", "00000", "1", "319800415",
                                                                         "東京都千代田区千代田１", "0" * 11),
        policy=policy, auth=auth)


def custom_leaf(pki: TestPKI, *, hash_algorithm=None, ca: bool = False, critical_unknown: bool = False,
                key_usage: x509.KeyUsage | None = None) -> x509.Certificate:
    """A leaf built by hand, for properties issue_certificate does not vary."""
    root = pki.roots[1]
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "leaf")]))
               .issuer_name(root.subject).public_key(key().public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=30))
               .add_extension(key_usage or x509.KeyUsage(True, True, False, False, False, False, False, False, False),
                              critical=True)
               .add_extension(x509.CertificatePolicies([x509.PolicyInformation(POLICY_SIGNING_TEST, None)]),
                              critical=False)
               .add_extension(x509.AuthorityKeyIdentifier(
                   root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest, None, None),
                   critical=False))
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    if critical_unknown:
        builder = builder.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4.5"), b"\x05\x00"),
                                        critical=True)
    return builder.sign(pki.root_keys[1], hash_algorithm or hashes.SHA256())


def code_of(validator: CertificateValidator, cert: x509.Certificate, at: dt.datetime = NOW) -> str:
    with pytest.raises(CertificateError) as info:
        validator.validate(cert, at)
    return info.value.code


# --------------------------------------------------------------------------- anchors


def test_load_globs_dedupes_and_marks_test_roots(pki, anchors):
    assert len(anchors.anchors) == 2
    again = TrustAnchors.load([str(pki.roots_dir / "*.pem"), str(pki.root_paths[0])])
    assert [a.fingerprint for a in again.anchors] == [a.fingerprint for a in anchors.anchors]
    assert all(a.test for a in anchors.anchors) and anchors.has_test_roots
    assert {a.key_identifier for a in anchors.anchors} == {
        r.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest for r in pki.roots}


def test_load_der_and_empty_glob(pki, tmp_path: Path, caplog):
    der = tmp_path / "root.cer"
    der.write_bytes(pki.roots[0].public_bytes(serialization.Encoding.DER))
    assert TrustAnchors.load([der]).anchors[0].certificate == pki.roots[0]
    assert TrustAnchors.load([str(tmp_path / "none" / "*.pem")]).anchors == ()
    assert "ルート証明書が設定されていません" in caplog.text


def test_load_refuses_missing_files_and_non_ca_certificates(pki, tmp_path: Path):
    with pytest.raises(StartupError):
        TrustAnchors.load([tmp_path / "missing.pem"])
    leaf_file = tmp_path / "leaf.pem"
    leaf_file.write_bytes(pki.residents[0].cert.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(StartupError):
        TrustAnchors.load([leaf_file])
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(StartupError):
        TrustAnchors.load([junk])


# --------------------------------------------------------------------------- validation


def test_valid_signing_certificates_under_both_root_generations(pki, validator, anchors):
    for resident in (pki.resident("yamada-taro"), pki.resident("suzuki-hanako")):
        info = validator.validate(resident.cert, NOW)
        root = pki.roots[resident.root_index]
        assert info.anchor_fingerprint == root.fingerprint(hashes.SHA256()).hex()
        assert info.serial_number == resident.cert.serial_number and info.test_root
        assert info.policy_oids == (POLICY_SIGNING_TEST.dotted_string,)
        assert info.der == resident.cert.public_bytes(serialization.Encoding.DER)
        assert "L=千代田区" in info.subject or "L=大阪市" in info.subject


def test_same_dn_attacker_root_is_not_trusted(pki, validator):
    """An attacker root with the JPKI DN (and even the real root's key identifier): never by name."""
    evil_key = key(3072)
    real_ski = pki.roots[1].extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    evil_root = (x509.CertificateBuilder().subject_name(root_name()).issuer_name(root_name())
                 .public_key(evil_key.public_key()).serial_number(1)
                 .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=9))
                 .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                 .add_extension(x509.SubjectKeyIdentifier(real_ski), critical=False)
                 .sign(evil_key, hashes.SHA256()))
    forged = leaf(pki, root_cert=evil_root, root_key=evil_key)
    assert forged.issuer == pki.roots[1].subject
    assert code_of(validator, forged) == "certificate-untrusted"


def test_a_pinned_root_is_not_a_signing_certificate(pki, validator):
    assert code_of(validator, pki.roots[0]) == "certificate-untrusted"


def test_test_roots_need_the_setting(pki, anchors):
    strict = CertificateValidator(anchors, allow_test_roots=False)
    assert code_of(strict, pki.resident("yamada-taro").cert) == "certificate-test-root"


def test_validity_is_judged_as_of_arrival(pki, validator):
    expired = pki.resident("ito-kenji").cert
    assert code_of(validator, expired) == "certificate-expired"
    before_expiry = expired.not_valid_after_utc - dt.timedelta(days=1)
    assert validator.validate(expired, before_expiry).serial_number == expired.serial_number
    valid = pki.resident("yamada-taro").cert
    just_before = valid.not_valid_before_utc - dt.timedelta(seconds=1)
    assert code_of(validator, valid, just_before) == "certificate-not-yet-valid"
    with pytest.raises(ValueError):
        validator.validate(valid, dt.datetime.now())  # naive time: a programming error


def test_user_authentication_certificate_is_refused(pki, validator):
    assert code_of(validator, pki.resident("watanabe-kumiko").cert) == "certificate-authentication-cert"


def test_policy_must_match_the_root_kind(pki, validator):
    assert code_of(validator, leaf(pki, policy=POLICY_SIGNING_PRODUCTION)) == "certificate-policy"
    assert code_of(validator, leaf(pki, policy=x509.ObjectIdentifier("1.2.3.4"))) == "certificate-policy"


def test_production_root_accepts_the_production_policy_without_test_roots(pki, tmp_path: Path):
    root_key = key()
    ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    root = (x509.CertificateBuilder().subject_name(root_name(production_like=True))
            .issuer_name(root_name(production_like=True)).public_key(root_key.public_key()).serial_number(7)
            .not_valid_before(NOW - dt.timedelta(days=10)).not_valid_after(NOW + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(ski, critical=False).sign(root_key, hashes.SHA256()))
    path = tmp_path / "prod.pem"
    path.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    prod = CertificateValidator(TrustAnchors.load([path]), allow_test_roots=False)
    info = prod.validate(leaf(pki, root_cert=root, root_key=root_key, policy=POLICY_SIGNING_PRODUCTION), NOW)
    assert not info.test_root and info.policy_oids == (POLICY_SIGNING_PRODUCTION.dotted_string,)
    test_policy = leaf(pki, root_cert=root, root_key=root_key, policy=POLICY_SIGNING_TEST)
    assert code_of(prod, test_policy) == "certificate-policy"


def test_key_usage_must_be_critical_signature_and_non_repudiation(pki, validator):
    digital_signature_only = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    assert code_of(validator, custom_leaf(pki, key_usage=digital_signature_only)) == "certificate-key-usage"
    assert code_of(validator, custom_leaf(pki, ca=True)) == "certificate-key-usage"


def test_weak_key_and_weak_signature_algorithm(pki, validator):
    assert code_of(validator, leaf(pki, bits=1024)) == "certificate-weak-key"
    assert code_of(validator, custom_leaf(pki, hash_algorithm=hashes.SHA224())) == "certificate-weak-algorithm"


def test_unknown_critical_extension(pki, validator):
    assert code_of(validator, custom_leaf(pki, critical_unknown=True)) == "certificate-critical-extension"
    assert validator.validate(custom_leaf(pki), NOW).subject == "CN=leaf"


def test_no_anchors_refuses_everything(pki):
    assert code_of(CertificateValidator(TrustAnchors(), allow_test_roots=True),
                   pki.resident("yamada-taro").cert) == "certificate-untrusted"


def test_no_revocation_checker_says_not_checked(pki, validator):
    resident = pki.resident("sato-ichiro")  # revoked on the CRL, which this checker does not read
    status = NoRevocationChecker().check(resident.cert, validator.validate(resident.cert, NOW), NOW)
    assert status.state == "not-checked" and status.source == "none"
    assert dataclasses.is_dataclass(status)
