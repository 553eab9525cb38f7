"""Pinned roots and the signing-certificate profile (jpki-profile.md; security.md §4, cases 47-54).

Every case is a real certificate: from the project's test PKI, or made here by
``tests.certfactory`` (cryptography's builder), including a hierarchy unrelated to the test PKI.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    ExtensionOID,
    NameOID,
)

from gateway import certpolicy
from gateway.errors import CertificateError, StartupError
from gateway.revocation import NoRevocationChecker
from gateway.testpki import (
    POLICY_SIGNING_PRODUCTION,
    POLICY_SIGNING_TEST,
    POLICY_USER_AUTH,
    TestPKI,
    issue_certificate,
    root_name,
)
from gateway.trust import CertificateValidator, TrustAnchor, TrustAnchors
from tests.certfactory import (
    CA_KEY_USAGE,
    DAY,
    SIGNING_KEY_USAGE,
    Issued,
    build,
    ec_key,
    make_leaf,
    make_root,
    name,
    rsa_key,
    unknown_extension,
)

NOW = dt.datetime.now(dt.timezone.utc)
JST = dt.timezone(dt.timedelta(hours=9))
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


@pytest.fixture(scope="module")
def prod_root() -> Issued:
    """A production-like root (O=JPKI, the real DN) made outside the test PKI."""
    return make_root(root_name(production_like=True), key=rsa_key(tag="prod-root"))


def pin(tmp_path: Path, *roots: Issued | x509.Certificate) -> TrustAnchors:
    path = tmp_path / "pinned.pem"
    path.write_bytes(b"".join((r.cert if isinstance(r, Issued) else r).public_bytes(serialization.Encoding.PEM)
                              for r in roots))
    return TrustAnchors.load([path])


@pytest.fixture
def prod(tmp_path: Path, prod_root: Issued) -> CertificateValidator:
    """Production settings: only the production-like root, test roots not allowed."""
    return CertificateValidator(pin(tmp_path, prod_root), allow_test_roots=False)


def leaf(pki: TestPKI, *, root_index: int = 1, policy=POLICY_SIGNING_TEST, auth: bool = False, bits: int = 2048,
         root_cert: x509.Certificate | None = None, root_key: rsa.RSAPrivateKey | None = None) -> x509.Certificate:
    return issue_certificate(
        root_cert or pki.roots[root_index], root_key or pki.root_keys[root_index], key(bits),
        municipality=pki.municipalities[0], cn="20261128000000000001131016", not_before=NOW - dt.timedelta(days=1),
        not_after=NOW + dt.timedelta(days=365), facts=None if auth else ("山田　太郎", "00000", "1", "319800415",
                                                                         "東京都千代田区千代田１", "0" * 11),
        policy=policy, auth=auth)


def pki_root(pki: TestPKI, index: int = 1) -> Issued:
    return Issued(pki.roots[index], pki.root_keys[index])


def custom_leaf(pki: TestPKI, **changes) -> x509.Certificate:
    """A test-PKI leaf built by the factory, for properties issue_certificate does not vary."""
    changes.setdefault("policies", (POLICY_SIGNING_TEST,))
    return make_leaf(pki_root(pki), subject=name((NameOID.COMMON_NAME, "leaf")), **changes).cert


def code_of(validator: CertificateValidator, cert: x509.Certificate, at: dt.datetime = NOW) -> str:
    with pytest.raises(CertificateError) as info:
        validator.validate(cert, at)
    assert any(ord(ch) > 0x3000 for ch in info.value.detail), "a Japanese message for people"
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


@pytest.mark.parametrize("case", ["rsa-1024", "ec", "no-keyCertSign", "unknown-critical-extension"])
def test_load_refuses_roots_path_validation_would_refuse(tmp_path: Path, case: str):
    """Checked once at start-up, so a misconfigured root stops the gateway instead of every package."""
    subject = name((NameOID.COUNTRY_NAME, "JP"), (NameOID.ORGANIZATION_NAME, f"Broken {case}"))
    if case == "unknown-critical-extension":
        root_key = rsa_key(tag="root-unknown-critical")
        cert = build(subject, subject, root_key.public_key(), root_key,
                     [(x509.BasicConstraints(ca=True, path_length=0), True), unknown_extension(critical=True)],
                     not_before=NOW - DAY, not_after=NOW + DAY)
    else:
        root_key = {"rsa-1024": rsa_key(1024), "ec": ec_key()}.get(case, rsa_key(tag="root-ku"))
        usage = SIGNING_KEY_USAGE if case == "no-keyCertSign" else CA_KEY_USAGE
        cert = make_root(subject, key=root_key, key_usage=usage).cert
    with pytest.raises(StartupError):
        pin(tmp_path, cert)


def _extension_samples() -> dict[str, x509.ExtensionType]:
    dn = root_name(production_like=True)
    point = x509.DistributionPoint([x509.DirectoryName(dn)], None, None, None)
    return {
        "issuerAltName": x509.IssuerAlternativeName([x509.DirectoryName(dn)]),
        "cRLDistributionPoints": x509.CRLDistributionPoints([point]),
        "certificatePolicies": x509.CertificatePolicies([x509.PolicyInformation(POLICY_SIGNING_PRODUCTION, None)]),
        "extendedKeyUsage": x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
        "subjectAltName": x509.SubjectAlternativeName([x509.RFC822Name("ca@example.jp")]),
        "authorityInfoAccess": x509.AuthorityInformationAccess([x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier("http://ca.example.jp/"))]),
        "policyConstraints": x509.PolicyConstraints(0, None),
        "inhibitAnyPolicy": x509.InhibitAnyPolicy(0),
        "freshestCRL": x509.FreshestCRL([point]),
    }


@pytest.mark.parametrize("kind", sorted(_extension_samples()))
def test_the_load_time_root_check_agrees_with_the_library(kind: str):
    """A critical extension in a root: refused at start-up exactly when path validation would refuse it."""
    root_key = rsa_key(tag=f"root-critical-{kind}")
    subject = root_name(production_like=True)
    root = Issued(build(subject, subject, root_key.public_key(), root_key,
                        [(x509.BasicConstraints(ca=True, path_length=0), True),
                         (x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False),
                         (_extension_samples()[kind], True)], not_before=NOW - DAY, not_after=NOW + DAY), root_key)
    unchecked = TrustAnchor(certificate=root.cert, fingerprint="-", key_identifier=root.key_identifier, test=False,
                            source="-", subject=subject.rfc4514_string())  # bypasses the load-time check
    validator = CertificateValidator(TrustAnchors((unchecked,)), allow_test_roots=False)
    try:
        validator.validate(make_leaf(root).cert, NOW)
        library_accepts = True
    except CertificateError:
        library_accepts = False
    assert (certpolicy.anchor_refusal(root.cert) is None) == library_accepts


# --------------------------------------------------------------------------- accepted


def test_valid_signing_certificates_under_both_root_generations(pki, validator, anchors):
    for resident in (pki.resident("yamada-taro"), pki.resident("suzuki-hanako")):
        info = validator.validate(resident.cert, NOW)
        root = pki.roots[resident.root_index]
        assert info.anchor_fingerprint == root.fingerprint(hashes.SHA256()).hex()
        assert info.serial_number == resident.cert.serial_number and info.test_root
        assert info.policy_oids == (POLICY_SIGNING_TEST.dotted_string,)
        assert info.der == resident.cert.public_bytes(serialization.Encoding.DER)
        assert "L=千代田区" in info.subject or "L=大阪市" in info.subject
        # What revocation needs: the root the path validation chose, and its key identifier.
        assert info.issuer_certificate == root
        assert info.issuer_key_id == root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def test_production_root_accepts_the_production_policy_without_test_roots(pki, prod, prod_root):
    info = prod.validate(leaf(pki, root_cert=prod_root.cert, root_key=prod_root.key,
                              policy=POLICY_SIGNING_PRODUCTION), NOW)
    assert not info.test_root and info.policy_oids == (POLICY_SIGNING_PRODUCTION.dotted_string,)
    assert info.issuer == prod_root.cert.subject.rfc4514_string()


def test_a_hierarchy_made_outside_the_test_pki_passes_when_its_root_is_pinned(tmp_path: Path):
    """Other names, other (larger) keys, SHA-384/512, extensions in reverse order, extra non-critical ones."""
    root_subject = name((NameOID.COMMON_NAME, "Independent Root G9"), (NameOID.ORGANIZATIONAL_UNIT_NAME, "署名検証"),
                        (NameOID.ORGANIZATION_NAME, "Example Prefecture"), (NameOID.COUNTRY_NAME, "JP"))
    root = make_root(root_subject, key=rsa_key(4096, tag="independent-root"), path_length=None,
                     order=lambda exts: exts[::-1])
    subject = name((NameOID.COMMON_NAME, "independent-leaf-0001"), (NameOID.ORGANIZATION_NAME, "Example"))
    extra = [(x509.SubjectAlternativeName([x509.RFC822Name("resident@example.jp")]), False),
             (x509.SubjectKeyIdentifier.from_public_key(rsa_key(3072, tag="independent-leaf").public_key()), False),
             (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False), unknown_extension(critical=False)]
    issued = make_leaf(root, subject=subject, key=rsa_key(3072, tag="independent-leaf"), extra=extra,
                       hash_algorithm=hashes.SHA512(), policies=(x509.ObjectIdentifier("1.2.3.4"),
                                                                 POLICY_SIGNING_PRODUCTION),
                       order=lambda exts: exts[::-1])
    assert code_of(CertificateValidator(TrustAnchors(), allow_test_roots=True), issued.cert) == "certificate-untrusted"
    info = CertificateValidator(pin(tmp_path, root), allow_test_roots=False).validate(issued.cert, NOW)
    assert info.issuer == root_subject.rfc4514_string() and info.issuer_key_id == root.key_identifier
    assert info.policy_oids == ("1.2.3.4", POLICY_SIGNING_PRODUCTION.dotted_string)


def test_the_issuer_is_chosen_by_signature_among_roots_with_the_same_dn(tmp_path: Path, prod_root):
    """Two generations, one DN; a leaf without AKI still finds the root whose key signed it."""
    newer = make_root(root_name(production_like=True), key=rsa_key(tag="prod-root-newer"))
    validator = CertificateValidator(pin(tmp_path, prod_root, newer), allow_test_roots=False)
    for root in (prod_root, newer):
        info = validator.validate(make_leaf(root, authority_key_id=None).cert, NOW)
        assert info.issuer_certificate == root.cert and info.issuer_key_id == root.key_identifier


def test_arrival_time_in_japan_time_is_the_same_instant(pki, validator):
    expired = pki.resident("ito-kenji").cert
    last_second = expired.not_valid_after_utc.astimezone(JST)
    assert validator.validate(expired, last_second).serial_number == expired.serial_number
    assert code_of(validator, expired, last_second + dt.timedelta(seconds=1)) == "certificate-expired"


def test_validate_is_safe_from_several_threads(pki, tmp_path: Path, prod_root):
    """The policy OIDs travel from the library's callback through a thread-local: never crossed."""
    validator = CertificateValidator(pin(tmp_path, prod_root, *pki.roots), allow_test_roots=True)
    certs = {POLICY_SIGNING_TEST.dotted_string: pki.resident("yamada-taro").cert,
             POLICY_SIGNING_PRODUCTION.dotted_string: make_leaf(prod_root).cert}
    wrong: list[str] = []

    def work() -> None:
        for _ in range(100):
            for policy, cert in certs.items():
                try:
                    if validator.validate(cert, NOW).policy_oids != (policy,):
                        wrong.append(policy)
                except CertificateError as exc:
                    wrong.append(exc.code)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, inside verify() too
    try:
        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert wrong == []


# --------------------------------------------------------------------------- refused: trust


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


def test_a_key_identifier_naming_another_root_is_refused(tmp_path: Path, prod_root):
    """Signed by one generation, AKI of the other: the CRL and 宛名番号 lookups would use the wrong key."""
    newer = make_root(root_name(production_like=True), key=rsa_key(tag="prod-root-newer"))
    validator = CertificateValidator(pin(tmp_path, prod_root, newer), allow_test_roots=False)
    mislabelled = make_leaf(newer, authority_key_id=prod_root.key_identifier).cert
    assert code_of(validator, mislabelled) == "certificate-untrusted"


def test_a_pinned_root_is_not_a_signing_certificate(pki, validator):
    assert code_of(validator, pki.roots[0]) == "certificate-untrusted"


def test_test_roots_need_the_setting(pki, anchors):
    strict = CertificateValidator(anchors, allow_test_roots=False)
    assert code_of(strict, pki.resident("yamada-taro").cert) == "certificate-test-root"


def test_no_anchors_refuses_everything(pki):
    assert code_of(CertificateValidator(TrustAnchors(), allow_test_roots=True),
                   pki.resident("yamada-taro").cert) == "certificate-untrusted"


# --------------------------------------------------------------------------- refused: validity


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


def test_the_root_must_be_valid_at_arrival_too(tmp_path: Path):
    old_root = make_root(root_name(production_like=True), key=rsa_key(tag="old-generation"),
                         not_before=NOW - 3650 * DAY, not_after=NOW - 10 * DAY)
    issued = make_leaf(old_root, not_before=NOW - 400 * DAY, not_after=NOW + 400 * DAY).cert
    validator = CertificateValidator(pin(tmp_path, old_root), allow_test_roots=False)
    assert code_of(validator, issued) == "certificate-expired"
    assert validator.validate(issued, NOW - 20 * DAY).issuer_certificate == old_root.cert


def outcome(validator: CertificateValidator, cert: x509.Certificate, at: dt.datetime) -> str:
    try:
        return f"accepted {validator.validate(cert, at).serial_number}"
    except CertificateError as exc:
        return exc.code


def test_one_verifier_per_arrival_second_judges_as_a_fresh_one(pki, anchors):
    """The validator reuses the library's verifier within an arrival second, which is exact only
    because the library judges validity to the second (it drops the microseconds). Each arrival,
    in an order that reuses and replaces the verifier, is judged as by a validator built for it."""
    shared = CertificateValidator(anchors, allow_test_roots=True)
    expired, valid = pki.resident("ito-kenji").cert, pki.resident("yamada-taro").cert
    after, before = expired.not_valid_after_utc, valid.not_valid_before_utc
    us = dt.timedelta(microseconds=1)
    arrivals = [(expired, after), (expired, after + 999_999 * us), (expired, after + 1_000_000 * us),
                (expired, after + 500_000 * us), (valid, before - us), (valid, before), (valid, before + us),
                (valid, before - 1_000_000 * us), (expired, (after + 100 * us).astimezone(JST))]
    seen = [(outcome(shared, cert, at), outcome(CertificateValidator(anchors, allow_test_roots=True), cert, at))
            for cert, at in arrivals]
    assert [a for a, _ in seen] == [b for _, b in seen]
    assert [a.split()[0] for a, _ in seen] == [
        "accepted", "accepted", "certificate-expired", "accepted",
        "certificate-not-yet-valid", "accepted", "accepted", "certificate-not-yet-valid", "accepted"]


def test_the_record_carries_what_path_validation_read(pki, validator, prod, prod_root):
    """The subjectAltName entries (the basic facts) and the CRL distribution points, as the
    library decoded them for the policy: what identity and revocation read instead of the DER."""
    cert = pki.resident("yamada-taro").cert
    info = validator.validate(cert, NOW)
    extensions = cert.extensions
    assert info.verified_client is not None and info.verified_client.chain[0] is cert
    assert info.verified_client.subjects == list(
        extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    assert info.crl_distribution_points == extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    bare = make_leaf(prod_root).cert  # no subjectAltName, no distribution point
    recorded = prod.validate(bare, NOW)
    assert recorded.verified_client is not None and recorded.verified_client.subjects is None
    assert recorded.crl_distribution_points == x509.CRLDistributionPoints([])  # none, and recorded so


# --------------------------------------------------------------------------- refused: profile


def test_user_authentication_certificate_is_refused(pki, validator):
    assert code_of(validator, pki.resident("watanabe-kumiko").cert) == "certificate-authentication-cert"


def test_policy_must_match_the_root_kind(pki, validator, prod, prod_root):
    assert code_of(validator, leaf(pki, policy=POLICY_SIGNING_PRODUCTION)) == "certificate-policy"
    assert code_of(validator, leaf(pki, policy=x509.ObjectIdentifier("1.2.3.4"))) == "certificate-policy"
    test_policy = leaf(pki, root_cert=prod_root.cert, root_key=prod_root.key, policy=POLICY_SIGNING_TEST)
    assert code_of(prod, test_policy) == "certificate-policy"


def test_the_policy_extension_is_required(prod, prod_root):
    assert code_of(prod, make_leaf(prod_root, policies=None).cert) == "certificate-policy"


def test_the_authentication_policy_under_a_production_root(prod, prod_root):
    assert code_of(prod, make_leaf(prod_root, policies=(POLICY_USER_AUTH,)).cert) == "certificate-authentication-cert"


def test_key_usage_needs_non_repudiation(pki, validator):
    digital_signature_only = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    assert code_of(validator, custom_leaf(pki, key_usage=digital_signature_only)) == "certificate-key-usage"


def test_key_usage_must_be_critical(prod, prod_root):
    assert code_of(prod, make_leaf(prod_root, key_usage_critical=False).cert) == "certificate-key-usage"


def test_key_usage_must_be_present(prod, prod_root):
    assert code_of(prod, make_leaf(prod_root, key_usage=None).cert) == "certificate-key-usage"


def test_a_ca_certificate_cannot_sign_an_application(pki, validator):
    ca_leaf = custom_leaf(pki, basic_constraints=x509.BasicConstraints(ca=True, path_length=None))
    assert code_of(validator, ca_leaf) == "certificate-not-end-entity"
    not_ca = custom_leaf(pki, basic_constraints=x509.BasicConstraints(ca=False, path_length=None))
    assert validator.validate(not_ca, NOW).subject == "CN=leaf"


def test_rsa_below_2048_bits_is_refused(pki, validator):
    assert code_of(validator, leaf(pki, bits=1024)) == "certificate-weak-key"


def test_a_small_rsa_exponent_is_refused(prod, prod_root):
    assert code_of(prod, make_leaf(prod_root, key=rsa_key(2048, exponent=3)).cert) == "certificate-weak-key"


def test_a_non_rsa_key_is_refused(prod, prod_root):
    assert code_of(prod, make_leaf(prod_root, key=ec_key()).cert) == "certificate-weak-key"


def test_a_hash_weaker_than_sha256_is_refused(pki, validator):
    assert code_of(validator, custom_leaf(pki, hash_algorithm=hashes.SHA224())) == "certificate-weak-algorithm"


def test_unknown_critical_extension(pki, validator):
    assert code_of(validator, custom_leaf(pki, extra=[unknown_extension(critical=True)])) == \
        "certificate-critical-extension"
    assert validator.validate(custom_leaf(pki, extra=[unknown_extension(critical=False)]), NOW).subject == "CN=leaf"


@pytest.mark.parametrize("san", [b"\x30\x05\x87\x03\x01\x02\x03",  # an iPAddress of 3 bytes
                                 b"\x30\x03\x01\x01\xff", b"\x30\x06\xa0\x04\x06\x02\x2a\x03"])
def test_an_undecodable_subject_alt_name_is_malformed_not_an_internal_error(pki, validator, san):
    """The library decodes subjectAltName into Python objects: an entry it cannot (an address of
    3 bytes) raised ValueError out of validate(), which became an HTTP 500."""
    bad = (x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, san), False)
    assert code_of(validator, custom_leaf(pki, extra=[bad])) == "certificate-malformed"


def test_a_critical_extension_outside_the_profile_is_refused(prod, prod_root):
    """extendedKeyUsage is known to the library, but nothing here processes it: not when critical."""
    eku = (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), True)
    assert code_of(prod, make_leaf(prod_root, extra=[eku]).cert) == "certificate-critical-extension"


@pytest.mark.parametrize("kind", sorted(_extension_samples()))
def test_critical_extensions_of_the_leaf_follow_the_profile(prod, prod_root, kind: str):
    """Accepted critical: the profile's own extensions; refused with its code: anything else."""
    value = _extension_samples()[kind]
    policies = None if kind == "certificatePolicies" else (POLICY_SIGNING_PRODUCTION,)  # the sample carries it
    issued = make_leaf(prod_root, policies=policies, extra=[(value, True)])
    if value.oid in certpolicy.EE_MAY_BE_CRITICAL:
        assert prod.validate(issued.cert, NOW).serial_number == issued.cert.serial_number
    else:
        assert code_of(prod, issued.cert) == "certificate-critical-extension"


# --------------------------------------------------------------------------- revocation seam


def test_no_revocation_checker_says_not_checked(pki, validator):
    resident = pki.resident("sato-ichiro")  # revoked on the CRL, which this checker does not read
    status = NoRevocationChecker().check(resident.cert, validator.validate(resident.cert, NOW), NOW)
    assert status.state == "not-checked" and status.source == "none"
    assert dataclasses.is_dataclass(status)


@pytest.mark.parametrize("resident", ["yamada-taro", "suzuki-hanako", "yamasaki-jiro"])
def test_validate_given_the_der_records_the_same(pki, validator, resident):
    """verify_package hands over the DER it decoded (spares encoding it again): the same record."""
    cert = pki.resident(resident).cert
    der = cert.public_bytes(serialization.Encoding.DER)
    fresh = x509.load_der_x509_certificate(der)
    assert validator.validate(fresh, NOW, der=der) == validator.validate(cert, NOW)
