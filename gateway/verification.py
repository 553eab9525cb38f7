"""Verification: from package bytes to the :class:`~gateway.models.VerifiedPackage` that flows on.

Order (``application-package.md``): read the archive → parse ``kousei.xml`` hardened → check
the signatures' structure (as many as the procedure's policy allows) → trust each certificate
as of arrival → verify each signature with its certificate → revocation of each → parse the
manifest **from the signed element** → members equal the manifest. Only what the signatures
cover leaves this module. No Flask, no database.

Co-signatures (代理人 and 本人): the first ds:Signature is the applicant's, the others the
co-signers'. The policy that allows them is looked up with the 手続ID the unverified 構成情報
claims; every signature covers 構成情報, so once verified the signed 手続ID must be that one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from lxml import etree

from gateway.archive import MANIFEST_MEMBER, RawPackage, read_package
from gateway.errors import (
    PackageError,
    RevocationError,
    RevocationUnknown,
    SignatureError,
)
from gateway.manifest import MANIFEST_TAG, manifest_file_names, parse_manifest
from gateway.mediatypes import attachment_problem
from gateway.models import (
    CertificateInfo,
    Limits,
    Manifest,
    SignaturePolicy,
    VerifiedPackage,
)
from gateway.revocation import NoRevocationChecker, RevocationChecker, RevocationStatus
from gateway.signature import (
    SignatureResult,
    inspect_signature,
    signature_present,
    verify_signature,
)
from gateway.trust import SignerCertificateValidator
from gateway.xmlsafe import parse_xml

IDENTITY_UNVERIFIED = "要本人確認"
"""Flag on an unsigned package a procedure allowed: staff must check the applicant's identity."""
_NO_REVOCATION = NoRevocationChecker()


def verify_package(package: RawPackage | bytes, *, limits: Limits, validator: SignerCertificateValidator,
                   signature_policy_for: Callable[[str], SignaturePolicy], arrival_time: dt.datetime,
                   revocation: RevocationChecker = _NO_REVOCATION,
                   kousei: etree._Element | None = None) -> VerifiedPackage:
    """Verify one package as of ``arrival_time`` (when the gateway first received it).

    :param kousei: The package's ``kousei.xml`` as :func:`~gateway.manifest.parse_kousei` parsed
        it, when the caller has it already (the pipeline peeked the 到達番号 in it), so that it is
        parsed once; parsed here otherwise. Nothing in it is trusted: all of it is checked here.
    :raises GatewayError: a ``package-…``, ``xml-…``, ``signature-…``, ``algorithm-…``,
        ``certificate-…`` or ``municipality-…`` refusal; ``RevocationError`` when revoked;
        ``RevocationUnknown`` (defer, not refuse) when revocation cannot be decided.
    """
    raw = package if isinstance(package, RawPackage) else read_package(package, limits)
    document = kousei if kousei is not None else parse_xml(raw.members[MANIFEST_MEMBER], what=MANIFEST_MEMBER)
    if document.tag != "DataRoot":
        raise PackageError(f"kousei.xml のルート要素は DataRoot です（{document.tag}）",
                           code="package-manifest-structure")
    members = {name: data for name, data in raw.members.items() if name != MANIFEST_MEMBER}
    if not signature_present(document):
        return _unsigned(document, members, signature_policy_for)

    claimed_code = _claimed_procedure_code(document)
    policy = signature_policy_for(claimed_code)
    applicant = inspect_signature(document, members, max_signatures=policy.max_signatures)
    candidates = (applicant, *applicant.co_signatures)
    # Every certificate trusted before any signature math, every signature verified before
    # any revocation data is asked for: a bad co-signature is refused, not deferred.
    signers = [validator.validate(c.certificate, arrival_time, der=c.certificate_der or None) for c in candidates]
    results = [verify_signature(c, certificate=c.certificate, at=arrival_time) for c in candidates]
    statuses = [revocation.check(c.certificate, signer, arrival_time) for c, signer in zip(candidates, signers)]
    _decide_revocation(statuses)

    manifest = parse_manifest(results[0].signed_manifest)
    if manifest.procedure_code != claimed_code \
            or any(parse_manifest(r.signed_manifest) != manifest for r in results[1:]):
        raise SignatureError("署名された手続ID が署名ポリシーの判定に使った手続ID と一致しません",
                             code="signature-wrapping")
    _check_members(manifest, members)
    evidence = _evidence(results[0], signers[0], statuses[0], arrival_time)
    evidence["co_signatures"] = [_signature_evidence(r, s, st) for r, s, st in
                                 zip(results[1:], signers[1:], statuses[1:])]
    return VerifiedPackage(
        manifest=manifest, form_xml=members[manifest.form_filename],
        attachments=MappingProxyType({a.filename: members[a.filename] for a in manifest.attachments}),
        signer=signers[0], co_signers=tuple(signers[1:]), signed=True, flags=(), evidence=evidence)


def _claimed_procedure_code(document: etree._Element) -> str:
    """The 手続ID as the unverified 構成情報 claims it: only to choose the signature policy.

    Whitespace is trimmed as :func:`~gateway.manifest.parse_manifest` trims it, so that the
    signed manifest's code compares equal when nothing was tampered with.
    """
    # document.find(MANIFEST_TAG) and its findtext("管理情報/手続ID"), without ElementPath:
    # the first 手続ID under any 管理情報 of the first 構成情報, in document order.
    for manifest in document.iterchildren(MANIFEST_TAG):
        for admin in manifest.iterchildren("管理情報"):
            for code in admin.iterchildren("手続ID"):
                return (code.text or "").strip(" \t\r\n")
        break
    return ""


def _decide_revocation(statuses: list[RevocationStatus]) -> None:
    """Any signer revoked at arrival: refused. Otherwise any signer undecided: deferred."""
    for index, status in enumerate(statuses):
        if status.state == "revoked":
            whose = "署名用電子証明書" if index == 0 else f"連署者（{index}）の署名用電子証明書"
            raise RevocationError(f"{whose}は到達時点で失効しています", revocation=_status_dict(status))
    unknown = [status for status in statuses if status.state == "unknown"]
    if unknown:
        revocation = _status_dict(unknown[0])
        # The deferred application waits for every partition any of its signers needs.
        awaiting = [p for status in unknown for p in status.awaiting]
        if len(unknown) > 1 and awaiting:
            revocation["detail"]["awaiting"] = list(dict.fromkeys(awaiting))
        raise RevocationUnknown("失効情報を確認できないため検証を保留しました", revocation=revocation,
                                code=str(unknown[0].detail.get("reason") or RevocationUnknown.code))


def _unsigned(document: Any, members: dict[str, bytes],
              signature_policy_for: Callable[[str], SignaturePolicy]) -> VerifiedPackage:
    found = document.findall(MANIFEST_TAG)
    if len(found) != 1:
        raise PackageError("構成情報 は一つだけ置きます", code="package-manifest-structure")
    # Nothing is signed: the procedure code only decides whether that is acceptable.
    manifest = parse_manifest(found[0])
    if not signature_policy_for(manifest.procedure_code).unsigned_allowed:
        raise SignatureError("電子署名がありません（この手続は署名が必要です）", code="signature-missing")
    _check_members(manifest, members)
    return VerifiedPackage(
        manifest=manifest, form_xml=members[manifest.form_filename],
        attachments=MappingProxyType({a.filename: members[a.filename] for a in manifest.attachments}),
        signer=None, signed=False, flags=(IDENTITY_UNVERIFIED,),
        evidence={"signed": False, "signature": None, "certificate": None, "revocation": None,
                  "reason": "署名なし（手続の署名ポリシーで許可）"})


def _check_members(manifest: Manifest, members: Mapping[str, bytes]) -> None:
    named = manifest_file_names(manifest)
    missing = [name for name in named if name not in members]
    if missing:
        raise PackageError(f"構成情報 に記載されたファイルがありません: {', '.join(missing)}",
                           code="package-manifest-missing-member")
    unlisted = [name for name in members if name not in named]
    if unlisted:
        raise PackageError(f"構成情報 に記載のないファイルがあります: {', '.join(unlisted)}",
                           code="package-manifest-unlisted-member")
    for attachment in manifest.attachments:
        problem = attachment_problem(attachment.media_type, members[attachment.filename])
        if problem:
            raise PackageError(f"添付書類の内容がメディア型（{attachment.media_type}）と一致しません: "
                               f"{attachment.filename}: {problem}", code="package-attachment-type")


def _evidence(result: SignatureResult, signer: CertificateInfo, status: RevocationStatus,
              arrival_time: dt.datetime) -> dict[str, Any]:
    return {"signed": True, "verified_as_of": arrival_time.isoformat(),
            **_signature_evidence(result, signer, status)}


def _signature_evidence(result: SignatureResult, signer: CertificateInfo,
                        status: RevocationStatus) -> dict[str, Any]:
    """One signature's evidence: the applicant's at the top level, each co-signer's in a list."""
    return {
        "signature": result.evidence(),
        "certificate": {
            "subject": signer.subject, "issuer": signer.issuer, "serial": format(signer.serial_number, "x"),
            "not_before": signer.not_before.isoformat(), "not_after": signer.not_after.isoformat(),
            "sha256": hashlib.sha256(signer.der).hexdigest(), "anchor_sha256": signer.anchor_fingerprint,
            "policies": list(signer.policy_oids), "test_root": signer.test_root,
        },
        "revocation": _status_dict(status),
    }


def _status_dict(status: RevocationStatus) -> dict[str, Any]:
    return {"state": status.state, "source": status.source, "detail": dict(status.detail)}
