"""The detached XMLDSig: real signatures, tampering, wrapping, references, algorithms, KeyInfo.

Packages come from gateway.packaging (and, marked ``interop``, from xmlsec1 and the JDK); the
attacks edit the signed kousei.xml, sometimes re-signing it with the resident's own key to
show that a *validly signed* malicious structure is refused too.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from urllib.parse import unquote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree
from signxml import InvalidInput, SignatureConfiguration, XMLVerifier
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod

from gateway.archive import read_package
from gateway.c14n import self_contained
from gateway.errors import GatewayError
from gateway.models import Limits
from gateway.packaging import make_signed_package
from gateway.signature import (
    DIGEST_METHODS,
    IdIndex,
    SIGNATURE_METHODS,
    DetachedVerifier,
    SignatureResult,
    inspect_signature,
    verify_signature,
)
from gateway.testpki import root_name
from gateway.trust import CertificateValidator, TrustAnchors
from gateway.xmlsafe import hardened_parser, parse_xml

DS = "http://www.w3.org/2000/09/xmldsig#"
XML_NS = "http://www.w3.org/XML/1998/namespace"
NOW = dt.datetime.now(dt.timezone.utc)
JST = dt.timezone(dt.timedelta(hours=9))
FORM = ('<?xml version="1.0" encoding="UTF-8"?>\n<申請書 xmlns="urn:example:childcare-01">'
        + "<児童><氏名>山田　一郎</氏名><生年月日>2020-04-01</生年月日></児童>" * 60 + "</申請書>\n").encode()
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 4
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
ATTACHMENTS = {"hoken.pdf": ("健康保険の資格を確認できる書類", "application/pdf", PDF),
               "住民票.png": ("住民票の写し", "image/png", PNG)}
PERCENT = "#%E6%A7%8B%E6%88%90%E6%83%85%E5%A0%B1"


def ds(tag: str) -> str:
    return f"{{{DS}}}{tag}"


@pytest.fixture(scope="module")
def validator(pki) -> CertificateValidator:
    return CertificateValidator(TrustAnchors.load(pki.root_paths), allow_test_roots=True)


@pytest.fixture(scope="module")
def packages(pki) -> dict[tuple[str, str], tuple[bytes, dict[str, bytes]]]:
    """(c14n, uri_style) -> (kousei.xml, other members), signed by yamada-taro."""
    out = {}
    for c14n in ("inclusive", "exclusive"):
        for uri_style in ("raw", "percent"):
            data = make_signed_package(FORM, form_filename="childcare-01.xml", procedure_code="childcare-01",
                                       municipality_code="131016", arrival_number="202611280000012345",
                                       signer=pki.resident("yamada-taro"), attachments=ATTACHMENTS,
                                       applied_at=dt.datetime(2026, 11, 28, 10, 15, tzinfo=JST),
                                       c14n=c14n, uri_style=uri_style)
            out[(c14n, uri_style)] = split(data)
    return out


def split(package: bytes) -> tuple[bytes, dict[str, bytes]]:
    members = dict(read_package(package, Limits()).members)
    return members.pop("kousei.xml"), members


def check(validator: CertificateValidator, kousei: bytes, members: Mapping[str, bytes]) -> SignatureResult:
    candidate = inspect_signature(parse_xml(kousei, what="kousei.xml"), members)
    validator.validate(candidate.certificate, NOW)
    return verify_signature(candidate, certificate=candidate.certificate, at=NOW)


def code(validator: CertificateValidator, kousei: bytes, members: Mapping[str, bytes]) -> str:
    with pytest.raises(GatewayError) as info:
        check(validator, kousei, members)
    assert 400 <= info.value.status < 500
    return info.value.code


def edit(kousei: bytes, change: Callable[[etree._Element], object]) -> bytes:
    root = etree.fromstring(kousei)
    change(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(root, encoding="UTF-8")


def resign(kousei: bytes, key, members: Mapping[str, bytes]) -> bytes:
    """Recompute every digest and the SignatureValue (exclusive C14N packages only)."""
    root = etree.fromstring(kousei)
    signature = next(root.iter(ds("Signature")))
    signed_info = signature.find(ds("SignedInfo"))
    for reference in signed_info.iter(ds("Reference")):
        uri = reference.get("URI") or ""
        if uri.startswith("#"):
            found = root.xpath("//*[@ID=$v]", v=unquote(uri[1:]))
            data = etree.tostring(found[0], method="c14n", exclusive=True) if found else b""
        else:
            data = members.get(uri, b"")
        reference.find(ds("DigestValue")).text = base64.b64encode(hashlib.sha256(data).digest()).decode()
    signed = etree.tostring(signed_info, method="c14n", exclusive=True)
    signature.find(ds("SignatureValue")).text = base64.b64encode(
        key.sign(signed, padding.PKCS1v15(), hashes.SHA256())).decode()
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(root, encoding="UTF-8")


def sig(root: etree._Element) -> etree._Element:
    return next(root.iter(ds("Signature")))


def manifest_ref(root: etree._Element) -> etree._Element:
    return sig(root).find(ds("SignedInfo"))[2]


# --------------------------------------------------------------------------- accepted


@pytest.mark.parametrize("c14n", ["inclusive", "exclusive"])
@pytest.mark.parametrize("uri_style", ["raw", "percent"])
def test_real_signatures_verify(validator, packages, c14n, uri_style):
    kousei, members = packages[(c14n, uri_style)]
    result = check(validator, kousei, members)
    assert result.signed_manifest.tag == "構成情報"
    assert result.signed_manifest.getparent() is None  # re-parsed from the canonical bytes, not the document
    assert result.signed_manifest.findtext("管理情報/到達番号") == "202611280000012345"
    assert result.manifest_reference.uri == ("#構成情報" if uri_style == "raw" else PERCENT)
    assert result.c14n_method.endswith("xml-exc-c14n#" if c14n == "exclusive" else "REC-xml-c14n-20010315")
    assert list(result.member_references) == list(members)
    for name, data in members.items():
        assert result.member_references[name].digest_value == base64.b64encode(hashlib.sha256(data).digest()).decode()
        assert result.member_references[name].transform is None
    evidence = result.evidence()
    assert evidence["signature_method"].endswith("rsa-sha256") and set(evidence["members"]) == set(members)


def _namespace_on_data_root(kousei: bytes) -> bytes:
    """An unused namespace declared on DataRoot: still signed (exclusive C14N renders nothing of
    it), but 構成情報 now has a namespace in scope, so it is canonicalized from a copy."""
    return kousei.replace(b"<DataRoot>", b'<DataRoot xmlns:x="urn:x">', 1)


@pytest.mark.parametrize("override, variant, expected", [
    # (a) ASCII copy of Japanese element names (signxml copies 構成情報 when it is not self-contained)
    ("_tostring", ("exclusive", "raw"), "xml-malformed"),
    ("_c14n", ("inclusive", "raw"), "signature-invalid"),        # (b) xmlns="" in inclusive C14N of SignedInfo
    ("_resolve_reference", ("exclusive", "percent"), "signature-reference-missing"),  # (c) percent-encoded URI
])
def test_each_signxml_fix_is_needed(validator, packages, monkeypatch, override, variant, expected):
    kousei, members = packages[variant]
    if override == "_tostring":
        kousei = _namespace_on_data_root(kousei)
    check(validator, kousei, members)
    monkeypatch.setattr(DetachedVerifier, override, getattr(XMLVerifier, override))
    assert code(validator, kousei, members) == expected


@pytest.mark.parametrize("c14n", ["inclusive", "exclusive"])
def test_each_co_signature_is_verified_in_place(validator, pki, monkeypatch, c14n):
    """Fix (d): signxml verifies the first ds:Signature at the location; each co-signature is
    verified itself (with the applicant's signature, the co-signer's key would not verify)."""
    co_signers = [pki.resident("suzuki-hanako"), pki.resident("yamasaki-jiro")]
    data = make_signed_package(FORM, form_filename="childcare-01.xml", procedure_code="childcare-01",
                               municipality_code="131016", arrival_number="202611280000012345",
                               signer=pki.resident("yamada-taro"), attachments=ATTACHMENTS,
                               applied_at=dt.datetime(2026, 11, 28, 10, 15, tzinfo=JST), c14n=c14n,
                               co_signers=co_signers)
    kousei, members = split(data)
    applicant = inspect_signature(parse_xml(kousei, what="kousei.xml"), members, max_signatures=3)
    assert [c.index for c in (applicant, *applicant.co_signatures)] == [0, 1, 2]
    assert [c.certificate for c in applicant.co_signatures] == [r.cert for r in co_signers]
    for candidate in (applicant, *applicant.co_signatures):
        validator.validate(candidate.certificate, NOW)
        result = verify_signature(candidate, certificate=candidate.certificate, at=NOW)
        assert result.signature_id == candidate.signature_id
        assert result.signed_manifest.findtext("管理情報/手続ID") == "childcare-01"
    with pytest.raises(GatewayError) as info:  # an index beyond the signatures: no such signature
        verify_signature(dataclasses.replace(applicant, index=3), certificate=applicant.certificate, at=NOW)
    assert info.value.code == "signature-structure"
    monkeypatch.setattr(DetachedVerifier, "_get_signature", XMLVerifier._get_signature)
    co = applicant.co_signatures[0]
    with pytest.raises(GatewayError) as info:
        verify_signature(co, certificate=co.certificate, at=NOW)
    assert info.value.code == "signature-invalid"


def test_exclusive_c14n_needs_no_c14n_fix(validator, packages, monkeypatch):
    monkeypatch.setattr(DetachedVerifier, "_c14n", XMLVerifier._c14n)
    check(validator, *packages[("exclusive", "raw")])


def test_comment_truncation_cannot_shorten_signed_text(validator, packages):
    """A comment inside a signed value keeps the signature valid; the signed text stays whole."""
    kousei, members = packages[("inclusive", "raw")]
    probed = kousei.replace("<氏名>山田　太郎</氏名>".encode(), "<氏名>山田<!---->　太郎</氏名>".encode())
    assert probed != kousei
    assert check(validator, probed, members).signed_manifest.findtext("管理情報/申請者情報/氏名") == "山田　太郎"


# --------------------------------------------------------------------------- tampering


def test_tampered_members_and_manifest(validator, packages):
    kousei, members = packages[("inclusive", "raw")]
    for name in members:
        changed = {**members, name: members[name][:-1] + bytes([members[name][-1] ^ 1])}
        assert code(validator, kousei, changed) == "signature-digest-mismatch", name
    renamed = kousei.replace("<氏名>山田　太郎</氏名>".encode(), "<氏名>山田　次郎</氏名>".encode())
    assert code(validator, renamed, members) == "signature-digest-mismatch"


def test_tampered_signature_value_and_signed_info(validator, packages, pki):
    kousei, members = packages[("exclusive", "raw")]

    def flip(root):
        value = sig(root).find(ds("SignatureValue"))
        raw = bytearray(base64.b64decode(value.text))
        raw[10] ^= 0x01
        value.text = base64.b64encode(bytes(raw)).decode()

    assert code(validator, edit(kousei, flip), members) == "signature-invalid"

    def digest(root):
        manifest_ref(root).find(ds("DigestValue")).text = base64.b64encode(b"\0" * 32).decode()

    assert code(validator, edit(kousei, digest), members) == "signature-invalid"

    other = base64.b64encode(pki.resident("suzuki-hanako").cert.public_bytes(serialization.Encoding.DER)).decode()

    def swap_certificate(root):
        sig(root).find(f"{ds('KeyInfo')}/{ds('X509Data')}/{ds('X509Certificate')}").text = other

    assert code(validator, edit(kousei, swap_certificate), members) == "signature-invalid"


# --------------------------------------------------------------------------- wrapping (XSW)


def _clone_manifest(root: etree._Element) -> etree._Element:
    return copy.deepcopy(root.find("構成情報"))


def _xsw3(root):  # an edited copy of the signed element before the original
    evil = _clone_manifest(root)
    evil.attrib.pop("ID")
    evil.find("管理情報/申請者情報/氏名").text = "悪意　太郎"
    root.insert(list(root).index(root.find("構成情報")), evil)


def _xsw5(root):  # the original edited in place with its ID renamed; the pristine clone elsewhere
    pristine = _clone_manifest(root)
    original = root.find("構成情報")
    original.set("ID", "x")
    original.find("管理情報/申請者情報/氏名").text = "悪意　太郎"
    root.find("署名情報").append(pristine)


def _xsw8(root):  # the pristine clone in a ds:Object inside the signature
    obj = etree.SubElement(sig(root), ds("Object"))
    obj.append(_clone_manifest(root))
    root.find("構成情報").find("管理情報/申請者情報/氏名").text = "悪意　太郎"


@pytest.mark.parametrize("attack, expected", [
    (_xsw3, "signature-wrapping"),
    (_xsw5, "signature-wrapping"),
    (_xsw8, "signature-wrapping"),
    (lambda r: r.find("様式ID").set("Id", "構成情報"), "signature-wrapping"),
    (lambda r: r.find("様式ID").set(f"{{{XML_NS}}}id", "構成情報"), "signature-wrapping"),
    (lambda r: r.find("様式ID").set("{urn:evil}ID", "構成情報"), "signature-wrapping"),
    (lambda r: r.find("様式ID").set("ID", "other"), "signature-wrapping"),
    (lambda r: r.find("構成情報").attrib.pop("ID"), "signature-wrapping"),
    (lambda r: r.append(sig(r)), "signature-wrapping"),  # Signature moved out of 署名情報
    (lambda r: r.find("構成情報").append(sig(r)), "signature-wrapping"),
    (lambda r: r.insert(0, r.find("署名情報")), "signature-wrapping"),  # 署名情報 before 構成情報
    (lambda r: r.append(copy.deepcopy(r.find("署名情報"))), "signature-multiple"),
    (lambda r: r.find("署名情報").insert(0, copy.deepcopy(sig(r))), "signature-multiple"),
    (lambda r: r.find("署名情報").remove(sig(r)), "signature-missing"),
])
def test_wrapping_attacks(validator, packages, attack, expected):
    kousei, members = packages[("exclusive", "raw")]
    assert code(validator, edit(kousei, attack), members) == expected


def test_validly_resigned_object_is_still_refused(validator, packages, pki):
    kousei, members = packages[("exclusive", "raw")]
    evil = resign(edit(kousei, lambda r: etree.SubElement(sig(r), ds("Object")).append(etree.Element("x"))),
                  pki.resident("yamada-taro").key, members)
    assert code(validator, evil, members) == "signature-structure"


@pytest.mark.parametrize("attack", [
    lambda r: etree.SubElement(etree.SubElement(sig(r), ds("Object")), ds("Manifest")),
    lambda r: sig(r).find(ds("SignatureValue")).append(etree.Comment("x")),
    lambda r: sig(r).insert(1, copy.deepcopy(sig(r).find(ds("SignedInfo")))),  # two SignedInfo
    lambda r: r.find("署名情報").append(etree.Element("メモ")),
    lambda r: r.set(f"{{{XML_NS}}}lang", "ja"),
    lambda r: sig(r).find(ds("SignedInfo")).insert(0, etree.Element(ds("Reference"), URI="childcare-01.xml")),
])
def test_structure_attacks(validator, packages, attack):
    kousei, members = packages[("exclusive", "raw")]
    assert code(validator, edit(kousei, attack), members) == "signature-structure"


# --------------------------------------------------------------------------- references


def _add_reference(uri: str | None) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        reference = copy.deepcopy(sig(root).find(ds("SignedInfo"))[-1])
        reference.attrib.pop("URI")
        if uri is not None:
            reference.set("URI", uri)
        sig(root).find(ds("SignedInfo")).append(reference)
    return change


@pytest.mark.parametrize("uri", ["http://attacker.invalid/x", "file:///etc/passwd", "#xpointer(/)", "", None,
                                 "#other", "kousei.xml", "unknown.pdf", "hoken.pdf", PERCENT, "#%FF"])
def test_unexpected_references(validator, packages, pki, uri):  # cases 17-20
    kousei, members = packages[("exclusive", "raw")]
    evil = resign(edit(kousei, _add_reference(uri)), pki.resident("yamada-taro").key, members)
    assert code(validator, evil, members) == "signature-reference-unexpected"


def test_missing_references(validator, packages):
    kousei, members = packages[("exclusive", "raw")]
    assert code(validator, kousei, {**members, "extra.pdf": PDF}) == "signature-reference-missing"
    without_member = edit(kousei, lambda r: sig(r).find(ds("SignedInfo")).remove(sig(r).find(ds("SignedInfo"))[-1]))
    assert code(validator, without_member, members) == "signature-reference-missing"
    without_manifest = edit(kousei, lambda r: sig(r).find(ds("SignedInfo")).remove(manifest_ref(r)))
    assert code(validator, without_manifest, members) == "signature-reference-missing"


# --------------------------------------------------------------------------- algorithms


def _set(path: str, algorithm: str, index: int = 0) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        root.xpath(path, namespaces={"ds": DS})[index].set("Algorithm", algorithm)
    return change


SI = "//ds:SignedInfo"
MANIFEST_TRANSFORM = "//ds:Reference[1]/ds:Transforms/ds:Transform"


@pytest.mark.parametrize("change, expected", [
    (_set(f"{SI}/ds:SignatureMethod", "http://www.w3.org/2000/09/xmldsig#rsa-sha1"), "algorithm-forbidden"),
    (_set(f"{SI}/ds:SignatureMethod", "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"), "algorithm-forbidden"),
    (_set(f"{SI}/ds:SignatureMethod", "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"), "algorithm-forbidden"),
    (_set("//ds:DigestMethod", "http://www.w3.org/2000/09/xmldsig#sha1", 1), "algorithm-forbidden"),
    (_set("//ds:DigestMethod", "http://www.w3.org/2001/04/xmldsig-more#md5"), "algorithm-forbidden"),
    (_set(f"{SI}/ds:CanonicalizationMethod", "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"),
     "algorithm-forbidden"),
    (_set(f"{SI}/ds:CanonicalizationMethod", "http://www.w3.org/2006/12/xml-c14n11"), "algorithm-forbidden"),
    (lambda r: etree.SubElement(sig(r).find(f"{ds('SignedInfo')}/{ds('SignatureMethod')}"),
                                ds("HMACOutputLength")).__setattr__("text", "8"), "algorithm-forbidden"),
    (_set(MANIFEST_TRANSFORM, "http://www.w3.org/TR/1999/REC-xslt-19991116"), "algorithm-transform-forbidden"),
    (_set(MANIFEST_TRANSFORM, "http://www.w3.org/TR/1999/REC-xpath-19991116"), "algorithm-transform-forbidden"),
    (_set(MANIFEST_TRANSFORM, "http://www.w3.org/2000/09/xmldsig#enveloped-signature"),
     "algorithm-transform-forbidden"),
    (_set(MANIFEST_TRANSFORM, "http://www.w3.org/2000/09/xmldsig#base64"), "algorithm-transform-forbidden"),
    (_set(MANIFEST_TRANSFORM, "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments"),
     "algorithm-transform-forbidden"),
    (lambda r: manifest_ref(r).find(ds("Transforms")).append(copy.deepcopy(manifest_ref(r).find(
        f"{ds('Transforms')}/{ds('Transform')}"))), "algorithm-transform-forbidden"),
    (lambda r: sig(r).find(ds("SignedInfo"))[3].insert(0, copy.deepcopy(manifest_ref(r).find(ds("Transforms")))),
     "algorithm-transform-forbidden"),  # a transform on a member reference
])
def test_forbidden_algorithms_and_transforms(validator, packages, change, expected):  # cases 21, 28-30
    kousei, members = packages[("exclusive", "raw")]
    assert code(validator, edit(kousei, change), members) == expected


# --------------------------------------------------------------------------- KeyInfo


def _key_info(root: etree._Element) -> etree._Element:
    return sig(root).find(ds("KeyInfo"))


def _x509_data(root: etree._Element) -> etree._Element:
    return _key_info(root).find(ds("X509Data"))


@pytest.mark.parametrize("change, expected", [
    (lambda r: etree.SubElement(_key_info(r), ds("KeyValue")), "signature-keyinfo-forbidden"),  # case 31
    (lambda r: etree.SubElement(_key_info(r), ds("RetrievalMethod"), URI="http://attacker.invalid/k"),
     "signature-keyinfo-forbidden"),
    (lambda r: etree.SubElement(_x509_data(r), ds("X509Unknown")), "signature-keyinfo-forbidden"),
    (lambda r: _issuer_serial(r, "12345"), "signature-keyinfo-forbidden"),  # not the certificate's
    (lambda r: _key_info(r).remove(_x509_data(r)), "signature-keyinfo-forbidden"),  # case 32
    (lambda r: _x509_data(r).append(copy.deepcopy(_x509_data(r)[0])), "certificate-multiple"),  # case 55
    (lambda r: _x509_data(r).remove(_x509_data(r)[0]), "certificate-missing"),
    (lambda r: setattr(_x509_data(r)[0], "text", "bm90IGEgY2VydGlmaWNhdGU="), "certificate-malformed"),
    (lambda r: setattr(_x509_data(r)[0], "text", "***"), "certificate-malformed"),
])
def test_key_info_rules(validator, packages, change, expected):
    kousei, members = packages[("exclusive", "raw")]
    assert code(validator, edit(kousei, change), members) == expected


def _issuer_serial(root: etree._Element, serial: str | None = None) -> None:
    """Add X509IssuerSerial as the JDK and .NET write it (descriptive, next to the certificate)."""
    cert = x509.load_der_x509_certificate(base64.b64decode(_x509_data(root)[0].text))
    block = etree.SubElement(_x509_data(root), ds("X509IssuerSerial"))
    etree.SubElement(block, ds("X509IssuerName")).text = cert.issuer.rfc4514_string()
    etree.SubElement(block, ds("X509SerialNumber")).text = serial or str(cert.serial_number)


@pytest.mark.parametrize("change", [
    lambda r: _key_info(r).insert(0, _text(etree.Element(ds("KeyName")), "yamada")),
    _issuer_serial,
])
def test_descriptive_key_info_from_other_signers_is_accepted(validator, packages, change):
    kousei, members = packages[("exclusive", "raw")]
    check(validator, edit(kousei, change), members)  # verifies: no exception


def _text(elem: etree._Element, text: str) -> etree._Element:
    elem.text = text
    return elem


def test_untrusted_signer_is_refused_before_any_signature_math(validator, packages):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (x509.CertificateBuilder().subject_name(root_name()).issuer_name(root_name())
            .public_key(key.public_key()).serial_number(1).not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    kousei, members = packages[("exclusive", "raw")]
    der = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    evil = resign(edit(kousei, lambda r: setattr(_x509_data(r)[0], "text", der)), key, members)
    assert code(validator, evil, members) == "certificate-untrusted"


def test_member_reference_saving_keeps_signxml_checks(validator, packages, pki):
    """The member fast path refuses a transform even if structure checks were bypassed."""
    kousei, members = packages[("exclusive", "raw")]
    candidate = inspect_signature(parse_xml(kousei, what="kousei.xml"), members)

    def member_transform(root):
        member_ref = sig(root).find(ds("SignedInfo"))[3]
        member_ref.insert(0, copy.deepcopy(manifest_ref(root).find(ds("Transforms"))))

    evil = resign(edit(kousei, member_transform), pki.resident("yamada-taro").key, members)
    bypassed = dataclasses.replace(candidate, document=parse_xml(evil, what="kousei.xml"))
    with pytest.raises(GatewayError) as info:
        verify_signature(bypassed, certificate=candidate.certificate, at=NOW)
    assert info.value.code == "signature-structure"


@pytest.mark.parametrize("c14n", ["inclusive", "exclusive"])
def test_same_document_saving_reads_the_document_without_touching_it(validator, packages, c14n):
    """The manifest reference is resolved in the checked tree itself, which stays as it was."""
    kousei, members = packages[(c14n, "raw")]
    candidate = inspect_signature(parse_xml(kousei, what="kousei.xml"), members)
    before = etree.tostring(candidate.document, encoding="UTF-8")
    result = verify_signature(candidate, certificate=candidate.certificate, at=NOW)
    assert etree.tostring(candidate.document, encoding="UTF-8") == before
    signed = etree.tostring(result.signed_manifest, method="c14n", exclusive=(c14n == "exclusive"))
    assert base64.b64encode(hashlib.sha256(signed).digest()).decode() == result.manifest_reference.digest_value
    assert result.signed_manifest is not candidate.document.find("構成情報")


def test_enveloped_transform_keeps_signxmls_whole_document_copy(packages, pki):
    """Structure checks bypassed: a non-C14N transform takes signxml's own path (it edits a copy)."""
    kousei, members = packages[("exclusive", "raw")]

    def enveloped(root):
        transforms = manifest_ref(root).find(ds("Transforms"))
        transforms.insert(0, etree.Element(ds("Transform"), Algorithm=f"{DS}enveloped-signature"))

    evil = resign(edit(kousei, enveloped), pki.resident("yamada-taro").key, members)
    document = parse_xml(evil, what="kousei.xml")
    candidate = inspect_signature(parse_xml(kousei, what="kousei.xml"), members)
    result = verify_signature(dataclasses.replace(candidate, document=document),
                              certificate=candidate.certificate, at=NOW)
    assert result.manifest_reference.transform == f"{DS}enveloped-signature"
    assert next(document.iter(ds("Signature")), None) is not None  # removed from signxml's copy only


def test_empty_manifest_digest_is_a_mismatch_not_a_crash(validator, packages, pki):
    """A validly signed SignedInfo with an empty DigestValue (schema-valid base64) is refused cleanly."""
    kousei, members = packages[("exclusive", "raw")]
    root = etree.fromstring(resign(kousei, pki.resident("yamada-taro").key, members))
    manifest_ref(root).find(ds("DigestValue")).text = None
    signed_info = sig(root).find(ds("SignedInfo"))
    signature = pki.resident("yamada-taro").key.sign(etree.tostring(signed_info, method="c14n", exclusive=True),
                                                     padding.PKCS1v15(), hashes.SHA256())
    sig(root).find(ds("SignatureValue")).text = base64.b64encode(signature).decode()
    evil = etree.tostring(root, encoding="UTF-8", xml_declaration=True)
    assert code(validator, evil, members) == "signature-digest-mismatch"


_TRANSFORM_DOCUMENT = """<DataRoot><構成情報 ID="構成情報"><a xmlns:p="urn:p" xml:lang="ja"><!-- c --><p:b>x</p:b>
</a><c xmlns="urn:c"><d/></c></構成情報><n xmlns="urn:n" xmlns:p="urn:p"><m ID="m"><p:k/><k/></m></n>
<o xml:lang="en"><q ID="q"/></o></DataRoot>""".encode()


@pytest.mark.parametrize("algorithm", [m.value for m in CanonicalizationMethod])
@pytest.mark.parametrize("prefixes", [None, "#default p"])
def test_transform_saving_matches_signxmls(algorithm, prefixes):
    """One C14N transform of the referenced element gives signxml's bytes, copy or not:
    in place for 構成情報 (nothing in scope), signxml's copy for the others."""
    document = etree.fromstring(_TRANSFORM_DOCUMENT)
    transforms = etree.Element(ds("Transforms"))
    transform = etree.SubElement(transforms, ds("Transform"), Algorithm=algorithm)
    if prefixes:
        etree.SubElement(transform, "{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces",
                         PrefixList=prefixes)
    verifier, before = DetachedVerifier({}), etree.tostring(document)
    payloads = [document.find("構成情報"), document.find("構成情報/a"), document.find(".//{urn:n}m"),
                document.find("o/q"), document]
    assert [self_contained(p) for p in payloads] == [True, False, False, False, False]
    for payload in payloads:
        ours = verifier._apply_transforms(payload, transforms_node=transforms, signature=None)
        theirs = XMLVerifier._apply_transforms(verifier, payload, transforms_node=transforms, signature=None)
        assert ours == theirs
    assert etree.tostring(document) == before  # read, never edited


_ID_DOCUMENT = """<r xmlns:e="urn:e" xmlns:o="urn:o"><a ID="x"/><b e:ID="y"/><c ID="y"/><d Id="x"/><f xml:id="z"/>
<g ID="%E6%A7%8B"/><h ID="構"/><i e:ID="w" o:ID="w" Id="w"/><j id="v" e:id="v"/></r>""".encode()


@pytest.mark.parametrize("uri", ["#x", "#y", "#z", "#none", "##x", "#%E6%A7%8B", "#%E6%A7%8B%25", "#%FF",
                                 "#xpointer(/)", "#%78pointer(/)", "", "member.pdf", "other.pdf", "#w", "#v"])
@pytest.mark.parametrize("id_attributes", [("ID",), ("Id", "ID", "id", "xml:id")])
def test_reference_lookup_matches_signxmls(uri, id_attributes):
    """The compiled ID lookup selects what signxml's own query selects, and refuses alike
    (a percent-encoded fragment is compared with signxml resolving the decoded one: fix (c))."""
    root = etree.fromstring(_ID_DOCUMENT)

    def outcome(verifier: XMLVerifier, uri: str) -> object:
        verifier.id_attributes = id_attributes
        try:
            found = verifier._resolve_reference(root, etree.Element(ds("Reference"), URI=uri),
                                                uri_resolver={"member.pdf": b"%PDF"}.get)
        except InvalidInput as exc:
            return str(exc)
        return found if isinstance(found, bytes) else root.getroottree().getpath(found)

    indexed = DetachedVerifier({}, id_index=IdIndex.of(root))  # the walk inspect_signature made
    if uri == "#%FF":  # not UTF-8: unresolvable
        assert outcome(DetachedVerifier({}), uri) == f"Unable to resolve reference URI: {uri}"
        assert outcome(indexed, uri) == f"Unable to resolve reference URI: {uri}"
        return
    expected = outcome(XMLVerifier(), unquote(uri, errors="strict"))
    assert outcome(DetachedVerifier({}), uri) == expected
    assert outcome(indexed, uri) == expected
    known = {"#x": "/r/a", "#y": "Ambiguous reference URI #y resolved to 2 nodes", "member.pdf": b"%PDF"}
    assert uri not in known or id_attributes != ("ID",) or expected == known[uri]


def _flip_base64(text: str) -> str:
    return ("B" if text[0] == "A" else "A") + text[1:]


def _key_value(root: etree._Element) -> None:  # a KeyValue that is not the certificate's key
    key_info = sig(root).find(ds("KeyInfo"))
    _key_value_of(etree.SubElement(etree.SubElement(key_info, ds("KeyValue")), ds("RSAKeyValue")))


_VERIFY_CASES = {
    "valid": (lambda r: None, {}),
    "signature value": (lambda r: setattr(sig(r).find(ds("SignatureValue")), "text",
                                          _flip_base64(sig(r).findtext(ds("SignatureValue")))), {}),
    "manifest": (lambda r: setattr(r.find("構成情報/管理情報/手続ID"), "text", "care-01"), {}),
    "member": (lambda r: None, {"members": {"hoken.pdf": PDF + b" "}}),
    "schema": (lambda r: sig(r).find(ds("SignedInfo")).append(etree.Element(ds("Unexpected"))), {}),
    "sha1": (lambda r: sig(r).find(ds("SignedInfo"))[1].set("Algorithm", f"{DS}rsa-sha1"), {}),
    "unknown algorithm": (lambda r: sig(r).find(ds("SignedInfo"))[1].set("Algorithm", "urn:x"), {}),
    "key value": (_key_value, {}),
    "other signer": (lambda r: None, {"signer": "suzuki-hanako"}),
    "expired": (lambda r: None, {"at": NOW + dt.timedelta(days=365 * 20)}),
    "reference count": (lambda r: None, {"references": 3}),
    "location": (lambda r: None, {"location": "./構成情報/"}),
    # inherited into SignedInfo by C14N 1.0, lost by signxml's copy: signxml's own path decides
    "xml:lang above": (lambda r: r.find("署名情報").set(f"{{{XML_NS}}}lang", "ja"), {}),
    # an entity reference (xmlsafe refuses them; made in the tree here): signxml's path decides
    "entity": (lambda r: None, {"parsed": lambda r: sig(r).find(ds("KeyInfo")).append(etree.Entity("x"))}),
    # a comment cutting a DigestValue's text (C14N drops it: still validly signed): the
    # references are read from the verified bytes parsed again, as signxml reads them
    "comment in SignedInfo": (lambda r: _split_digest_value(manifest_ref(r)), {}),
}


def _split_digest_value(reference: etree._Element) -> None:
    value = reference.find(ds("DigestValue"))
    text, value.text = value.text, value.text[:8]
    comment = etree.Comment(" cut ")
    comment.tail = text[8:]
    value.append(comment)


@pytest.mark.parametrize("variant", [("inclusive", "raw"), ("exclusive", "percent")])
@pytest.mark.parametrize("case", list(_VERIFY_CASES))
def test_verify_saving_matches_signxmls(packages, pki, variant, case):
    """verify() on the Signature in place decides as signxml's verify() (its copy) does."""
    change, options = _VERIFY_CASES[case]
    kousei, members = packages[variant]
    members = {**members, **options.get("members", {})}
    document = parse_xml(edit(kousei, change), what="kousei.xml")
    options.get("parsed", lambda r: None)(document)
    before = etree.tostring(document, encoding="UTF-8")
    config = SignatureConfiguration(
        location=options.get("location", "./署名情報/"), expect_references=options.get("references", 1 + len(members)),
        signature_methods=SIGNATURE_METHODS, digest_algorithms=DIGEST_METHODS,
        verification_time=options.get("at", NOW))
    certificate = pki.resident(options.get("signer", "yamada-taro")).cert

    def outcome(verify: Callable[..., object]) -> object:
        verifier = DetachedVerifier(members)
        try:
            results = verify(verifier, document, x509_cert=certificate, parser=hardened_parser(),
                             uri_resolver=verifier.resolve_member, id_attribute="ID", expect_config=config)
        except etree.DocumentInvalid as exc:  # libxml2's message carries line numbers of the copy
            return type(exc).__name__
        except Exception as exc:
            return type(exc).__name__, str(exc)
        return [(r.signed_data, r.signature_key) for r in results], verifier.verified_references

    ours = outcome(DetachedVerifier.verify)
    assert ours == outcome(XMLVerifier.verify)
    assert (case in ("valid", "xml:lang above", "comment in SignedInfo")) == isinstance(ours[0], list)
    assert etree.tostring(document, encoding="UTF-8") == before  # read, never edited


@pytest.mark.parametrize("algorithm", list(DigestAlgorithm))
def test_digest_saving_matches_signxmls(algorithm):
    for data in (b"", b"x", FORM, PDF):
        assert DetachedVerifier({})._get_digest(data, algorithm) == XMLVerifier()._get_digest(data, algorithm)


@pytest.mark.parametrize("days", [-365 * 20, -1, 0, 1, 365 * 20])
def test_validity_and_key_value_savings_match_signxmls(pki, days):
    """The validity check decides (and words its refusal) as signxml's; without a KeyValue or
    DEREncodedKeyValue there is nothing to match, with one signxml's own method runs."""
    cert = pki.resident("yamada-taro").cert
    verifier = DetachedVerifier({})
    verifier.config = SignatureConfiguration(verification_time=NOW + dt.timedelta(days=days))

    def outcome(check: Callable[..., object]) -> object:
        try:
            return check(verifier, cert, "provided x509_cert")
        except Exception as exc:
            return type(exc).__name__, str(exc)

    assert outcome(DetachedVerifier._check_cert_validity) == outcome(XMLVerifier._check_cert_validity)
    assert (outcome(DetachedVerifier._check_cert_validity) is None) == (abs(days) < 365)
    for verify in (DetachedVerifier._match_key_values, XMLVerifier._match_key_values):
        assert verify(verifier, None, None, cert, None) is None
    key_value = etree.Element(ds("KeyValue"))
    _key_value_of(etree.SubElement(key_value, ds("RSAKeyValue")))
    for verify in (DetachedVerifier._match_key_values, XMLVerifier._match_key_values):
        with pytest.raises(InvalidInput, match="different public keys"):
            verify(verifier, key_value, None, cert, SignatureMethod.RSA_SHA256)


def _key_value_of(rsa_key: etree._Element) -> None:
    etree.SubElement(rsa_key, ds("Modulus")).text = base64.b64encode(b"\xc3" * 256).decode()
    etree.SubElement(rsa_key, ds("Exponent")).text = "AQAB"


def test_find_matches_signxmls(packages):
    """The Clark-notation finds return the elements signxml's prefixed finds return."""
    root = etree.fromstring(packages[("exclusive", "raw")][0])
    signature, ours, theirs = sig(root), DetachedVerifier({}), XMLVerifier()
    listed = DetachedVerifier({})
    listed._child_maps = {}  # as while verify() reads the Signature in place: children listed once
    signed_info = signature.find(ds("SignedInfo"))
    for element, query in [(signature, "SignedInfo"), (signature, "SignatureValue"), (signature, "ds:KeyInfo"),
                           (signed_info, "CanonicalizationMethod"), (manifest_ref(root), "Transforms"),
                           (manifest_ref(root), "DigestValue"), (signature, "Object"), (signature, "dsig11:X")]:
        for verifier in (ours, listed):
            assert verifier._find(element, query, require=False) is theirs._find(element, query, require=False)
            assert verifier._findall(element, query) == theirs._findall(element, query)
    location = "./署名情報/"
    for verifier in (ours, listed):
        assert verifier._find(root, "Signature", xpath=location) is theirs._find(root, "Signature", xpath=location)
    # Locations along child steps: the first match in document order, as ElementPath's find.
    steps = etree.fromstring(f'<r xmlns:ds="{DS}"><a/><a><b><ds:X n="1"/></b><b><ds:X n="2"/></b></a><ds:X n="3"/>'
                             f'<a><b><ds:X n="4"/></b></a><c><ds:X n="5"/></c></r>'.encode())
    for xpath in ("", "./", "./a/", "./a/b/", "./c/", "./b/", ".//", "./a//", "./*/", "./a[2]/b/"):
        for query in ("X", "ds:X", "Y"):
            for verifier in (ours, listed):
                assert verifier._find(steps, query, require=False, xpath=xpath) is \
                    theirs._find(steps, query, require=False, xpath=xpath), (xpath, query)
    for verifier in (ours, theirs):  # signxml's refusal, word for word
        with pytest.raises(InvalidInput, match=r"^Expected to find XML element Object in .*Signature "
                                               r"using XPath ds:Object$"):
            verifier._find(signature, "Object")
    transform = manifest_ref(root).find(f"{ds('Transforms')}/{ds('Transform')}")
    assert ours._get_inclusive_ns_prefixes(transform) == theirs._get_inclusive_ns_prefixes(transform)
    assert listed._get_inclusive_ns_prefixes(transform) == theirs._get_inclusive_ns_prefixes(transform)


# --------------------------------------------------------------------------- independent signers


@pytest.mark.interop
def test_packages_signed_by_xmlsec1_and_the_jdk_verify(validator, pki):
    interop = pytest.importorskip("tests.interop")
    if reason := interop.missing_tools():
        pytest.skip(reason)
    signed = interop.interop_packages(pki, FORM, attachments={"hoken.pdf": ATTACHMENTS["hoken.pdf"]})
    assert set(signed) == set(interop.ALL_VARIANTS)
    for variant, package in signed.items():
        kousei, members = split(package)
        result = check(validator, kousei, members)
        assert result.signed_manifest.findtext("管理情報/手続ID") == "childcare-01", variant
        tampered = {**members, "hoken.pdf": PDF + b" "}
        assert code(validator, kousei, tampered) == "signature-digest-mismatch", variant
