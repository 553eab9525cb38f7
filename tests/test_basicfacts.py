"""Reading the four basic facts from the signing certificate's subjectAltName."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway import basicfacts
from gateway.basicfacts import (
    OID_ADDRESS,
    OID_ADDRESS_FLAGS,
    OID_BIRTH,
    OID_NAME,
    OID_NAME_FLAGS,
    OID_SEX,
    BasicFactsError,
    read_basic_facts,
)
from gateway.models import CertificateInfo
from gateway.testpki import _der, _der_children, der_utf8string

_KEY = ec.generate_private_key(ec.SECP256R1())  # the key type does not matter here; EC is fast
GOOD = {OID_NAME: "山田　太郎", OID_NAME_FLAGS: "00000", OID_SEX: "1", OID_BIRTH: "319800415",
        OID_ADDRESS: "東京都千代田区千代田１丁目１番１号", OID_ADDRESS_FLAGS: "0" * 17}


def cert_with(names: list[x509.GeneralName] | None) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
               .public_key(_KEY.public_key()).serial_number(1).not_valid_before(now)
               .not_valid_after(now + dt.timedelta(days=1)))
    if names is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(_KEY, hashes.SHA256())


def facts_cert(values: dict[x509.ObjectIdentifier, str], *extra: x509.GeneralName) -> x509.Certificate:
    return cert_with([x509.OtherName(oid, der_utf8string(v)) for oid, v in values.items()] + list(extra))


def test_every_signing_resident_of_the_test_pki(pki):
    for resident in pki.residents:
        if resident.auth:
            continue
        facts = read_basic_facts(resident.cert)
        assert (facts.name, facts.sex, facts.birth, facts.address) == (
            resident.name, resident.sex, resident.birth, resident.address)
        assert (facts.name_substitutes, facts.address_substitutes) == (resident.name_flags, resident.address_flags)
        assert facts.birth_date.value is not None and facts.birth_date.value.strftime("%Y%m%d") == resident.birth[1:]


def test_substitute_flags_name_the_positions(pki):
    jiro = read_basic_facts(pki.resident("yamasaki-jiro").cert)  # 山﨑: the card holds 崎
    assert jiro.name_substitute_positions == (1,) and jiro.fields_with_substitutes == ("氏名",)
    misaki = read_basic_facts(pki.resident("tanaka-misaki").cert)  # 髙麗橋: the card holds 高
    assert misaki.address[misaki.address_substitute_positions[0]] == "高"
    assert misaki.fields_with_substitutes == ("住所",)
    assert read_basic_facts(pki.resident("yamada-taro").cert).fields_with_substitutes == ()


def test_accepts_the_certificate_info_and_der(pki):
    cert = pki.resident("suzuki-hanako").cert
    der = cert.public_bytes(serialization.Encoding.DER)
    info = CertificateInfo(subject="", issuer="", serial_number=cert.serial_number,
                           not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc, der=der)
    assert read_basic_facts(info) == read_basic_facts(der) == read_basic_facts(cert)
    facts = read_basic_facts(info)
    assert facts.sex_label == "女" and facts.birth_date.era == "平成"


def test_personal_data_never_shows_in_repr(pki):
    facts = read_basic_facts(pki.resident("yamada-taro").cert)
    assert "山田" not in repr(facts) and "千代田" not in repr(facts) and "319800415" not in repr(facts)


def test_authentication_certificate_has_no_facts(pki):
    with pytest.raises(BasicFactsError) as err:
        read_basic_facts(pki.resident("watanabe-kumiko").cert)
    assert err.value.absent


def test_other_san_entries_are_no_facts():
    with pytest.raises(BasicFactsError) as err:
        read_basic_facts(cert_with([x509.DNSName("example.jp"),
                                    x509.OtherName(x509.ObjectIdentifier("1.2.3.4"), der_utf8string("x"))]))
    assert err.value.absent


def test_unknown_entries_beside_the_facts_are_ignored():
    later = x509.OtherName(x509.ObjectIdentifier("1.2.392.200149.8.5.5.7"), der_utf8string("ヤマダ　タロウ"))
    facts = read_basic_facts(facts_cert(GOOD, later, x509.DNSName("example.jp")))
    assert facts.name == "山田　太郎"


def test_flags_are_optional_and_a_long_address_uses_the_long_length_form():
    values = {k: v for k, v in GOOD.items() if k not in (OID_NAME_FLAGS, OID_ADDRESS_FLAGS)}
    values[OID_ADDRESS] = "北海道" + "あ" * 150  # > 127 bytes: long-form DER length
    facts = read_basic_facts(facts_cert(values))
    assert facts.name_substitutes == "" and facts.name_substitute_positions == ()
    assert facts.address == values[OID_ADDRESS]


def test_unknown_birth_date_is_kept_as_written():
    facts = read_basic_facts(facts_cert({**GOOD, OID_BIRTH: "000000000"}))
    assert facts.birth == "000000000" and facts.birth_date.value is None


@pytest.mark.parametrize(("change", "message"), [
    ({OID_SEX: "4"}, "性別"),
    ({OID_SEX: "男"}, "性別"),
    ({OID_BIRTH: "19800415"}, "生年月日"),
    ({OID_BIRTH: "619800415"}, "生年月日"),
    ({OID_BIRTH: "３19800415"}, "生年月日"),
    ({OID_NAME_FLAGS: "0a000"}, "氏名代替文字"),
    ({OID_ADDRESS_FLAGS: "2"}, "住所代替文字"),
    ({OID_NAME: ""}, "氏名"),
])
def test_malformed_facts_are_refused_naming_the_field_not_the_value(change, message):
    with pytest.raises(BasicFactsError) as err:
        read_basic_facts(facts_cert({**GOOD, **change}))
    assert message in str(err.value) and not err.value.absent
    assert all(v not in str(err.value) for v in change.values() if len(v) > 1)


def test_missing_and_repeated_facts():
    with pytest.raises(BasicFactsError, match="住所"):
        read_basic_facts(facts_cert({k: v for k, v in GOOD.items() if k != OID_ADDRESS}))
    with pytest.raises(BasicFactsError, match="複数"):
        read_basic_facts(facts_cert(GOOD, x509.OtherName(OID_NAME, der_utf8string("別人　花子"))))


@pytest.mark.parametrize("value", [
    bytes([0x13, 2]) + b"AB",      # PrintableString, not UTF8String
    bytes([0x0C, 2]) + b"\xff\xfe",  # not UTF-8
])
def test_values_must_be_utf8strings(value):
    names = [x509.OtherName(oid, der_utf8string(v)) for oid, v in GOOD.items() if oid != OID_SEX]
    with pytest.raises(BasicFactsError, match="性別"):
        read_basic_facts(cert_with([*names, x509.OtherName(OID_SEX, value)]))


@pytest.mark.parametrize("value", [
    bytes([0x0C, 5]) + b"AB",           # length beyond the value
    bytes([0x0C, 1]) + b"AB",           # trailing bytes
    bytes([0x0C, 0x81, 0x02]) + b"AB",  # long form below 128: not DER
    bytes([0x0C, 0x80]),                # indefinite length
])
def test_lengths_must_be_exact_der(value):
    # cryptography refuses to build such certificates, so the decoder is checked on its own.
    from gateway.basicfacts import _utf8string

    with pytest.raises(BasicFactsError, match="長さ"):
        _utf8string(value, "性別")
    assert _utf8string(der_utf8string("あ" * 100), "住所") == "あ" * 100


# --------------------------------------------------------------------------- odd certificates
#
# Certificates re-encoded by hand (repeated, undecodable, non-DER entries): read_basic_facts
# gives what cryptography's own reading gives, a refusal and never an exception.

_SAN_OID_TLV = bytes.fromhex("0603551d11")


def cryptography_reading(der: bytes) -> object:
    """The outcome of reading the facts with cryptography alone (what read_basic_facts must give)."""
    try:
        return basicfacts._facts(basicfacts._san_entries(x509.load_der_x509_certificate(der)))
    except BasicFactsError as exc:
        return (str(exc), exc.absent)


def outcome(der: bytes) -> object:
    try:
        return read_basic_facts(der)
    except BasicFactsError as exc:
        return (str(exc), exc.absent)


def with_extensions(cert: x509.Certificate, change) -> bytes:
    """``cert``'s DER with its extension list changed (the signature no longer fits: not checked here)."""
    tbs, algorithm, signature = _der_children(cert.public_bytes(serialization.Encoding.DER))
    fields = _der_children(tbs)
    extensions = _der_children(_der_children(fields[-1])[0])
    fields[-1] = _der(0xA3, _der(0x30, b"".join(change(extensions))))
    return _der(0x30, _der(0x30, b"".join(fields)) + algorithm + signature)


def with_names(change):
    """An extension-list change that rewrites the subjectAltName's GeneralNames (each one encoded)."""
    def rewrite(extensions: list[bytes]) -> list[bytes]:
        out = []
        for extension in extensions:
            oid, value = _der_children(extension)[0], _der_children(extension)[-1]
            if oid == _SAN_OID_TLV:
                names = _der_children(_der_children(value)[0])
                extension = _der(0x30, oid + _der(0x04, _der(0x30, b"".join(change(names)))))
            out.append(extension)
        return out
    return rewrite


def _issuer_alt_name(value: bytes) -> bytes:
    return _der(0x30, _der(0x06, bytes.fromhex("551d12")) + _der(0x04, value))


def _long_length(tlv: bytes) -> bytes:
    """The same TLV with a length in the long form, which DER forbids below 128."""
    return bytes([tlv[0], 0x81, tlv[1]]) + tlv[2:]


def _value(name: bytes, value: bytes) -> bytes:
    """The otherName ``name`` with its [0] EXPLICIT content replaced by ``value``."""
    return _der(0xA0, _der_children(name)[0] + _der(0xA0, value))


def _first_value(names: list[bytes]) -> bytes:
    """The UTF8String of the first otherName (氏名)."""
    return _der_children(_der_children(names[0])[1])[0]


@pytest.mark.parametrize("change", [
    pytest.param(lambda exts: exts, id="unchanged"),
    pytest.param(lambda exts: exts + exts, id="subjectAltName twice"),
    pytest.param(lambda exts: [_issuer_alt_name(_der(0x30, _der(0x82, b"example.jp")))] + exts, id="issuerAltName"),
    pytest.param(with_names(lambda names: names + [_der(0x82, b"example.jp")]), id="dNSName beside"),
    pytest.param(with_names(lambda names: names + [_der(0x82, "例.jp".encode())]), id="bad dNSName beside"),
    pytest.param(with_names(lambda names: names + [_der(0xA0, bytes.fromhex("06032a0304") + _der(0xA0, b"\x0c\x01x"))]),
                 id="other otherName beside"),
    pytest.param(with_names(lambda names: names + [_der(0xA0, bytes.fromhex("06032a8004") + _der(0xA0, b"\x0c\x01x"))]),
                 id="otherName with a bad OID beside"),
    pytest.param(with_names(lambda names: []), id="no names"),
    pytest.param(with_names(lambda names: names + names[:1]), id="氏名 twice"),
    pytest.param(with_names(lambda names: [_long_length(names[0])] + names[1:]), id="otherName length not DER"),
    pytest.param(with_names(lambda names: [_der(0xA0, _der_children(names[0])[0]
                                                + _long_length(_der_children(names[0])[1]))] + names[1:]),
                 id="[0] length not DER"),
    pytest.param(with_names(lambda names: [_value(names[0], _long_length(_first_value(names)))] + names[1:]),
                 id="UTF8String length not DER"),
    pytest.param(with_names(lambda names: [_value(names[0], _der(0x13, b"AB"))] + names[1:]), id="PrintableString"),
    pytest.param(with_names(lambda names: [_value(names[0], _der(0x0C, b"\xff"))] + names[1:]), id="not UTF-8"),
    pytest.param(with_names(lambda names: [_value(names[0], _first_value(names) + b"\x05\x00")] + names[1:]),
                 id="two values in [0]"),
    pytest.param(with_names(lambda names: [_der(0xA0, b"".join(_der_children(names[0])) + b"\x05\x00")] + names[1:]),
                 id="more in the otherName"),
    pytest.param(with_names(lambda names: [_value(names[0], b"\x1f\x81\x01\x00")] + names[1:]), id="long-form tag"),
])
def test_anything_unexpected_is_read_by_cryptography(change):
    der = with_extensions(facts_cert(GOOD), change)
    assert outcome(der) == cryptography_reading(der)


def test_a_certificate_with_the_subject_alt_name_critical_is_read():
    critical = with_extensions(facts_cert(GOOD), lambda exts: [
        _der(0x30, _der_children(e)[0] + bytes.fromhex("0101ff") + _der_children(e)[1]) for e in exts])
    assert outcome(critical) == cryptography_reading(critical) == read_basic_facts(facts_cert(GOOD))


def test_repeated_or_undecodable_extensions_are_refused_not_raised():
    twice = with_extensions(facts_cert(GOOD), lambda exts: exts + exts)
    with pytest.raises(BasicFactsError, match="拡張を解析できません"):  # cryptography raises DuplicateExtension
        read_basic_facts(twice)


def test_an_undecodable_other_extension_is_refused_not_raised():
    """Read from a bare certificate, cryptography decodes every extension: one it cannot decode
    makes the facts unreadable (identity flags that; it never refuses the package)."""
    der = with_extensions(facts_cert(GOOD), lambda exts: [_issuer_alt_name(bytes.fromhex("30030201"))] + exts)
    with pytest.raises(BasicFactsError, match="拡張を解析できません"):
        read_basic_facts(der)


# --------------------------------------------------------------------------- from path validation
#
# verification hands identity the CertificateInfo trust made, with the subjectAltName entries the
# library decoded while validating the path: read_basic_facts reads those, not cryptography's
# decoding of the extensions. These tests hold that reading to the others.


def validated(pki, cert: x509.Certificate) -> CertificateInfo:
    from gateway.trust import CertificateValidator, TrustAnchors

    validator = CertificateValidator(TrustAnchors.load(pki.root_paths), allow_test_roots=True)
    at = min(dt.datetime.now(dt.UTC), cert.not_valid_after_utc)  # an expired resident: before expiry
    return validator.validate(cert, at)


def test_the_facts_path_validation_decoded_are_the_certificate_s(pki, monkeypatch):
    residents = [r for r in pki.residents if not r.auth]
    infos = [validated(pki, r.cert) for r in residents]
    expected = [read_basic_facts(r.cert.public_bytes(serialization.Encoding.DER)) for r in residents]
    monkeypatch.setattr(basicfacts, "_san_entries", lambda cert: pytest.fail("read by cryptography"))
    monkeypatch.setattr(x509, "load_der_x509_certificate", lambda der: pytest.fail("certificate loaded"))
    assert [read_basic_facts(info) for info in infos] == expected


def _signed_leaf(pki, names: list[x509.GeneralName] | None) -> x509.Certificate:
    """A leaf of the test PKI's root that trust accepts, with these subjectAltName entries."""
    from gateway.testpki import POLICY_SIGNING_TEST
    from tests.certfactory import Issued, make_leaf

    extra = [] if names is None else [(x509.SubjectAlternativeName(names), False)]
    return make_leaf(Issued(pki.roots[1], pki.root_keys[1]), policies=(POLICY_SIGNING_TEST,), extra=extra).cert


def _facts_names(values: dict[x509.ObjectIdentifier, str]) -> list[x509.GeneralName]:
    return [x509.OtherName(oid, der_utf8string(v)) for oid, v in values.items()]


@pytest.mark.parametrize("names", [
    pytest.param(_facts_names(GOOD), id="good"),
    pytest.param(None, id="no subjectAltName"),
    pytest.param([x509.DNSName("example.jp")], id="no facts"),
    pytest.param([x509.DNSName("example.jp"), *_facts_names(GOOD),
                  x509.OtherName(x509.ObjectIdentifier("1.2.392.200149.8.5.5.7"), der_utf8string("ヤマダ"))],
                 id="other entries beside"),
    pytest.param([*_facts_names(GOOD), *_facts_names({OID_NAME: "別人　花子"})], id="氏名 twice"),
    pytest.param(_facts_names({k: v for k, v in GOOD.items() if k != OID_ADDRESS}), id="住所 missing"),
    pytest.param(_facts_names({**GOOD, OID_SEX: "4"}), id="bad 性別"),
    pytest.param([*_facts_names({k: v for k, v in GOOD.items() if k != OID_SEX}),
                  x509.OtherName(OID_SEX, bytes([0x13, 1]) + b"1")], id="PrintableString"),
    pytest.param(_facts_names({**GOOD, OID_ADDRESS: "北海道" + "あ" * 150}), id="long address"),
])
def test_path_validation_s_reading_is_cryptography_s(pki, names):
    cert = _signed_leaf(pki, names)
    der = cert.public_bytes(serialization.Encoding.DER)
    info = validated(pki, cert)
    assert info.verified_client is not None
    try:
        from_info: object = read_basic_facts(info)
    except BasicFactsError as exc:
        from_info = (str(exc), exc.absent)
    assert from_info == cryptography_reading(der) == outcome(der)


def test_a_record_trust_did_not_make_is_read_from_its_der(pki):
    """A CertificateInfo without what path validation read (made by hand, as before): the DER."""
    cert = pki.resident("suzuki-hanako").cert
    info = validated(pki, cert)
    bare = CertificateInfo(subject="", issuer="", serial_number=cert.serial_number,
                           not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc, der=info.der)
    assert bare.verified_client is None and read_basic_facts(bare) == read_basic_facts(info)
