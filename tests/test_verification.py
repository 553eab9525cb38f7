"""verify_package end to end: what flows downstream, unsigned packages, ordering, revocation seam."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography import x509

from gateway.archive import read_package
from gateway.errors import (
    CertificateError,
    MunicipalityError,
    PackageError,
    RevocationError,
    RevocationUnknown,
    SignatureError,
    XmlError,
)
from gateway.models import (
    Applicant,
    AttachmentInfo,
    CertificateInfo,
    Limits,
    SignaturePolicy,
    VerifiedPackage,
)
from gateway.packaging import (
    build_manifest,
    build_package,
    make_signed_package,
    sign_package,
)
from gateway.revocation import RevocationStatus
from gateway.trust import CertificateValidator, TrustAnchors
from gateway.verification import IDENTITY_UNVERIFIED, verify_package

NOW = dt.datetime.now(dt.timezone.utc)
JST = dt.timezone(dt.timedelta(hours=9))
APPLIED = dt.datetime(2026, 11, 28, 10, 15, tzinfo=JST)
FORM = ('<?xml version="1.0" encoding="UTF-8"?>\n<申請書 xmlns="urn:example:childcare-01">'
        + "<児童><氏名>山田　一郎</氏名></児童>" * 50 + "</申請書>\n").encode()
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + bytes(range(256)) + b"\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(64) + b"\xff\xd9"
SIGNED_ONLY = lambda code: SignaturePolicy()  # noqa: E731
UNSIGNED_OK = lambda code: SignaturePolicy(unsigned_allowed=True)  # noqa: E731


@pytest.fixture(scope="module")
def validator(pki) -> CertificateValidator:
    return CertificateValidator(TrustAnchors.load(pki.root_paths), allow_test_roots=True)


def package(pki, resident: str = "yamada-taro", **options) -> bytes:
    r = pki.resident(resident)
    options.setdefault("attachments", {"hoken.pdf": ("健康保険の資格を確認できる書類", "application/pdf", PDF),
                                       "住民票.jpg": ("住民票の写し", "image/jpeg", JPEG)})
    return make_signed_package(FORM, form_filename="childcare-01.xml", procedure_code="childcare-01",
                               municipality_code=options.pop("municipality_code", r.municipality.code),
                               arrival_number="202611280000012345", signer=options.pop("signer", r),
                               applied_at=APPLIED, **options)


def verify(data, validator, policy=SIGNED_ONLY, at=NOW, **kw) -> VerifiedPackage:
    return verify_package(data, limits=Limits(), validator=validator, signature_policy_for=policy,
                          arrival_time=at, **kw)


def test_verified_package_carries_only_signed_content(pki, validator):
    data = package(pki, c14n="inclusive", uri_style="percent")
    verified = verify(data, validator)
    m = verified.manifest
    assert (m.arrival_number, m.procedure_code, m.municipality_code) == ("202611280000012345", "childcare-01", "131016")
    assert m.applicant.name == "山田　太郎" and m.applied_at == APPLIED
    assert verified.form_xml == FORM  # the exact bytes the digest covers
    assert dict(verified.attachments) == {"hoken.pdf": PDF, "住民票.jpg": JPEG}
    assert verified.signed and verified.flags == ()
    assert isinstance(verified.signer, CertificateInfo) and verified.co_signers == ()
    assert verified.signer.serial_number == pki.resident("yamada-taro").cert.serial_number
    evidence = json.loads(json.dumps(verified.evidence, ensure_ascii=False))  # JSON-serialisable
    assert evidence["signature"]["manifest"]["uri"].startswith("#%E6")
    assert set(evidence["signature"]["members"]) == {"childcare-01.xml", "hoken.pdf", "住民票.jpg"}
    assert evidence["certificate"]["serial"] == format(verified.signer.serial_number, "x")
    assert evidence["revocation"]["state"] == "not-checked"
    assert evidence["co_signatures"] == []
    assert verify(read_package(data, Limits()), validator).manifest == m  # a RawPackage works too


def test_unsigned_content_outside_the_signed_manifest_never_flows(pki, validator):
    """Anything added to kousei.xml outside 構成情報 is not what the manifest is read from."""
    raw = dict(read_package(package(pki, c14n="exclusive"), Limits()).members)
    kousei = raw.pop("kousei.xml")
    unsigned = "<管理情報><到達番号>999999999999999999</到達番号></管理情報>"
    evil = kousei.replace(b"</DataRoot>", f"{unsigned}</DataRoot>".encode())
    verified = verify(build_package(raw, evil), validator)
    assert verified.manifest.arrival_number == "202611280000012345"


def test_unsigned_packages_follow_the_procedure_policy(pki, validator):
    data = package(pki, signer=None, applicant=Applicant(name="被災　花子"))
    verified = verify(data, validator, policy=UNSIGNED_OK)
    assert not verified.signed and verified.signer is None and verified.flags == (IDENTITY_UNVERIFIED,)
    assert verified.form_xml == FORM and verified.evidence["signed"] is False
    with pytest.raises(SignatureError) as info:
        verify(data, validator)
    assert info.value.code == "signature-missing"


def test_certificate_is_judged_before_the_signature_and_as_of_arrival(pki, validator):
    expired = pki.resident("ito-kenji")
    data = package(pki, resident="ito-kenji")
    with pytest.raises(CertificateError) as info:
        verify(data, validator)
    assert info.value.code == "certificate-expired"
    earlier = expired.cert.not_valid_after_utc - dt.timedelta(days=1)  # arrived while still valid
    assert verify(data, validator, at=earlier).signer.serial_number == expired.cert.serial_number
    with pytest.raises(CertificateError) as info:
        verify(package(pki, resident="watanabe-kumiko"), validator)
    assert info.value.code == "certificate-authentication-cert"


def test_members_must_equal_the_manifest(pki, validator):
    resident = pki.resident("yamada-taro")
    members = {"childcare-01.xml": FORM, "hoken.pdf": PDF}

    def signed(kousei_attachments, zip_members):
        kousei = build_manifest(arrival_number="202611280000012345", procedure_code="childcare-01",
                                municipality_code="131016", form_filename="childcare-01.xml",
                                applicant=resident.applicant, attachments=kousei_attachments, applied_at=APPLIED)
        return build_package(zip_members, sign_package(kousei, zip_members, resident.key, resident.cert))

    with pytest.raises(PackageError) as info:  # signed, but the manifest does not name hoken.pdf
        verify(signed([], members), validator)
    assert info.value.code == "package-manifest-unlisted-member"
    listed = [AttachmentInfo("健康保険", "hoken.pdf", "application/pdf"), AttachmentInfo("写真", "a.png", "image/png")]
    with pytest.raises(PackageError) as info:
        verify(signed(listed, members), validator)
    assert info.value.code == "package-manifest-missing-member"
    wrong_type = [AttachmentInfo("健康保険", "hoken.pdf", "image/png")]
    with pytest.raises(PackageError) as info:  # case 63: the content is not what the manifest says
        verify(signed(wrong_type, members), validator)
    assert info.value.code == "package-attachment-type"


def test_manifest_rules_apply_to_the_signed_manifest(pki, validator):
    with pytest.raises(MunicipalityError) as info:
        verify(package(pki, municipality_code="131017"), validator)
    assert info.value.code == "municipality-code-invalid"


def test_archive_and_xml_errors_surface_with_their_codes(pki, validator):
    with pytest.raises(PackageError) as info:
        verify(b"not a zip", validator)
    assert info.value.code == "package-not-zip"
    raw = dict(read_package(package(pki), Limits()).members)
    raw.pop("kousei.xml")
    bad = build_package(raw, b'<!DOCTYPE DataRoot [<!ENTITY x "1">]><DataRoot/>')
    with pytest.raises(XmlError) as info:
        verify(bad, validator)
    assert info.value.code == "xml-entity-forbidden"
    with pytest.raises(PackageError) as info:
        verify(build_package(raw, b"<Other/>"), validator)
    assert info.value.code == "package-manifest-structure"


class FixedRevocation:
    """A RevocationChecker with a fixed answer (the real CRL checker is the next issue)."""

    def __init__(self, state: str) -> None:
        self.state = state
        self.seen: list[int] = []

    def check(self, cert: x509.Certificate, signer: CertificateInfo, at: dt.datetime) -> RevocationStatus:
        self.seen.append(cert.serial_number)
        return RevocationStatus(state=self.state, source="crl:test/1", detail={"crl_number": 1})  # type: ignore[arg-type]


def test_revocation_seam(pki, validator):
    data = package(pki)
    good = FixedRevocation("good")
    assert verify(data, validator, revocation=good).evidence["revocation"] == {
        "state": "good", "source": "crl:test/1", "detail": {"crl_number": 1}}
    assert good.seen == [pki.resident("yamada-taro").cert.serial_number]
    with pytest.raises(RevocationError) as info:
        verify(data, validator, revocation=FixedRevocation("revoked"))
    assert info.value.code == "revocation-revoked"
    with pytest.raises(RevocationUnknown):
        verify(data, validator, revocation=FixedRevocation("unknown"))
    tampered = dict(read_package(data, Limits()).members)
    kousei = tampered.pop("kousei.xml")
    tampered["hoken.pdf"] = PDF + b"x"
    never = FixedRevocation("unknown")
    with pytest.raises(SignatureError):  # a bad signature is refused, not deferred for revocation
        verify(build_package(tampered, kousei), validator, revocation=never)
    assert never.seen == []
