"""The reference package builder/signer; its signatures are proven standard with xmlsec1 and the JDK."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import zipfile

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree

from gateway.models import Applicant, AttachmentInfo
from gateway.packaging import (
    C14N_EXCLUSIVE, C14N_INCLUSIVE, DS_NS, RSA_SHA256, SHA256, build_manifest, build_package, canonicalize,
    cosign_package, make_signed_package, sign_package,
)
from gateway.testpki import init_pki
from tests.interop import missing_tools, unzip_package, verify_many_with_java, verify_with_xmlsec1

JST = dt.timezone(dt.timedelta(hours=9))
APPLIED = dt.datetime(2026, 11, 28, 10, 15, tzinfo=JST)
FORM = '<?xml version="1.0" encoding="UTF-8"?>\n<申請書 xmlns="urn:example:childcare-01"><氏名>山田　太郎</氏名></申請書>\n'.encode()
PDF = b"%PDF-1.4\n% test attachment\n"
DS = {"ds": DS_NS}

SPEC_EXAMPLE = """<?xml version="1.0" encoding="UTF-8"?>
<DataRoot>
  <様式ID>KOUSEI</様式ID>
  <様式バージョン>1.0</様式バージョン>
  <構成情報 ID="構成情報">
    <管理情報>
      <到達番号>202611280000012345</到達番号>
      <手続ID>childcare-01</手続ID>
      <提出先団体コード>131016</提出先団体コード>
      <申請種別>新規申請</申請種別>
      <初回到達番号/>
      <申請日時>2026-11-28T10:15:00+09:00</申請日時>
      <申請者情報>
        <氏名>山田　太郎</氏名>
        <氏名フリガナ>ヤマダ　タロウ</氏名フリガナ>
        <郵便番号>1000001</郵便番号>
        <住所>東京都千代田区千代田１－１</住所>
        <電話番号>0312345678</電話番号>
        <電子メールアドレス>taro@example.jp</電子メールアドレス>
      </申請者情報>
    </管理情報>
    <申請書属性情報>
      <申請書様式ID>childcare-01</申請書様式ID>
      <申請書様式バージョン>1</申請書様式バージョン>
      <申請書ファイル名称>childcare-01.xml</申請書ファイル名称>
    </申請書属性情報>
    <添付書類属性情報>
      <添付書類名称>健康保険の資格を確認できる書類</添付書類名称>
      <添付書類ファイル名称>hoken.pdf</添付書類ファイル名称>
      <メディア型>application/pdf</メディア型>
    </添付書類属性情報>
  </構成情報>
</DataRoot>
"""

needs_xmlsec1 = pytest.mark.skipif(bool(missing_tools(["xmlsec1"])), reason=missing_tools(["xmlsec1"]))
needs_java = pytest.mark.skipif(bool(missing_tools(["java"])), reason=missing_tools(["java"]))


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return init_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def resident(pki):
    return pki.resident("yamada-taro")


def spec_manifest() -> bytes:
    applicant = Applicant(name="山田　太郎", name_kana="ヤマダ　タロウ", postal_code="1000001",
                          address="東京都千代田区千代田１－１", phone="0312345678", email="taro@example.jp")
    return build_manifest(arrival_number="202611280000012345", procedure_code="childcare-01",
                          municipality_code="131016", form_filename="childcare-01.xml", applicant=applicant,
                          attachments=[AttachmentInfo("健康保険の資格を確認できる書類", "hoken.pdf", "application/pdf")],
                          applied_at=APPLIED)


MEMBERS = {"childcare-01.xml": FORM, "hoken.pdf": PDF}


def test_manifest_is_the_spec_example():
    assert spec_manifest().decode("utf-8") == SPEC_EXAMPLE


def test_manifest_refuses_naive_time():
    with pytest.raises(ValueError):
        build_manifest(arrival_number="1" * 18, procedure_code="p", municipality_code="131016", form_filename="f.xml",
                       applicant=Applicant(name="x"), applied_at=dt.datetime(2026, 1, 1))


@pytest.mark.parametrize("c14n,algorithm", [("inclusive", C14N_INCLUSIVE), ("exclusive", C14N_EXCLUSIVE)])
@pytest.mark.parametrize("uri_style,uri", [("raw", "#構成情報"), ("percent", "#%E6%A7%8B%E6%88%90%E6%83%85%E5%A0%B1")])
def test_signature_layout_and_crypto(resident, c14n, algorithm, uri_style, uri):
    signed = sign_package(spec_manifest(), MEMBERS, resident.key, resident.cert, c14n=c14n, uri_style=uri_style)
    doc = etree.fromstring(signed)
    assert [child.tag for child in doc] == ["様式ID", "様式バージョン", "構成情報", "署名情報"]
    assert len(doc.findall(".//ds:Signature", DS)) == 1
    signature = doc.find("署名情報/ds:Signature", DS)
    assert signature.nsmap == {None: DS_NS} and signature.get("Id") == "sig-20261128101500"
    info = signature.find("ds:SignedInfo", DS)
    assert info.find("ds:CanonicalizationMethod", DS).get("Algorithm") == algorithm
    assert info.find("ds:SignatureMethod", DS).get("Algorithm") == RSA_SHA256
    refs = info.findall("ds:Reference", DS)
    assert [r.get("URI") for r in refs] == [uri, "childcare-01.xml", "hoken.pdf"]
    assert [t.get("Algorithm") for t in refs[0].findall("ds:Transforms/ds:Transform", DS)] == [algorithm]
    assert all(r.find("ds:Transforms", DS) is None for r in refs[1:])
    assert {r.find("ds:DigestMethod", DS).get("Algorithm") for r in refs} == {SHA256}
    digests = [base64.b64decode(r.findtext("ds:DigestValue", namespaces=DS)) for r in refs]
    assert digests[0] == hashlib.sha256(canonicalize(doc.find("構成情報"), c14n)).digest()
    assert digests[1:] == [hashlib.sha256(FORM).digest(), hashlib.sha256(PDF).digest()]
    assert base64.b64decode(signature.findtext("ds:KeyInfo/ds:X509Data/ds:X509Certificate", namespaces=DS)) == \
        resident.cert.public_bytes(serialization.Encoding.DER)
    resident.cert.public_key().verify(base64.b64decode(signature.findtext("ds:SignatureValue", namespaces=DS)),
                                      canonicalize(info, c14n), padding.PKCS1v15(), hashes.SHA256())


def test_sign_is_deterministic_and_refuses_bad_input(resident):
    kousei = spec_manifest()
    first = sign_package(kousei, MEMBERS, resident.key, resident.cert)
    assert first == sign_package(kousei, MEMBERS, resident.key, resident.cert)
    with pytest.raises(ValueError):
        sign_package(first, MEMBERS, resident.key, resident.cert)  # already signed
    with pytest.raises(ValueError):
        sign_package(kousei, {"kousei.xml": b""}, resident.key, resident.cert)


def test_cosign_adds_a_sibling_signature_over_the_same_references(pki, resident):
    co_signer = pki.resident("suzuki-hanako")
    signed = sign_package(spec_manifest(), MEMBERS, resident.key, resident.cert)
    cosigned = cosign_package(signed, MEMBERS, co_signer.key, co_signer.cert, c14n="exclusive")
    assert cosigned == cosign_package(signed, MEMBERS, co_signer.key, co_signer.cert, c14n="exclusive")
    doc = etree.fromstring(cosigned)
    assert [child.tag for child in doc] == ["様式ID", "様式バージョン", "構成情報", "署名情報"]
    first, second = doc.findall("署名情報/ds:Signature", DS)
    assert len(doc.findall(".//ds:Signature", DS)) == 2
    assert (first.get("Id"), second.get("Id")) == ("sig-20261128101500", "sig-20261128101500-2")
    applicants = etree.fromstring(signed).find("署名情報/ds:Signature", DS)
    assert etree.tostring(first, with_tail=False) == etree.tostring(applicants, with_tail=False)  # untouched
    info = second.find("ds:SignedInfo", DS)
    assert info.find("ds:CanonicalizationMethod", DS).get("Algorithm") == C14N_EXCLUSIVE
    refs = info.findall("ds:Reference", DS)
    assert [r.get("URI") for r in refs] == ["#構成情報", "childcare-01.xml", "hoken.pdf"]
    assert base64.b64decode(refs[0].findtext("ds:DigestValue", namespaces=DS)) == \
        hashlib.sha256(canonicalize(doc.find("構成情報"), "exclusive")).digest()
    co_signer.cert.public_key().verify(base64.b64decode(second.findtext("ds:SignatureValue", namespaces=DS)),
                                       canonicalize(info, "exclusive"), padding.PKCS1v15(), hashes.SHA256())
    third = etree.fromstring(cosign_package(cosigned, MEMBERS, *_pair(pki, "yamasaki-jiro"), signature_id="代理人"))
    assert [s.get("Id") for s in third.findall("署名情報/ds:Signature", DS)] == [
        "sig-20261128101500", "sig-20261128101500-2", "代理人"]
    with pytest.raises(ValueError):
        cosign_package(spec_manifest(), MEMBERS, co_signer.key, co_signer.cert)  # the applicant signs first


def _pair(pki, resident_id):
    resident = pki.resident(resident_id)
    return resident.key, resident.cert


def test_make_signed_package_with_co_signers(pki, resident):
    attachments = {"hoken.pdf": ("健康保険の資格を確認できる書類", "application/pdf", PDF)}
    common = dict(form_filename="childcare-01.xml", procedure_code="childcare-01", municipality_code="131016",
                  arrival_number="202611280000012345", attachments=attachments, applied_at=APPLIED)
    package = make_signed_package(FORM, signer=resident, co_signers=[pki.resident("suzuki-hanako"),
                                                                      _pair(pki, "yamasaki-jiro")],
                                  c14n="exclusive", uri_style="percent", signature_id="本人", **common)
    kousei, _ = unzip_package(package)
    signatures = etree.fromstring(kousei).findall("署名情報/ds:Signature", DS)
    assert [s.get("Id") for s in signatures] == ["本人", "sig-20261128101500-2", "sig-20261128101500-3"]
    assert {m.get("Algorithm") for m in etree.fromstring(kousei).iterfind(".//ds:CanonicalizationMethod", DS)} \
        == {C14N_EXCLUSIVE}
    certs = [base64.b64decode(s.findtext("ds:KeyInfo/ds:X509Data/ds:X509Certificate", namespaces=DS))
             for s in signatures]
    assert certs == [r.cert.public_bytes(serialization.Encoding.DER) for r in
                     (resident, pki.resident("suzuki-hanako"), pki.resident("yamasaki-jiro"))]
    with pytest.raises(ValueError):
        make_signed_package(FORM, signer=None, applicant=resident.applicant, co_signers=[resident], **common)


def test_canonicalize_has_no_spurious_empty_default_namespace():
    # lxml's own subtree C14N writes <B xmlns=""> here; xmlsec1, the JDK and the spec do not.
    doc = etree.fromstring(b'<R xmlns:p="urn:p" xml:lang="ja"><S xmlns="urn:ds"><I><A><B/></A></I></S></R>')
    apex = doc.find(".//{urn:ds}I")
    assert canonicalize(apex, "inclusive") == \
        b'<I xmlns="urn:ds" xmlns:p="urn:p" xml:lang="ja"><A><B></B></A></I>'
    assert canonicalize(apex, "exclusive") == b'<I xmlns="urn:ds"><A><B></B></A></I>'


def test_build_package_layout_and_determinism():
    members = {"childcare-01.xml": FORM, "保険証.pdf": PDF}
    package = build_package(members, b"<DataRoot/>")
    assert package == build_package(members, b"<DataRoot/>")
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        infos = archive.infolist()
        assert [i.filename for i in infos] == ["kousei.xml", "childcare-01.xml", "保険証.pdf"]
        assert all(i.compress_type == zipfile.ZIP_DEFLATED and i.date_time == (2000, 1, 1, 0, 0, 0) for i in infos)
        assert infos[2].flag_bits & 0x800
        assert archive.read("保険証.pdf") == PDF
    assert "保険証.pdf".encode("utf-8") in package
    with pytest.raises(ValueError):
        build_package({"kousei.xml": b""}, b"<DataRoot/>")


def test_make_signed_package_signed_and_unsigned(pki, resident):
    attachments = {"hoken.pdf": ("健康保険の資格を確認できる書類", "application/pdf", PDF)}
    common = dict(form_filename="childcare-01.xml", procedure_code="childcare-01", municipality_code="131016",
                  arrival_number="202611280000012345", attachments=attachments, applied_at=APPLIED)
    signed = make_signed_package(FORM, signer=resident, c14n="exclusive", **common)
    kousei, members = unzip_package(signed)
    assert members == {"childcare-01.xml": FORM, "hoken.pdf": PDF}
    doc = etree.fromstring(kousei)
    assert doc.findtext("構成情報/管理情報/申請者情報/氏名") == resident.name
    assert doc.find(".//ds:CanonicalizationMethod", DS).get("Algorithm") == C14N_EXCLUSIVE
    assert signed == make_signed_package(FORM, signer=(resident.key, resident.cert), applicant=resident.applicant,
                                         c14n="exclusive", **common)

    unsigned = make_signed_package(FORM, signer=None, applicant=resident.applicant, **common)
    kousei, _ = unzip_package(unsigned)
    assert etree.fromstring(kousei).find("署名情報") is None and b"Signature" not in kousei
    with pytest.raises(ValueError):
        make_signed_package(FORM, signer=None, **common)  # no applicant to take


@pytest.mark.interop
@needs_xmlsec1
@pytest.mark.parametrize("c14n", ["inclusive", "exclusive"])
def test_xmlsec1_verifies_our_signature(pki, resident, c14n):
    members = {"childcare-01.xml": FORM, "保険証.pdf": PDF}
    signed = sign_package(spec_manifest(), members, resident.key, resident.cert, c14n=c14n)
    result = verify_with_xmlsec1(signed, members, pki.root_paths)
    assert result.ok, result.output
    assert "SignedInfo References (ok/all): 3/3" in result.output

    tampered = verify_with_xmlsec1(signed, {**members, "保険証.pdf": PDF + b"x"}, pki.root_paths)
    assert not tampered.ok and "2/3" in tampered.output
    edited = signed.replace("千代田１－１".encode(), "千代田１－２".encode())
    assert not verify_with_xmlsec1(edited, members, pki.root_paths).ok
    other_root = [p for i, p in enumerate(pki.root_paths) if i != resident.root_index]
    assert not verify_with_xmlsec1(signed, members, other_root).ok  # same DN, wrong key: untrusted


@pytest.mark.interop
@needs_xmlsec1
def test_xmlsec1_verifies_each_co_signature(pki, resident):
    """xmlsec1 verifies the first ds:Signature it finds: each co-signature alone in 署名情報 verifies."""
    co_signer = pki.resident("suzuki-hanako")
    signed = sign_package(spec_manifest(), MEMBERS, resident.key, resident.cert, c14n="inclusive")
    cosigned = cosign_package(signed, MEMBERS, co_signer.key, co_signer.cert, c14n="exclusive")
    for keep in range(2):
        doc = etree.fromstring(cosigned)
        for index, signature in enumerate(doc.findall("署名情報/ds:Signature", DS)):
            if index != keep:
                signature.getparent().remove(signature)
        alone = etree.tostring(doc, encoding="UTF-8", xml_declaration=True)
        result = verify_with_xmlsec1(alone, MEMBERS, pki.root_paths)
        assert result.ok, result.output
        assert not verify_with_xmlsec1(alone, {**MEMBERS, "hoken.pdf": PDF + b"x"}, pki.root_paths).ok


@pytest.mark.interop
@needs_java
def test_jdk_verifies_our_signature(resident):
    tampered = {**MEMBERS, "hoken.pdf": PDF + b"x"}
    items = []
    for c14n in ("inclusive", "exclusive"):
        for uri_style in ("raw", "percent"):
            signed = sign_package(spec_manifest(), MEMBERS, resident.key, resident.cert, c14n=c14n,
                                  uri_style=uri_style)
            items += [(signed, MEMBERS), (signed, tampered)]
    results = verify_many_with_java(items)  # one JVM for all
    for n, result in enumerate(results):
        assert result.ok == (n % 2 == 0), result.output
