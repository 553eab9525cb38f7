"""The detached XMLDSig of ``kousei.xml`` (``application-package.md``, ``security.md`` §1-2).

Two steps, so the certificate is trusted before any signature math is:

1. :func:`inspect_signature` enforces the structure signxml does not: one ``ds:Signature`` at
   ``DataRoot/署名情報`` (or, where the procedure's policy allows co-signatures, up to
   ``max_signatures`` siblings there, each by another certificate), ``構成情報/@ID`` the only
   ID, each signature's reference set equal to {``#構成情報``} ∪ {every other member},
   allowed algorithms and transforms only, no ``ds:Object``/``ds:Manifest``/``KeyValue``/
   ``RetrievalMethod``, one ``X509Certificate``. It returns the (unverified) certificates for
   :mod:`gateway.trust`.
2. :func:`verify_signature` runs signxml's ``XMLVerifier`` on one signature with
   ``x509_cert=`` the certificate trust accepted (signxml's own chain check applies a web-PKI
   profile that refuses JPKI leaves), restricted algorithms, the location pinned and one
   expected reference per member. Only signxml's verified output (the canonical 構成情報)
   leaves this module.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from cryptography import x509
from lxml import etree
from signxml import (
    InvalidCertificate,
    InvalidDigest,
    InvalidInput,
    InvalidSignature,
    SignatureConfiguration,
)
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod

from gateway.errors import AlgorithmError, CertificateError, SignatureError, XmlError
from gateway.signxml_adapter import DetachedVerifier, IdIndex, VerifiedReference, _ds, fragment
from gateway.xmlsafe import hardened_parser

EXC_C14N_NS = "http://www.w3.org/2001/10/xml-exc-c14n#"
XML_NS = "http://www.w3.org/XML/1998/namespace"
MANIFEST_ID = "構成情報"
SIGNATURE_HOLDER = "署名情報"
C14N_METHODS = frozenset({CanonicalizationMethod.CANONICAL_XML_1_0.value,
                          CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value})
SIGNATURE_METHODS = frozenset({SignatureMethod.RSA_SHA256, SignatureMethod.RSA_SHA384, SignatureMethod.RSA_SHA512})
DIGEST_METHODS = frozenset({DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512})
_SIGNATURE_METHOD_URIS = frozenset(m.value for m in SIGNATURE_METHODS)
_DIGEST_METHOD_URIS = frozenset(m.value for m in DIGEST_METHODS)
_MANIFEST_URI = f"#{MANIFEST_ID}"
# Clark names, spelled once: the checks below run on every package.
(_SIGNATURE, _SIGNED_INFO, _SIGNATURE_VALUE, _KEY_INFO, _OBJECT, _MANIFEST, _C14N_METHOD, _SIGNATURE_METHOD,
 _REFERENCE, _TRANSFORMS, _TRANSFORM, _DIGEST_METHOD, _DIGEST_VALUE, _KEY_NAME, _X509_DATA, _X509_CERTIFICATE,
 _X509_ISSUER_SERIAL, _X509_SERIAL_NUMBER) = (_ds(t) for t in (
    "Signature", "SignedInfo", "SignatureValue", "KeyInfo", "Object", "Manifest", "CanonicalizationMethod",
    "SignatureMethod", "Reference", "Transforms", "Transform", "DigestMethod", "DigestValue", "KeyName", "X509Data",
    "X509Certificate", "X509IssuerSerial", "X509SerialNumber"))
_SIGNATURE_CHILDREN = [_SIGNED_INFO, _SIGNATURE_VALUE, _KEY_INFO]
_SIGNED_INFO_HEAD = [_C14N_METHOD, _SIGNATURE_METHOD]
_DIGEST = [_DIGEST_METHOD, _DIGEST_VALUE]
_INCLUSIVE_NAMESPACES = f"{{{EXC_C14N_NS}}}InclusiveNamespaces"
_EXCLUSIVE_C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value


@dataclass(frozen=True)
class SignatureCandidate:
    """A structurally sound signature, nothing verified yet (see :func:`inspect_signature`)."""

    document: etree._Element = field(repr=False)
    certificate: x509.Certificate = field(repr=False)
    """From ``X509Certificate``: untrusted until :mod:`gateway.trust` says otherwise."""
    members: Mapping[str, bytes] = field(repr=False)
    manifest_uri: str
    member_uris: tuple[str, ...]
    signature_id: str | None
    signature_method: str
    c14n_method: str
    index: int = 0
    """Position among the ds:Signature siblings in 署名情報: 0 is the applicant's."""
    co_signatures: tuple[SignatureCandidate, ...] = ()
    """On the applicant's candidate: the co-signers' signatures that follow it, in order."""
    certificate_der: bytes = field(default=b"", repr=False)
    """``certificate`` as the X509Certificate element carries it (DER), for :mod:`gateway.trust`."""
    id_index: IdIndex | None = field(default=None, repr=False, compare=False)
    """The ID-like attributes of ``document``, as the ID rules read them (the verifier's lookup reuses them)."""


@dataclass(frozen=True)
class SignatureResult:
    """What the signature covers, and how it was made."""

    signed_manifest: etree._Element = field(repr=False)
    """The 構成情報 element re-parsed from the canonical bytes the digest covers."""
    certificate: x509.Certificate = field(repr=False)
    signature_method: str
    c14n_method: str
    manifest_reference: VerifiedReference
    member_references: Mapping[str, VerifiedReference]
    signature_id: str | None

    def evidence(self) -> dict[str, Any]:
        """JSON-serialisable record of the signature, for the application's evidence."""
        return {
            "id": self.signature_id,
            "signature_method": self.signature_method,
            "c14n_method": self.c14n_method,
            "manifest": self.manifest_reference.as_dict(),
            "members": {name: ref.as_dict() for name, ref in self.member_references.items()},
        }


# --------------------------------------------------------------------------- step 1: structure


def signature_present(document: etree._Element) -> bool:
    """Whether the package claims to be signed (a 署名情報 or any ds:Signature)."""
    return next(document.iterchildren(SIGNATURE_HOLDER), None) is not None \
        or next(document.iter(_SIGNATURE), None) is not None


def inspect_signature(document: etree._Element, members: Mapping[str, bytes], *,
                      max_signatures: int = 1) -> SignatureCandidate:
    """Check the signatures' place and shape against the spec; return the applicant's.

    ``document`` is the parsed ``kousei.xml`` (``DataRoot``), ``members`` every other member,
    ``max_signatures`` what the procedure's policy allows (1 unless it allows co-signatures).
    The first ds:Signature is the applicant's; the co-signers' follow it as siblings and are
    returned in its ``co_signatures``, each checked exactly as the first.

    :raises SignatureError: ``signature-multiple`` beyond ``max_signatures``,
        ``signature-duplicate-signer`` when one certificate signed twice, and every refusal
        a single signature can meet.
    """
    signatures = _the_signatures(document, max(1, max_signatures))
    holder = signatures[0].getparent()
    manifest = _the_manifest(document, holder)
    ids = _check_ids(document, manifest)
    if [c for c in holder if isinstance(c.tag, str)] != signatures:
        raise _structure("署名情報 には ds:Signature 以外を置けません")
    frozen_members = MappingProxyType(dict(members))
    candidates = [_candidate(document, signature, index, frozen_members, ids)
                  for index, signature in enumerate(signatures)]
    if len(candidates) == 1:  # nothing to be distinct from
        return candidates[0]
    _check_distinct(candidates)
    return replace(candidates[0], co_signatures=tuple(candidates[1:]))


def _candidate(document: etree._Element, signature: etree._Element, index: int,
               members: Mapping[str, bytes], ids: IdIndex) -> SignatureCandidate:
    if next(signature.iter(etree.Comment, etree.PI), None) is not None:
        raise _structure("ds:Signature の中にコメントや処理命令は置けません")
    signed_info, key_info = _signature_children(signature)
    manifest_uri, member_uris = _check_signed_info(signed_info, members)
    certificate, der = _certificate(key_info)
    return SignatureCandidate(document=document, certificate=certificate, members=members,
                              manifest_uri=manifest_uri, member_uris=member_uris,
                              signature_id=signature.get("Id"), signature_method=signed_info[1].get("Algorithm"),
                              c14n_method=signed_info[0].get("Algorithm"), index=index, certificate_der=der,
                              id_index=ids)


def _the_signatures(document: etree._Element, max_signatures: int) -> list[etree._Element]:
    signatures = list(document.iter(_SIGNATURE))
    if not signatures:
        raise SignatureError("署名情報に電子署名（ds:Signature）がありません", code="signature-missing")
    if len(signatures) > max_signatures:
        allowed = "一つだけ" if max_signatures == 1 else f"この手続では {max_signatures} 個まで"
        raise SignatureError(f"電子署名（ds:Signature）は{allowed}です", code="signature-multiple")
    # Every one a child of the one DataRoot/署名情報: a co-signature anywhere else is a wrapping.
    holder = signatures[0].getparent()
    if holder is None or holder.tag != SIGNATURE_HOLDER or holder.getparent() is not document \
            or len(list(document.iterchildren(SIGNATURE_HOLDER))) != 1 \
            or any(signature.getparent() is not holder for signature in signatures):
        raise SignatureError("電子署名は DataRoot/署名情報 に置く必要があります", code="signature-wrapping")
    return signatures


def _check_distinct(candidates: list[SignatureCandidate]) -> None:
    """Co-signatures: each its own Id (or none), each by another certificate."""
    ids = [c.signature_id for c in candidates if c.signature_id is not None]
    if len(set(ids)) != len(ids):
        raise _structure("ds:Signature の Id が重複しています")
    certificates = [c.certificate for c in candidates]
    if len(set(certificates)) != len(certificates):
        raise SignatureError("同じ署名用電子証明書による電子署名が複数あります",
                             code="signature-duplicate-signer")


def _the_manifest(document: etree._Element, holder: etree._Element) -> etree._Element:
    manifests = list(document.iter(MANIFEST_ID))
    if len(manifests) != 1 or manifests[0].getparent() is not document:
        raise SignatureError("構成情報 は DataRoot の直下に一つだけ置きます", code="signature-wrapping")
    manifest = manifests[0]
    if document.index(manifest) > document.index(holder):
        raise SignatureError("署名情報 は 構成情報 の後に置きます", code="signature-wrapping")
    # Inclusive C14N 1.0 carries xml:* attributes down from ancestors; signxml re-roots the
    # signed subtrees and would lose them, so such a document could never verify. Say why.
    for ancestor in (document, holder):
        if any(name.startswith(f"{{{XML_NS}}}") for name in ancestor.attrib):
            raise _structure(f"{ancestor.tag} に xml:lang などの xml: 属性は置けません")
    return manifest


def _check_ids(document: etree._Element, manifest: etree._Element) -> IdIndex:
    """構成情報/@ID is the only ID; nothing else may claim its value under any ID-like name.

    Returns the index of those attributes, which the verifier's lookup by ID then reads."""
    if manifest.get("ID") != MANIFEST_ID:
        raise SignatureError('構成情報 に ID="構成情報" がありません', code="signature-wrapping")
    # Every attribute named ID, Id or id in any namespace (xml:id included), as signxml's
    # own lookup matches them by local-name().
    ids = IdIndex.of(document)
    for value in ids.attributes:
        element, name = value.getparent(), value.attrname
        if element is manifest and name == "ID":
            continue
        if etree.QName(name).localname == "ID" or value == MANIFEST_ID:
            raise SignatureError(f"{element.tag} の {name} 属性は認められません（署名の差し替え攻撃の疑い）",
                                 code="signature-wrapping")
    return ids


def _signature_children(signature: etree._Element) -> tuple[etree._Element, etree._Element]:
    children = list(signature)
    tags = [c.tag for c in children]
    if _OBJECT in tags or any(signature.iter(_MANIFEST)):
        raise _structure("ds:Object・ds:Manifest は使用できません")
    if tags != _SIGNATURE_CHILDREN:
        raise _structure("ds:Signature は SignedInfo, SignatureValue, KeyInfo の順で構成します")
    return children[0], children[2]


def _check_signed_info(signed_info: etree._Element, members: Mapping[str, bytes]) -> tuple[str, tuple[str, ...]]:
    children = list(signed_info)
    head = [c.tag for c in children[:2]]
    if head != _SIGNED_INFO_HEAD or len(children) < 3 \
            or any(c.tag != _REFERENCE for c in children[2:]):
        raise _structure("SignedInfo は CanonicalizationMethod, SignatureMethod, Reference で構成します")
    _check_c14n(children[0], AlgorithmError, "algorithm-forbidden")
    if children[1].get("Algorithm") not in _SIGNATURE_METHOD_URIS or len(children[1]):
        raise AlgorithmError(f"許可されていない署名方式です: {children[1].get('Algorithm')}",
                             code="algorithm-forbidden")
    manifest_uri: str | None = None
    member_uris: list[str] = []
    for reference in children[2:]:
        uri = reference.get("URI")
        transforms = _check_reference(reference)
        if uri is not None and manifest_uri is None \
                and (uri == _MANIFEST_URI or (uri.startswith("#") and fragment(uri) == MANIFEST_ID)):
            if len(transforms) != 1:
                raise AlgorithmError("構成情報 の参照には C14N の変換を一つだけ指定します",
                                     code="algorithm-transform-forbidden")
            _check_c14n(transforms[0], AlgorithmError, "algorithm-transform-forbidden")
            manifest_uri = uri
        elif uri is not None and uri in members and uri not in member_uris:
            if transforms:
                raise AlgorithmError(f"添付ファイルの参照に変換は指定できません: {uri}",
                                     code="algorithm-transform-forbidden")
            member_uris.append(uri)
        else:
            raise SignatureError(f"想定外の参照先です: {uri!r}", code="signature-reference-unexpected")
    if manifest_uri is None:
        raise SignatureError("構成情報（#構成情報）への参照がありません", code="signature-reference-missing")
    missing = [name for name in members if name not in member_uris]
    if missing:
        raise SignatureError(f"署名の対象になっていないファイルがあります: {', '.join(missing)}",
                             code="signature-reference-missing")
    return manifest_uri, tuple(member_uris)


def _check_reference(reference: etree._Element) -> list[etree._Element]:
    children = list(reference)
    tags = [c.tag for c in children]
    has_transforms = bool(tags) and tags[0] == _TRANSFORMS
    if tags[has_transforms:] != _DIGEST:
        raise _structure("Reference は Transforms, DigestMethod, DigestValue で構成します")
    digest_method = children[has_transforms]
    if digest_method.get("Algorithm") not in _DIGEST_METHOD_URIS or len(digest_method):
        raise AlgorithmError(f"許可されていないダイジェスト方式です: {digest_method.get('Algorithm')}",
                             code="algorithm-forbidden")
    transforms = list(children[0]) if has_transforms else []
    if any(t.tag != _TRANSFORM for t in transforms) or (has_transforms and not transforms):
        raise _structure("Transforms には Transform だけを置きます")
    return transforms


def _check_c14n(node: etree._Element, error: type[SignatureError], code: str) -> None:
    algorithm = node.get("Algorithm")
    if algorithm not in C14N_METHODS \
            or any(not (algorithm == _EXCLUSIVE_C14N and c.tag == _INCLUSIVE_NAMESPACES) for c in node):
        raise error(f"許可されていない正規化・変換です: {algorithm}", code=code)


# Descriptive X509Data siblings other signers write next to the certificate (the JDK, .NET):
# harmless, since only the certificate is used, but checked against it where comparable.
_DESCRIPTIVE_X509 = frozenset(_ds(t) for t in ("X509IssuerSerial", "X509SubjectName", "X509SKI"))


def _certificate(key_info: etree._Element) -> tuple[x509.Certificate, bytes]:
    """The certificate and its DER (what trust records, so it is not encoded again)."""
    data = [c for c in key_info if c.tag != _KEY_NAME]
    if len(data) != 1 or data[0].tag != _X509_DATA:
        raise SignatureError("KeyInfo には X509Data を一つだけ置きます（KeyValue・RetrievalMethod は不可）",
                             code="signature-keyinfo-forbidden")
    x509_data = data[0]
    certs = []
    for c in x509_data:
        if c.tag == _X509_CERTIFICATE:
            certs.append(c)
        elif c.tag not in _DESCRIPTIVE_X509:  # a comment's tag is not a str: refused too
            raise SignatureError("X509Data に置けるのは X509Certificate と識別情報だけです",
                                 code="signature-keyinfo-forbidden")
    if not certs:
        raise CertificateError("署名用電子証明書（X509Certificate）がありません", code="certificate-missing")
    if len(certs) > 1:
        raise CertificateError("X509Certificate は一つだけです", code="certificate-multiple")
    try:
        der = base64.b64decode("".join((certs[0].text or "").split()), validate=True)
        cert = x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError) as exc:
        raise CertificateError("X509Certificate を読み取れません", code="certificate-malformed") from exc
    serial = _first_text(x509_data, _X509_ISSUER_SERIAL, _X509_SERIAL_NUMBER)
    if serial is not None and serial.strip() != str(cert.serial_number):
        raise SignatureError("X509IssuerSerial が証明書と一致しません", code="signature-keyinfo-forbidden")
    return cert, der


def _first_text(element: etree._Element, child: str, grandchild: str) -> str | None:
    """``element.findtext("child/grandchild")``: the text ("" when empty) of the first match in
    document order, None when there is none."""
    for parent in element.iterchildren(child):
        for found in parent.iterchildren(grandchild):
            return found.text or ""
    return None


def _structure(detail: str) -> SignatureError:
    return SignatureError(detail, code="signature-structure")


# --------------------------------------------------------------------------- step 2: signxml


def verify_signature(candidate: SignatureCandidate, *, certificate: x509.Certificate,
                     at: dt.datetime) -> SignatureResult:
    """Verify ``candidate`` with the trusted ``certificate``, validity judged as of ``at``.

    :raises SignatureError: ``signature-invalid``, ``signature-digest-mismatch``, …
    """
    config = SignatureConfiguration(
        location=f"./{SIGNATURE_HOLDER}/", expect_references=1 + len(candidate.member_uris),
        signature_methods=SIGNATURE_METHODS, digest_algorithms=DIGEST_METHODS, verification_time=at)
    verifier = DetachedVerifier(candidate.members, signature_index=candidate.index, id_index=candidate.id_index)
    try:
        verifier.verify(candidate.document, x509_cert=certificate, parser=hardened_parser(),
                        uri_resolver=verifier.resolve_member, id_attribute="ID", expect_config=config)
    except InvalidDigest as exc:
        raise SignatureError("署名対象のデータが改ざんされています（ダイジェスト不一致）",
                             code="signature-digest-mismatch") from exc
    except InvalidCertificate as exc:  # only validity as of ``at``, which trust.py checked already
        expired = "expired" in str(exc)
        raise CertificateError("署名用電子証明書が有効期間外です",
                               code="certificate-expired" if expired else "certificate-not-yet-valid") from exc
    except InvalidSignature as exc:
        raise SignatureError("署名値を検証できません", code="signature-invalid") from exc
    except InvalidInput as exc:
        raise _invalid_input(exc) from exc
    except etree.DocumentInvalid as exc:
        raise _structure("ds:Signature が XML 署名のスキーマに適合しません") from exc
    except etree.XMLSyntaxError as exc:
        raise XmlError("署名の検証中に XML を読み取れません", code="xml-malformed") from exc
    except (ValueError, binascii.Error) as exc:  # e.g. a SignatureValue that is not base64
        raise SignatureError("署名値を検証できません", code="signature-invalid") from exc
    return _result(candidate, certificate, verifier)


def _invalid_input(exc: InvalidInput) -> SignatureError:
    message = str(exc)
    if "forbidden by configuration" in message:
        return AlgorithmError("許可されていないアルゴリズムです", code="algorithm-forbidden")
    if "Ambiguous reference" in message:
        return SignatureError("参照先が一意に定まりません", code="signature-wrapping")
    if "resolve reference" in message:
        return SignatureError("参照先が見つかりません", code="signature-reference-missing")
    return _structure("電子署名の構造が不正です")


def _result(candidate: SignatureCandidate, certificate: x509.Certificate,
            verifier: DetachedVerifier) -> SignatureResult:
    references = {ref.uri: ref for ref in verifier.verified_references}
    manifest = references.pop(candidate.manifest_uri, None)
    # Defence in depth: what signxml verified must be exactly what step 1 checked.
    if manifest is None or sorted(references) != sorted(candidate.member_uris) \
            or len(verifier.verified_references) != 1 + len(candidate.member_uris):
        raise SignatureError("検証した参照が想定と一致しません", code="signature-reference-unexpected")
    signed = manifest.signed_xml
    if signed is None or signed.tag != MANIFEST_ID or signed.get("ID") != MANIFEST_ID:
        raise SignatureError("署名が 構成情報 を対象としていません", code="signature-wrapping")
    return SignatureResult(
        signed_manifest=signed, certificate=certificate, signature_method=candidate.signature_method,
        c14n_method=candidate.c14n_method, manifest_reference=manifest,
        member_references=MappingProxyType({uri: references[uri] for uri in candidate.member_uris}),
        signature_id=candidate.signature_id)
