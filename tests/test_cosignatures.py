"""Co-signatures (代理人 and 本人): several ds:Signature siblings in 署名情報, only as many as the
procedure's policy allows, each checked and verified exactly like the applicant's.

Packages come from gateway.packaging (``co_signers=``); the attacks edit the signed kousei.xml.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

import gateway.verification
from gateway.app import create_app
from gateway.archive import read_package
from gateway.errors import GatewayError, RevocationError, RevocationUnknown
from gateway.models import (
    Applicant,
    CertificateInfo,
    Limits,
    SignaturePolicy,
    VerifiedPackage,
)
from gateway.packaging import build_package, cosign_package, make_signed_package
from gateway.report import inspect_package
from gateway.revocation import RevocationStatus
from gateway.testpki import root_name
from gateway.trust import CertificateValidator, TrustAnchors
from gateway.verification import verify_package
from tests.conftest import AUTH, ZIP
from tests.test_verification import APPLIED, FORM, NOW, PDF

DS = "http://www.w3.org/2000/09/xmldsig#"
ATTACHMENTS = {"hoken.pdf": ("健康保険の資格を確認できる書類", "application/pdf", PDF)}


def ds(tag: str) -> str:
    return f"{{{DS}}}{tag}"


@pytest.fixture(scope="module")
def validator(pki) -> CertificateValidator:
    return CertificateValidator(TrustAnchors.load(pki.root_paths), allow_test_roots=True)


def package(pki, co_signers=(), **options) -> bytes:
    """childcare-01 signed by yamada-taro, co-signed by ``co_signers`` (resident ids or (key, cert))."""
    options.setdefault("attachments", ATTACHMENTS)
    return make_signed_package(
        FORM, form_filename="childcare-01.xml", procedure_code="childcare-01", municipality_code="131016",
        arrival_number="202611280000012345", signer=pki.resident("yamada-taro"), applied_at=APPLIED,
        co_signers=[pki.resident(c) if isinstance(c, str) else c for c in co_signers], **options)


def allowing(max_signatures: int) -> Callable[[str], SignaturePolicy]:
    return lambda code: SignaturePolicy(max_signatures=max_signatures)


def verify(data: bytes, validator, *, max_signatures: int = 2, at=NOW, **kw) -> VerifiedPackage:
    return verify_package(data, limits=Limits(), validator=validator, arrival_time=at,
                          signature_policy_for=kw.pop("policy", allowing(max_signatures)), **kw)


def refused(data: bytes, validator, **kw) -> str:
    with pytest.raises(GatewayError) as info:
        verify(data, validator, **kw)
    assert 400 <= info.value.status < 500
    return info.value.code


def edited(data: bytes, change: Callable[[etree._Element], object]) -> bytes:
    """``data`` with its kousei.xml changed by ``change`` (signatures left as they were)."""
    members = dict(read_package(data, Limits()).members)
    root = etree.fromstring(members.pop("kousei.xml"))
    change(root)
    return build_package(members, b'<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(root, encoding="UTF-8"))


def signatures(root: etree._Element) -> list[etree._Element]:
    return list(root.iter(ds("Signature")))


def co_signature(root: etree._Element) -> etree._Element:
    return signatures(root)[1]


def serial(pki, resident: str) -> int:
    return pki.resident(resident).cert.serial_number


# --------------------------------------------------------------------------- policy


def test_one_signature_unless_the_policy_allows_more(pki, validator):
    data = package(pki, ["suzuki-hanako"])
    assert refused(data, validator, max_signatures=1) == "signature-multiple"
    assert refused(data, validator, max_signatures=0) == "signature-multiple"  # never below one
    assert verify(package(pki), validator, max_signatures=0).co_signers == ()


@pytest.mark.parametrize("c14n, uri_style", [("inclusive", "raw"), ("exclusive", "percent")])
def test_co_signature_accepted_where_the_policy_allows_it(pki, validator, c14n, uri_style):
    verified = verify(package(pki, ["suzuki-hanako"], c14n=c14n, uri_style=uri_style), validator)
    assert verified.signed and verified.signer.serial_number == serial(pki, "yamada-taro")  # the applicant
    assert [c.serial_number for c in verified.co_signers] == [serial(pki, "suzuki-hanako")]
    assert isinstance(verified.co_signers[0], CertificateInfo)
    assert verified.manifest.applicant.name == "山田　太郎" and verified.form_xml == FORM
    evidence = json.loads(json.dumps(verified.evidence, ensure_ascii=False))  # JSON-serialisable
    [co] = evidence["co_signatures"]
    assert set(co) == {"signature", "certificate", "revocation"}
    assert set(co["certificate"]) == set(evidence["certificate"])  # the same shape, nothing more
    assert set(co["signature"]) == set(evidence["signature"])
    assert co["certificate"]["serial"] == format(serial(pki, "suzuki-hanako"), "x")
    assert (evidence["signature"]["id"], co["signature"]["id"]) == ("sig-20261128101500", "sig-20261128101500-2")
    assert set(co["signature"]["members"]) == {"childcare-01.xml", "hoken.pdf"}
    assert co["signature"]["manifest"]["digest"] == evidence["signature"]["manifest"]["digest"]
    assert co["revocation"]["state"] == "not-checked"


def test_single_signature_has_no_co_signers(pki, validator):
    verified = verify(package(pki), validator)
    assert verified.co_signers == () and verified.evidence["co_signatures"] == []


def test_more_signatures_than_the_policy_allows(pki, validator):
    data = package(pki, ["suzuki-hanako", "yamasaki-jiro"])
    assert refused(data, validator, max_signatures=2) == "signature-multiple"
    verified = verify(data, validator, max_signatures=3)
    assert [c.serial_number for c in verified.co_signers] == [serial(pki, "suzuki-hanako"),
                                                              serial(pki, "yamasaki-jiro")]
    assert [co["signature"]["id"] for co in verified.evidence["co_signatures"]] == [
        "sig-20261128101500-2", "sig-20261128101500-3"]


def test_policy_is_the_signed_procedures(pki, validator, monkeypatch):
    """The policy is looked up with the 手続ID 構成情報 claims; only the signed one may have chosen it."""
    asked: list[str] = []

    def lax_for_disaster(code: str) -> SignaturePolicy:
        asked.append(code)
        return SignaturePolicy(max_signatures=2 if code == "disaster-01" else 1)

    data = package(pki, ["suzuki-hanako"])
    assert refused(data, validator, policy=lax_for_disaster) == "signature-multiple"
    assert asked == ["childcare-01"]
    # Claiming a laxer procedure changes the signed 構成情報: the signatures no longer verify.
    claims_disaster = edited(data, lambda r: setattr(r.find("構成情報/管理情報/手続ID"), "text", "disaster-01"))
    assert refused(claims_disaster, validator, policy=lax_for_disaster) == "signature-digest-mismatch"
    # Defence in depth: had the policy been chosen for another code than the signed one, refused.
    monkeypatch.setattr(gateway.verification, "_claimed_procedure_code", lambda document: "disaster-01")
    assert refused(data, validator, policy=lax_for_disaster) == "signature-wrapping"


# --------------------------------------------------------------------------- each signature verified


def _flip_signature_value(signature: etree._Element) -> None:
    value = signature.find(ds("SignatureValue"))
    raw = bytearray(base64.b64decode("".join(value.text.split())))
    raw[10] ^= 0x01
    value.text = base64.b64encode(bytes(raw)).decode()


def _edit_co_digest(root: etree._Element) -> None:
    digest = co_signature(root).find(f"{ds('SignedInfo')}/{ds('Reference')}[2]/{ds('DigestValue')}")
    digest.text = base64.b64encode(b"\0" * 32).decode()


def test_tampered_co_signature_is_refused(pki, validator):
    data = package(pki, ["suzuki-hanako"])
    assert refused(edited(data, lambda r: _flip_signature_value(co_signature(r))), validator) == "signature-invalid"
    assert refused(edited(data, _edit_co_digest), validator) == "signature-invalid"  # SignedInfo changed
    # A co-signer who signed other bytes of the attachment: a valid signature, a wrong digest.
    members = dict(read_package(data, Limits()).members)
    kousei = members.pop("kousei.xml")
    other = cosign_package(_strip_co_signatures(kousei), {**members, "hoken.pdf": PDF + b"x"},
                           pki.resident("suzuki-hanako").key, pki.resident("suzuki-hanako").cert)
    assert refused(build_package(members, other), validator) == "signature-digest-mismatch"
    # A co-signature over another 構成情報 (another applicant's name) placed beside the applicant's.
    forged = package(pki, ["suzuki-hanako"], applicant=Applicant(name="悪意　太郎"))
    foreign = co_signature(etree.fromstring(dict(read_package(forged, Limits()).members)["kousei.xml"]))
    swapped = edited(data, lambda r: r.find("署名情報").replace(co_signature(r), foreign))
    assert refused(swapped, validator) == "signature-digest-mismatch"


def _strip_co_signatures(kousei: bytes) -> bytes:
    root = etree.fromstring(kousei)
    for extra in signatures(root)[1:]:
        extra.getparent().remove(extra)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(root, encoding="UTF-8")


def _untrusted_signer() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A self-signed certificate with the test roots' DN: no pinned root issued it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (x509.CertificateBuilder().subject_name(root_name()).issuer_name(root_name())
            .public_key(key.public_key()).serial_number(7).not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    return key, cert


@pytest.mark.parametrize("co_signer, expected", [
    ("ito-kenji", "certificate-expired"),
    ("watanabe-kumiko", "certificate-authentication-cert"),
    ("untrusted", "certificate-untrusted"),
])
def test_co_signer_certificate_is_judged_like_the_applicants(pki, validator, co_signer, expected):
    signer = _untrusted_signer() if co_signer == "untrusted" else co_signer
    assert refused(package(pki, [signer]), validator) == expected


def test_the_same_signer_twice_is_refused(pki, validator):
    data = package(pki, ["yamada-taro"])
    assert refused(data, validator) == "signature-duplicate-signer"
    assert refused(data, validator, max_signatures=1) == "signature-multiple"  # the count decides first
    twice = package(pki, ["suzuki-hanako", "suzuki-hanako"])
    assert refused(twice, validator, max_signatures=3) == "signature-duplicate-signer"


def test_each_signature_needs_its_own_id(pki, validator):
    data = package(pki, ["suzuki-hanako"])
    same_id = edited(data, lambda r: co_signature(r).set("Id", signatures(r)[0].get("Id")))
    assert refused(same_id, validator) == "signature-structure"
    no_id = edited(data, lambda r: [s.attrib.pop("Id") for s in signatures(r)])  # Id is outside SignedInfo
    assert len(verify(no_id, validator).co_signers) == 1
    claims_manifest = edited(data, lambda r: co_signature(r).set("Id", "構成情報"))
    assert refused(claims_manifest, validator) == "signature-wrapping"


class BySerial:
    """A RevocationChecker answering per certificate (good unless told otherwise)."""

    def __init__(self, states: dict[int, str], awaiting: dict[int, list[str]] | None = None) -> None:
        self.states, self.awaiting = states, awaiting or {}
        self.seen: list[int] = []

    def check(self, cert: x509.Certificate, signer: CertificateInfo, at: dt.datetime) -> RevocationStatus:
        self.seen.append(cert.serial_number)
        state = self.states.get(cert.serial_number, "good")
        detail: dict[str, object] = {"crl_number": 1}
        if state == "unknown":
            detail = {"reason": "revocation-crl-missing", "awaiting": self.awaiting.get(cert.serial_number, [])}
        return RevocationStatus(state=state, source="crl:test/1", detail=detail)  # type: ignore[arg-type]


def test_revocation_of_every_signer(pki, validator):
    data = package(pki, ["suzuki-hanako"])
    applicant, co = serial(pki, "yamada-taro"), serial(pki, "suzuki-hanako")
    good = BySerial({})
    verified = verify(data, validator, revocation=good)
    assert good.seen == [applicant, co]
    assert verified.evidence["co_signatures"][0]["revocation"]["state"] == "good"

    with pytest.raises(RevocationUnknown) as deferred:  # a co-signer undecided: deferred, not accepted
        verify(data, validator, revocation=BySerial({co: "unknown"}, {co: ["crl:b"]}))
    assert deferred.value.code == "revocation-crl-missing"
    assert deferred.value.extra["revocation"]["detail"]["awaiting"] == ["crl:b"]
    with pytest.raises(RevocationUnknown) as deferred:  # waits for what every undecided signer needs
        verify(data, validator, revocation=BySerial({applicant: "unknown", co: "unknown"},
                                                    {applicant: ["crl:a", "crl:b"], co: ["crl:b", "crl:c"]}))
    assert deferred.value.extra["revocation"]["detail"]["awaiting"] == ["crl:a", "crl:b", "crl:c"]

    with pytest.raises(RevocationError) as revoked:
        verify(data, validator, revocation=BySerial({co: "revoked"}))
    assert revoked.value.code == "revocation-revoked" and "連署者" in revoked.value.detail
    with pytest.raises(RevocationError):  # revoked decides even when another signer is undecided
        verify(data, validator, revocation=BySerial({applicant: "unknown", co: "revoked"}))

    never = BySerial({co: "unknown"})
    tampered = edited(data, lambda r: _flip_signature_value(co_signature(r)))
    with pytest.raises(GatewayError) as info:  # a bad co-signature is refused, not deferred
        verify(tampered, validator, revocation=never)
    assert info.value.code == "signature-invalid" and never.seen == []


# --------------------------------------------------------------------------- wrapping


def _co_signature_elsewhere(where: Callable[[etree._Element], etree._Element]) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        where(root).append(co_signature(root))
    return change


def _second_holder(root: etree._Element) -> etree._Element:
    return etree.SubElement(root, "署名情報")


@pytest.mark.parametrize("attack, expected", [
    (_co_signature_elsewhere(lambda r: r), "signature-wrapping"),  # directly in DataRoot
    (_co_signature_elsewhere(lambda r: r.find("構成情報")), "signature-wrapping"),
    (_co_signature_elsewhere(_second_holder), "signature-wrapping"),
    (_co_signature_elsewhere(lambda r: signatures(r)[0].find(ds("KeyInfo"))), "signature-wrapping"),
    (_co_signature_elsewhere(lambda r: etree.SubElement(r.find("署名情報"), "連署")), "signature-wrapping"),
    (lambda r: r.append(copy.deepcopy(r.find("署名情報"))), "signature-multiple"),  # four signatures
    (lambda r: r.find("署名情報").insert(1, etree.Element("メモ")), "signature-structure"),
    (lambda r: etree.SubElement(co_signature(r), ds("Object")).append(copy.deepcopy(r.find("構成情報"))),
     "signature-wrapping"),  # XSW8 in the co-signature: a second 構成情報
    (lambda r: etree.SubElement(co_signature(r), ds("Object")).append(etree.Element("x")), "signature-structure"),
])
def test_co_signature_wrapping(pki, validator, attack, expected):
    assert refused(edited(package(pki, ["suzuki-hanako"]), attack), validator) == expected


def _co_reference(change: Callable[[etree._Element], None]) -> Callable[[etree._Element], None]:
    return lambda root: change(co_signature(root).find(ds("SignedInfo")))


def _add_reference(uri: str) -> Callable[[etree._Element], None]:
    def add(signed_info: etree._Element) -> None:
        reference = copy.deepcopy(signed_info[-1])
        reference.set("URI", uri)
        signed_info.append(reference)
    return add


@pytest.mark.parametrize("change, expected", [
    (_co_reference(lambda si: si.remove(si[-1])), "signature-reference-missing"),  # hoken.pdf unsigned
    (_co_reference(lambda si: si.remove(si[2])), "signature-reference-missing"),  # #構成情報 unsigned
    (_co_reference(_add_reference("http://evil.example/hoken.pdf")), "signature-reference-unexpected"),
    (_co_reference(_add_reference("hoken.pdf")), "signature-reference-unexpected"),  # twice
])
def test_co_signature_must_reference_the_same_set(pki, validator, change, expected):
    assert refused(edited(package(pki, ["suzuki-hanako"]), change), validator) == expected


def test_co_signer_who_signed_fewer_members_is_refused(pki, validator):
    """Made with the reference signer (validly signed), over the manifest and the form only."""
    data = package(pki, ["suzuki-hanako"])
    members = dict(read_package(data, Limits()).members)
    kousei = _strip_co_signatures(members.pop("kousei.xml"))
    fewer = cosign_package(kousei, {"childcare-01.xml": FORM}, pki.resident("suzuki-hanako").key,
                           pki.resident("suzuki-hanako").cert)
    assert refused(build_package(members, fewer), validator) == "signature-reference-missing"


# --------------------------------------------------------------------------- intake, API, gateway verify


@pytest.fixture
def cosigning_app(app_config):
    return create_app({**app_config, "PROCEDURES": {"childcare-01": {"MAX_SIGNATURES": 2}}})


def post(client, data: bytes):
    return client.post("/api/v1/applications", data=data, content_type=ZIP, headers=AUTH)


def test_api_accepts_a_co_signed_package_where_configured(cosigning_app, make_package, pki):
    client = cosigning_app.test_client()
    resp = post(client, make_package("childcare-01", co_signers=[pki.resident("suzuki-hanako")]))
    assert resp.status_code == 202, resp.get_json()
    assert resp.get_json()["state"] == "queued"
    evidence = client.get(resp.headers["Location"], headers=AUTH).get_json()["evidence"]
    [co] = evidence["co_signatures"]
    assert co["certificate"]["serial"] == format(serial(pki, "suzuki-hanako"), "x")
    assert "subject" not in co["certificate"] and "subject" not in evidence["certificate"]
    assert co["revocation"]["state"] == "good" and co["revocation"]["detail"]["crl_number"] >= 1  # real CRLs
    assert co["signature"]["id"] != evidence["signature"]["id"]
    assert "鈴木" not in json.dumps(evidence, ensure_ascii=False)  # no co-signer's personal data either

    revoked = post(client, make_package("childcare-01", co_signers=[pki.resident("sato-ichiro")]))
    assert (revoked.status_code, revoked.get_json()["code"]) == (400, "revocation-revoked")


def test_api_refuses_a_co_signature_by_default(client, make_package, pki):
    resp = post(client, make_package("childcare-01", co_signers=[pki.resident("suzuki-hanako")]))
    assert (resp.status_code, resp.get_json()["code"]) == (400, "signature-multiple")
    single = client.get("/api/v1/applications/" + post(client, make_package("care-01")).get_json()["arrival_number"],
                        headers=AUTH).get_json()
    assert single["evidence"]["co_signatures"] == []


def test_gateway_verify_lists_co_signers(cosigning_app, make_package, pki):
    pipeline = cosigning_app.extensions["gateway.pipeline"]
    report = inspect_package(pipeline, make_package("childcare-01", co_signers=[pki.resident("suzuki-hanako")]))
    assert report.ok, report.render()
    text = report.render()
    assert "ほかに連署 1 件" in text and "連署 1 (電子署名・証明書・失効確認)" in text
    assert f"シリアル番号 {serial(pki, 'suzuki-hanako'):x}" in text
    assert "sig-" in text and text.count("判定 失効していません") == 2
    single = inspect_package(pipeline, make_package("childcare-01")).render()
    assert "連署" not in single
