"""Independent signers (xmlsec1, the JDK) produce packages that standard verifiers accept.

These packages are what the gateway's verifier is later fed (``tests.interop.interop_packages``).
JDK work is batched: one JVM per fixture or test, since class loading dominates its run time.
"""

from __future__ import annotations

import datetime as dt

import pytest
from lxml import etree

from gateway.packaging import C14N_EXCLUSIVE, C14N_INCLUSIVE, DS_NS, build_manifest
from gateway.testpki import init_pki
from tests.interop import (
    ALL_VARIANTS, JavaSignRequest, interop_packages, missing_tools, sign_many_with_java, sign_with_xmlsec1,
    unzip_package, verify_many_with_java, verify_package_with_xmlsec1, verify_with_xmlsec1,
)

pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(bool(missing_tools()), reason=f"interop signers unavailable: {missing_tools()}")]

JST = dt.timezone(dt.timedelta(hours=9))
FORM = '<?xml version="1.0" encoding="UTF-8"?>\n<申請書 xmlns="urn:example:childcare-01"><氏名>鈴木　花子</氏名></申請書>\n'.encode()
JPEG = b"\xff\xd8\xff\xe0 test jpeg"
ATTACHMENTS = {"住民票の写し.jpg": ("住民票の写し", "image/jpeg", JPEG)}
MEMBERS = {"childcare-01.xml": FORM, "住民票の写し.jpg": JPEG}
TAMPERED = {**MEMBERS, "childcare-01.xml": FORM + b" "}
DS = {"ds": DS_NS}
PERCENT_URI = "#%E6%A7%8B%E6%88%90%E6%83%85%E5%A0%B1"
JAVA_CASES = [(c14n, uri) for c14n in ("inclusive", "exclusive") for uri in ("raw", "percent")]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return init_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def packages(pki):
    return interop_packages(pki, FORM, resident_id="suzuki-hanako", attachments=ATTACHMENTS,
                            applied_at=dt.datetime(2026, 11, 28, 9, 0, tzinfo=JST))


def _kousei(resident) -> bytes:
    return build_manifest(arrival_number="202611280000054321", procedure_code="childcare-01",
                          municipality_code=resident.municipality.code, form_filename="childcare-01.xml",
                          applicant=resident.applicant, applied_at=dt.datetime(2026, 11, 28, 9, 0, tzinfo=JST))


@pytest.fixture(scope="module")
def java_signed(pki) -> dict[tuple[str, str], bytes]:
    resident = pki.resident("tanaka-misaki")
    requests = [JavaSignRequest(_kousei(resident), MEMBERS, resident.key_path, resident.cert_path, c14n, uri)
                for c14n, uri in JAVA_CASES]
    return dict(zip(JAVA_CASES, sign_many_with_java(requests)))


def test_xmlsec1_signatures_verify_with_xmlsec1_and_jdk(pki):
    resident = pki.resident("yamasaki-jiro")
    java_items = []
    for c14n in ("inclusive", "exclusive"):
        signed = sign_with_xmlsec1(_kousei(resident), MEMBERS, resident.key_path, resident.cert_path, c14n)
        doc = etree.fromstring(signed)
        assert doc.find("署名情報/ds:Signature", DS) is not None
        assert doc.find(".//ds:X509Certificate", DS) is not None  # filled in by xmlsec1 from the cert file
        assert doc.find(".//ds:Reference", DS).get("URI") == "#構成情報"
        result = verify_with_xmlsec1(signed, MEMBERS, pki.root_paths)
        assert result.ok, result.output
        assert not verify_with_xmlsec1(signed, TAMPERED, pki.root_paths).ok
        java_items += [(signed, MEMBERS), (signed, TAMPERED)]
    assert [r.ok for r in verify_many_with_java(java_items)] == [True, False, True, False]


@pytest.mark.parametrize("c14n,uri_style", JAVA_CASES)
def test_jdk_signature_layout_and_xmlsec1(pki, java_signed, c14n, uri_style):
    signed = java_signed[(c14n, uri_style)]
    ref = etree.fromstring(signed).find("署名情報/ds:Signature/ds:SignedInfo/ds:Reference", DS)
    assert ref.get("URI") == ("#構成情報" if uri_style == "raw" else PERCENT_URI)
    algorithm = C14N_INCLUSIVE if c14n == "inclusive" else C14N_EXCLUSIVE
    assert ref.find("ds:Transforms/ds:Transform", DS).get("Algorithm") == algorithm
    result = verify_with_xmlsec1(signed, MEMBERS, pki.root_paths)
    if uri_style == "raw":
        assert result.ok, result.output
        assert not verify_with_xmlsec1(signed, TAMPERED, pki.root_paths).ok
    else:
        assert not result.ok  # xmlsec1 cannot resolve the percent-encoded fragment (known limit)


def test_jdk_signatures_verify_with_jdk(java_signed):
    items = [(signed, members) for signed in java_signed.values() for members in (MEMBERS, TAMPERED)]
    results = verify_many_with_java(items)
    assert [r.ok for r in results] == [True, False] * len(java_signed), [r.output for r in results]


def test_interop_packages_cover_all_variants(pki, packages):
    assert list(packages) == list(ALL_VARIANTS)
    arrival_numbers, java_items = set(), []
    for variant, package in packages.items():
        kousei, members = unzip_package(package)
        assert members == {"childcare-01.xml": FORM, "住民票の写し.jpg": JPEG}
        doc = etree.fromstring(kousei)
        arrival_numbers.add(doc.findtext("構成情報/管理情報/到達番号"))
        assert doc.findtext("構成情報/添付書類属性情報/添付書類ファイル名称") == "住民票の写し.jpg"
        assert len(doc.findall(".//ds:Signature", DS)) == 1
        java_items.append((kousei, members))
        if variant.endswith("-raw"):
            result = verify_package_with_xmlsec1(package, pki.root_paths)
            assert result.ok, (variant, result.output)
    assert len(arrival_numbers) == len(packages) and all(len(n) == 18 for n in arrival_numbers)
    results = verify_many_with_java(java_items)
    assert all(r.ok for r in results), [r.output for r in results]


def test_xmlsec1_checks_trust_and_time(pki, packages):
    resident = pki.resident("suzuki-hanako")
    package = packages["xmlsec1-inclusive-raw"]
    issuing_root = [pki.root_paths[resident.root_index]]
    other_root = [p for i, p in enumerate(pki.root_paths) if i != resident.root_index]
    assert verify_package_with_xmlsec1(package, issuing_root).ok
    assert not verify_package_with_xmlsec1(package, other_root).ok  # same DN, other key
    after_expiry = resident.cert.not_valid_after_utc + dt.timedelta(days=1)
    assert not verify_package_with_xmlsec1(package, issuing_root, at=after_expiry).ok
