"""Verification: from package bytes to the :class:`~gateway.models.VerifiedPackage` that flows on.

Order (``application-package.md``): read the archive → parse ``kousei.xml`` hardened → check
the signature's structure → trust the certificate as of arrival → verify the signature with
that certificate → revocation → parse the manifest **from the signed element** → members
equal the manifest. Only what the signature covers leaves this module. No Flask, no database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from lxml import etree

from gateway.archive import MANIFEST_MEMBER, RawPackage, read_package
from gateway.errors import PackageError, RevocationError, RevocationUnknown, SignatureError
from gateway.manifest import MANIFEST_TAG, manifest_file_names, parse_manifest
from gateway.mediatypes import attachment_problem
from gateway.models import CertificateInfo, Limits, Manifest, SignaturePolicy, VerifiedPackage
from gateway.signature import SignatureResult, inspect_signature, signature_present, verify_signature
from gateway.trust import NoRevocationChecker, RevocationChecker, RevocationStatus, SignerCertificateValidator
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

    candidate = inspect_signature(document, members)
    signer = validator.validate(candidate.certificate, arrival_time)  # trust before signature math
    result = verify_signature(candidate, certificate=candidate.certificate, at=arrival_time)
    status = revocation.check(candidate.certificate, signer, arrival_time)
    if status.state == "revoked":
        raise RevocationError("署名用電子証明書は到達時点で失効しています", revocation=_status_dict(status))
    if status.state == "unknown":
        raise RevocationUnknown("失効情報を確認できないため検証を保留しました", revocation=_status_dict(status),
                                code=str(status.detail.get("reason") or RevocationUnknown.code))

    manifest = parse_manifest(result.signed_manifest)
    _check_members(manifest, members)
    return VerifiedPackage(
        manifest=manifest, form_xml=members[manifest.form_filename],
        attachments=MappingProxyType({a.filename: members[a.filename] for a in manifest.attachments}),
        signer=signer, signed=True, flags=(),
        evidence=_evidence(result, signer, status, arrival_time))


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
    return {
        "signed": True,
        "verified_as_of": arrival_time.isoformat(),
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
