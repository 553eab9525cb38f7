"""The test PKI copies jpki-profile.md field by field."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtensionOID, NameOID, SignatureAlgorithmOID

from gateway.testpki import (
    OID_ADDRESS, OID_ADDRESS_FLAGS, OID_BIRTH, OID_NAME, OID_NAME_FLAGS, OID_SEX, POLICY_SIGNING_PRODUCTION,
    POLICY_SIGNING_TEST, POLICY_USER_AUTH, crl_distribution_name, der_utf8string, init_pki, load_pki, make_crl,
    root_ski,
)

NOW = dt.datetime(2026, 11, 28, 1, 0, 0, tzinfo=dt.timezone.utc)
ROOT_DN = ("OU=Japan Agency for Local Authority Information Systems,OU=JPKI for digital signature,"
           "O=JPKI-TEST,C=JP")  # RFC 4514 writes the most specific RDN first
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    started = time.perf_counter()
    made = init_pki(tmp_path_factory.mktemp("pki"), now=NOW)
    TIMINGS["init_pki"] = time.perf_counter() - started
    return made


def _utf8string(der: bytes) -> str:
    assert der[0] == 0x0C, "each basic fact is a UTF8String"
    if der[1] < 0x80:
        return der[2:].decode("utf-8")
    width = der[1] & 0x7F
    return der[2 + width:].decode("utf-8")


def facts(cert: x509.Certificate) -> dict[str, str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {name.type_id.dotted_string: _utf8string(name.value) for name in san.get_values_for_type(x509.OtherName)}


def signing_residents(pki):
    return [r for r in pki.residents if not r.auth]


def test_generation_is_fast(pki):
    assert TIMINGS["init_pki"] < 5


def test_two_roots_share_one_dn_with_different_keys_and_generations(pki):
    old, new = pki.roots
    assert old.subject == new.subject == old.issuer == new.issuer
    assert old.subject.rfc4514_string() == ROOT_DN
    assert root_ski(old) != root_ski(new)
    assert old.public_key().public_numbers() != new.public_key().public_numbers()
    assert old.not_valid_before_utc < new.not_valid_before_utc and old.not_valid_after_utc < new.not_valid_after_utc
    for root in pki.roots:
        root.verify_directly_issued_by(root)
        assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert root.public_key().key_size == 2048
    assert [p.parent.name for p in pki.root_paths] == ["roots", "roots"]
    assert sorted(p.name for p in pki.roots_dir.iterdir()) == ["root-1.pem", "root-2.pem"]


def test_signing_certificates_follow_the_profile(pki):
    for resident in signing_residents(pki):
        cert, root = resident.cert, pki.roots[resident.root_index]
        cert.verify_directly_issued_by(root)
        subject = [(a.oid, a.value) for a in cert.subject]
        assert subject[:3] == [(NameOID.COUNTRY_NAME, "JP"), (NameOID.LOCALITY_NAME, resident.municipality.prefecture),
                               (NameOID.LOCALITY_NAME, resident.municipality.city)]
        assert subject[3][0] == NameOID.COMMON_NAME and subject[3][1].endswith(resident.municipality.code)
        assert resident.name not in cert.subject.rfc4514_string()
        key = cert.public_key()
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048 and key.public_numbers().e == 65537
        assert cert.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert ku.critical and ku.value.digital_signature and ku.value.content_commitment
        assert not (ku.value.key_encipherment or ku.value.key_cert_sign or ku.value.crl_sign)
        with pytest.raises(x509.ExtensionNotFound):
            cert.extensions.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE)
        policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
        assert [p.policy_identifier for p in policies] == [POLICY_SIGNING_TEST]
        ian = cert.extensions.get_extension_for_class(x509.IssuerAlternativeName).value
        assert ian.get_values_for_type(x509.DirectoryName)[0].rfc4514_string() == "O=公的個人認証サービス,C=JP"
        dp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value[0]
        assert dp.full_name == [x509.DirectoryName(crl_distribution_name(resident.municipality))]
        assert dp.full_name[0].value.rfc4514_string() == (
            f"CN={resident.municipality.city},OU={resident.municipality.prefecture},OU=CRL Distribution Points,"
            "OU=JPKI for digital signature,O=JPKI,C=JP")
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        assert aki.key_identifier == root_ski(root)


def test_basic_facts_are_utf8_othernames(pki):
    for resident in signing_residents(pki):
        found = facts(resident.cert)
        assert list(found) == [o.dotted_string for o in
                               (OID_NAME, OID_NAME_FLAGS, OID_SEX, OID_BIRTH, OID_ADDRESS, OID_ADDRESS_FLAGS)]
        assert found[OID_NAME.dotted_string] == resident.name and "　" in resident.name
        assert len(found[OID_NAME_FLAGS.dotted_string]) == len(resident.name)
        assert len(found[OID_ADDRESS_FLAGS.dotted_string]) == len(resident.address)
        assert found[OID_SEX.dotted_string] in {"1", "2", "3"}
        municipality = resident.municipality
        assert found[OID_ADDRESS.dotted_string].startswith(municipality.prefecture + municipality.city)
        assert found[OID_BIRTH.dotted_string] == resident.birth and len(resident.birth) == 9
    eras = {r.birth[0] for r in signing_residents(pki)}
    assert {"3", "4"} <= eras  # 昭和 and 平成
    assert any("1" in r.name_flags for r in pki.residents)
    assert pki.resident("yamasaki-jiro").name_flags == "01000"
    assert "1" in pki.resident("tanaka-misaki").address_flags
    assert any(ch in pki.resident("yamada-taro").address for ch in "１２３４５６７８９")


def test_der_utf8string_long_form():
    value = "東京都" * 30  # 270 bytes: long-form length
    der = der_utf8string(value)
    assert der[:4] == bytes([0x0C, 0x82, 0x01, 0x0E]) and _utf8string(der) == value


def test_residents_spread_over_roots_and_municipalities(pki):
    signing = [r for r in pki.residents if not (r.auth or r.revoked or r.expired)]
    assert len(signing) >= 4
    assert {r.root_index for r in signing} == {0, 1}
    for municipality in pki.municipalities:
        assert sum(r.municipality == municipality for r in signing) >= 2
    assert {m.code for m in pki.municipalities} == {"131016", "271004"}


def test_user_authentication_certificate(pki):
    auth = [r for r in pki.residents if r.auth]
    assert len(auth) == 1
    cert = auth[0].cert
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier for p in policies] == [POLICY_USER_AUTH]
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.content_commitment
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert not cert.subject.get_attributes_for_oid(NameOID.LOCALITY_NAME)


def test_expired_resident(pki):
    expired = [r for r in pki.residents if r.expired]
    assert len(expired) == 1 and expired[0].cert.not_valid_after_utc < NOW
    assert all(r.cert.not_valid_after_utc > NOW for r in pki.residents if not r.expired)
    assert all(r.cert.not_valid_before_utc <= NOW for r in pki.residents)


def test_crl_per_partition_lists_the_revoked_resident(pki):
    revoked = [r for r in pki.residents if r.revoked]
    assert len(revoked) == 1
    target = revoked[0]
    assert len(pki.crl_paths) == len(pki.roots) * len(pki.municipalities)
    for ri, root in enumerate(pki.roots):
        for municipality in pki.municipalities:
            path = pki.crl_path(ri, municipality.code)
            assert path in pki.crl_paths and path.parent.name == root_ski(root).hex()
            crl = x509.load_der_x509_crl(path.read_bytes())
            assert crl.is_signature_valid(root.public_key())
            assert crl.issuer == root.subject
            assert crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == \
                root_ski(root)
            assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1
            assert crl.last_update_utc == NOW and crl.next_update_utc == NOW + dt.timedelta(days=2)
            idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
            assert idp.critical and idp.value.full_name == [x509.DirectoryName(crl_distribution_name(municipality))]
            listed = crl.get_revoked_certificate_by_serial_number(target.cert.serial_number) is not None
            assert listed == (ri == target.root_index and municipality == target.municipality)


def test_make_crl_for_stale_data(pki):
    der = make_crl(pki.roots[0], pki.root_keys[0], pki.municipalities[0], this_update=NOW - dt.timedelta(days=5),
                   next_update=NOW - dt.timedelta(days=3), number=7)
    crl = x509.load_der_x509_crl(der)
    assert crl.next_update_utc < NOW and crl.is_signature_valid(pki.roots[0].public_key())
    assert not crl.is_signature_valid(pki.roots[1].public_key())


def test_keys_are_unencrypted_pkcs8_and_match(pki):
    for resident in pki.residents:
        assert resident.key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
        signature = resident.key.sign(b"x", padding.PKCS1v15(), hashes.SHA256())
        resident.cert.public_key().verify(signature, b"x", padding.PKCS1v15(), hashes.SHA256())


def test_load_pki_round_trip(pki):
    again = load_pki(pki.directory)
    assert again.roots == pki.roots and again.root_paths == pki.root_paths and again.crl_paths == pki.crl_paths
    assert [r.id for r in again.residents] == [r.id for r in pki.residents]
    for before, after in zip(pki.residents, again.residents):
        assert after.cert == before.cert and after.applicant == before.applicant
        assert after.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()) == \
            before.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    with pytest.raises(KeyError):
        again.resident("nobody")


def test_applicant_view(pki):
    applicant = pki.resident("yamada-taro").applicant
    assert applicant.name == "山田　太郎" and applicant.name_kana == "ヤマダ　タロウ"
    assert applicant.address.startswith("東京都千代田区") and len(applicant.postal_code) == 7


def test_production_like_profile(tmp_path):
    prod = init_pki(tmp_path, municipalities=[("011002", "北海道", "札幌市")], production_like=True)
    assert prod.roots[0].subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "JPKI"
    resident = next(r for r in prod.residents if not r.auth)
    policies = resident.cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier for p in policies] == [POLICY_SIGNING_PRODUCTION]
    assert {r.municipality.code for r in prod.residents} == {"011002"}
    assert len(prod.crl_paths) == 2
