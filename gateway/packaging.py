"""The reference package builder and signer (``application-package.md``).

Used by ``gateway sample``, the demo, the tests and the benchmark to produce what a portal
would send: ``kousei.xml`` (構成情報 plus one detached XMLDSig signature in 署名情報, and any
co-signers' signatures beside it), the form, the attachments, zipped.

The signer is hand-written because signxml cannot sign detached references to ZIP members.
It is kept standard on purpose and proven against xmlsec1 and the JDK in the interop tests:
digests and SignedInfo are canonicalized in the context of the whole document, exactly as a
verifier sees them (inclusive C14N of a subtree carries the ancestors' namespaces).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import re
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

from gateway.c14n import canonicalize as c14n_subtree
from gateway.models import Applicant, AttachmentInfo, Manifest

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
C14N_INCLUSIVE = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
C14N_EXCLUSIVE = "http://www.w3.org/2001/10/xml-exc-c14n#"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
MANIFEST_ID = "構成情報"
KOUSEI = "kousei.xml"
ZIP_TIMESTAMP = (2000, 1, 1, 0, 0, 0)
"""Fixed member timestamp so the same inputs always give the same ZIP bytes."""

C14n = Literal["inclusive", "exclusive"]
UriStyle = Literal["raw", "percent"]
_C14N_URIS = {"inclusive": C14N_INCLUSIVE, "exclusive": C14N_EXCLUSIVE}
# Our own output is trusted, but parse it the safe way anyway: no DTD, no entities, no network.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_blank_text=False)


def manifest_uri(uri_style: UriStyle = "raw") -> str:
    """``#構成情報`` raw, or percent-encoded UTF-8 as some e-Gov tooling writes it."""
    return "#" + (MANIFEST_ID if uri_style == "raw" else quote(MANIFEST_ID, safe=""))


# --------------------------------------------------------------------------- kousei.xml


def render_manifest(manifest: Manifest) -> bytes:
    """Serialize a :class:`Manifest` as an unsigned ``kousei.xml`` (no default namespace, UTF-8)."""
    root = etree.Element("DataRoot")
    _sub(root, "様式ID", "KOUSEI")
    _sub(root, "様式バージョン", "1.0")
    kousei = etree.SubElement(root, MANIFEST_ID, {"ID": MANIFEST_ID})
    admin = etree.SubElement(kousei, "管理情報")
    applied_at = manifest.applied_at.isoformat(timespec="seconds") if manifest.applied_at else ""
    for tag, text in (("到達番号", manifest.arrival_number), ("手続ID", manifest.procedure_code),
                      ("提出先団体コード", manifest.municipality_code), ("申請種別", manifest.application_kind),
                      ("初回到達番号", manifest.original_arrival_number), ("申請日時", applied_at)):
        _sub(admin, tag, text)
    applicant = etree.SubElement(admin, "申請者情報")
    a = manifest.applicant
    for tag, text in (("氏名", a.name), ("氏名フリガナ", a.name_kana), ("郵便番号", a.postal_code),
                      ("住所", a.address), ("電話番号", a.phone), ("電子メールアドレス", a.email)):
        _sub(applicant, tag, text)
    form = etree.SubElement(kousei, "申請書属性情報")
    _sub(form, "申請書様式ID", manifest.form_id)
    _sub(form, "申請書様式バージョン", manifest.form_version)
    _sub(form, "申請書ファイル名称", manifest.form_filename)
    for att in manifest.attachments:
        node = etree.SubElement(kousei, "添付書類属性情報")
        _sub(node, "添付書類名称", att.title)
        _sub(node, "添付書類ファイル名称", att.filename)
        _sub(node, "メディア型", att.media_type)
    etree.indent(root, space="  ")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(root, encoding="UTF-8") + b"\n"


def _sub(parent: etree._Element, tag: str, text: str) -> etree._Element:
    node = etree.SubElement(parent, tag)
    node.text = text or None  # empty values become <初回到達番号/>, as in the spec example
    return node


def build_manifest(*, arrival_number: str, procedure_code: str, municipality_code: str, form_filename: str,
                   form_version: str = "1", applicant: Applicant, attachments: Sequence[AttachmentInfo] = (),
                   application_kind: str = "新規申請", original_arrival_number: str = "",
                   applied_at: dt.datetime, form_id: str | None = None) -> bytes:
    """The unsigned ``kousei.xml`` for one application (申請書様式ID defaults to the 手続ID)."""
    if applied_at.tzinfo is None:
        raise ValueError("applied_at must carry a time zone (申請日時 is written with its offset)")
    return render_manifest(Manifest(
        arrival_number=arrival_number, procedure_code=procedure_code, municipality_code=municipality_code,
        application_kind=application_kind, original_arrival_number=original_arrival_number,
        applied_at=applied_at, applicant=applicant, form_id=form_id or procedure_code,
        form_version=form_version, form_filename=form_filename, attachments=tuple(attachments)))


# --------------------------------------------------------------------------- signing


def canonicalize(node: etree._Element, c14n: C14n) -> bytes:
    """C14N 1.0 (without comments) of ``node``, as a verifier computes it (:mod:`gateway.c14n`)."""
    return c14n_subtree(node, exclusive=(c14n == "exclusive"))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _ds(parent: etree._Element, tag: str, attrib: Mapping[str, str] | None = None,
        text: str | None = None) -> etree._Element:
    node = etree.SubElement(parent, f"{{{DS_NS}}}{tag}", dict(attrib or {}))
    node.text = text
    return node


def _default_signature_id(doc: etree._Element) -> str:
    applied = doc.findtext(f"{MANIFEST_ID}/管理情報/申請日時") or ""
    digits = re.sub(r"\D", "", applied[:19])
    return f"sig-{digits or '1'}"


def sign_package(kousei_xml: bytes, members: Mapping[str, bytes], key: rsa.RSAPrivateKey,
                 cert: x509.Certificate, *, c14n: C14n = "inclusive", uri_style: UriStyle = "raw",
                 signature_id: str | None = None) -> bytes:
    """Return ``kousei_xml`` with one detached XMLDSig signature in a trailing ``<署名情報>``.

    References: the manifest element (one C14N transform) and every member by name (digest of
    the raw bytes, no transform). ``signature_id`` defaults to ``sig-<申請日時 digits>``.
    """
    doc = _parse_kousei(kousei_xml, members)
    if doc.find("署名情報") is not None:
        raise ValueError("kousei.xml is signed already (co-signers sign with cosign_package)")
    doc[-1].tail = "\n  "  # 署名情報 goes last, after 構成情報
    holder = etree.SubElement(doc, "署名情報")
    holder.text, holder.tail = "\n    ", "\n"
    _append_signature(holder, members, key, cert, c14n=c14n, uri_style=uri_style,
                      signature_id=signature_id or _default_signature_id(doc))
    return _serialize(doc)


def cosign_package(kousei_xml: bytes, members: Mapping[str, bytes], key: rsa.RSAPrivateKey,
                   cert: x509.Certificate, *, c14n: C14n = "inclusive", uri_style: UriStyle = "raw",
                   signature_id: str | None = None) -> bytes:
    """Return the signed ``kousei_xml`` with a co-signer's signature added to its ``<署名情報>``.

    The co-signature is made exactly as :func:`sign_package` makes the applicant's (the same
    references: 構成情報 and every member; it covers no other signature, so co-signers sign in
    any order). It is accepted only where the procedure's policy allows that many signatures.
    ``signature_id`` defaults to ``sig-<申請日時 digits>-<its position>``.
    """
    doc = _parse_kousei(kousei_xml, members)
    holder = doc.find("署名情報")
    if holder is None or not len(holder):
        raise ValueError("kousei.xml needs the applicant's signature first (sign_package)")
    holder[-1].tail = "\n    "
    _append_signature(holder, members, key, cert, c14n=c14n, uri_style=uri_style,
                      signature_id=signature_id or f"{_default_signature_id(doc)}-{len(holder) + 1}")
    return _serialize(doc)


def _parse_kousei(kousei_xml: bytes, members: Mapping[str, bytes]) -> etree._Element:
    if KOUSEI in members:
        raise ValueError("members must not contain kousei.xml itself")
    doc = etree.fromstring(kousei_xml, _PARSER)
    if doc.find(MANIFEST_ID) is None:
        raise ValueError("kousei.xml needs a 構成情報 element")
    return doc


def _serialize(doc: etree._Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(doc, encoding="UTF-8") + b"\n"


def _append_signature(holder: etree._Element, members: Mapping[str, bytes], key: rsa.RSAPrivateKey,
                      cert: x509.Certificate, *, c14n: C14n, uri_style: UriStyle, signature_id: str) -> None:
    """Add one signature as the last child of ``holder`` (in its document), then sign it."""
    manifest = holder.getparent().find(MANIFEST_ID)
    algorithm = _C14N_URIS[c14n]
    # Build the whole signature in place first, so everything is canonicalized in context.
    signature = etree.SubElement(holder, f"{{{DS_NS}}}Signature", {"Id": signature_id}, nsmap={None: DS_NS})
    signed_info = _ds(signature, "SignedInfo")
    _ds(signed_info, "CanonicalizationMethod", {"Algorithm": algorithm})
    _ds(signed_info, "SignatureMethod", {"Algorithm": RSA_SHA256})
    ref = _ds(signed_info, "Reference", {"URI": manifest_uri(uri_style)})
    _ds(_ds(ref, "Transforms"), "Transform", {"Algorithm": algorithm})
    _ds(ref, "DigestMethod", {"Algorithm": SHA256})
    _ds(ref, "DigestValue", text=_b64(hashlib.sha256(canonicalize(manifest, c14n)).digest()))
    for name, data in members.items():
        ref = _ds(signed_info, "Reference", {"URI": name})
        _ds(ref, "DigestMethod", {"Algorithm": SHA256})
        _ds(ref, "DigestValue", text=_b64(hashlib.sha256(data).digest()))
    signature_value = _ds(signature, "SignatureValue")
    x509_data = _ds(_ds(signature, "KeyInfo"), "X509Data")
    _ds(x509_data, "X509Certificate", text=_b64(cert.public_bytes(serialization.Encoding.DER)))
    etree.indent(signature, space="  ", level=2)
    signature.tail = "\n  "

    signed_info_c14n = canonicalize(signed_info, c14n)
    signature_value.text = _b64(key.sign(signed_info_c14n, padding.PKCS1v15(), hashes.SHA256()))


# --------------------------------------------------------------------------- the ZIP


def build_package(members: Mapping[str, bytes], kousei_xml: bytes) -> bytes:
    """Zip ``kousei.xml`` (first) and the members: deflate, UTF-8 names, fixed timestamps."""
    if KOUSEI in members:
        raise ValueError("members must not contain kousei.xml itself")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in ((KOUSEI, kousei_xml), *members.items()):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, whatever the host, for identical bytes everywhere
            info.external_attr = 0o100644 << 16
            if not name.isascii():
                info.flag_bits |= 0x800  # zipfile also sets it; be explicit, the spec demands it
            archive.writestr(info, data)
    return buffer.getvalue()


def make_signed_package(form_xml: bytes, *, form_filename: str, procedure_code: str, municipality_code: str,
                        arrival_number: str, applicant: Applicant | None = None, signer: Any,
                        attachments: Mapping[str, tuple[str, str, bytes]] | None = None,
                        applied_at: dt.datetime | None = None, application_kind: str = "新規申請",
                        original_arrival_number: str = "", form_version: str = "1",
                        co_signers: Sequence[Any] = (), **sign_options: Any) -> bytes:
    """One complete package ZIP.

    ``signer``: a :class:`gateway.testpki.TestResident`, a ``(key, cert)`` pair, or ``None`` for
    an unsigned package (no 署名情報). ``co_signers``: more of the same, whose signatures follow
    the applicant's in 署名情報 (for procedures whose policy allows co-signatures).
    ``attachments``: filename -> (添付書類名称, media type, bytes). ``applicant`` defaults to the
    resident's own data. ``sign_options`` go to :func:`sign_package` (``c14n``, ``uri_style``,
    ``signature_id``); the co-signatures use the same ``c14n`` and ``uri_style``.
    """
    if co_signers and signer is None:
        raise ValueError("co-signers sign beside the applicant: a signer is required")
    attachments = attachments or {}
    if applicant is None:
        if not hasattr(signer, "applicant"):
            raise ValueError("applicant is required unless the signer is a TestResident")
        applicant = signer.applicant
    jst = dt.timezone(dt.timedelta(hours=9))
    kousei = build_manifest(
        arrival_number=arrival_number, procedure_code=procedure_code, municipality_code=municipality_code,
        form_filename=form_filename, form_version=form_version, applicant=applicant,
        attachments=[AttachmentInfo(title, name, media) for name, (title, media, _) in attachments.items()],
        application_kind=application_kind, original_arrival_number=original_arrival_number,
        applied_at=applied_at or dt.datetime.now(jst).replace(microsecond=0))
    members = {form_filename: form_xml, **{name: data for name, (_, _, data) in attachments.items()}}
    if signer is not None:
        kousei = sign_package(kousei, members, *_key_and_cert(signer), **sign_options)
    co_options = {k: v for k, v in sign_options.items() if k != "signature_id"}
    for co_signer in co_signers:
        kousei = cosign_package(kousei, members, *_key_and_cert(co_signer), **co_options)
    return build_package(members, kousei)


def _key_and_cert(signer: Any) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A TestResident's key and certificate, or a ``(key, cert)`` pair as given."""
    return (signer.key, signer.cert) if hasattr(signer, "key") else signer
