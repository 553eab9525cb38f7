"""Builders for the signature cases: byte-level tampering and signature wrapping (XSW).

Each builder takes a :class:`~tests.hostile.kit.Kit` and returns the package bytes. "resigned"
builders re-sign the edited kousei.xml with the resident's own key: the signature is valid,
only the structure is hostile (the attacker is a card holder, or has the card).
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Callable

from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from tests.hostile.kit import FORM_NAME, XML_NS, Kit, ds, edited, references, resign, rezip, signature, split

Builder = Callable[[Kit], bytes]
ATTACKER = "悪意　太郎"


# --------------------------------------------------------------------------- byte-level tampering


def _change_member(name_of: Callable[[dict[str, bytes]], str], change: Callable[[bytes], bytes]) -> Builder:
    def build(kit: Kit) -> bytes:
        kousei, members = kit.parts()
        name = name_of(members)
        members[name] = change(members[name])
        return rezip(kousei, members)
    return build


def _form(members: dict[str, bytes]) -> str:
    return FORM_NAME


def _attachment(members: dict[str, bytes]) -> str:
    return next(n for n in members if n.endswith(".pdf"))


def _one_digit(data: bytes) -> bytes:
    found = re.search(rb">(\d)", data)
    assert found, "the form has no element starting with a digit"
    at = found.start(1)
    return data[:at] + str((int(data[at:at + 1]) + 1) % 10).encode() + data[at + 1:]


def _flip_last(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


tamper_form_digit = _change_member(_form, _one_digit)
tamper_form_appended = _change_member(_form, lambda d: d + b"<!-- unsigned -->\n")
tamper_attachment_bit = _change_member(_attachment, _flip_last)
tamper_attachment_truncated = _change_member(_attachment, lambda d: d[: len(d) // 2])


def _manifest_text(path: str, value: str) -> Builder:
    def change(root: etree._Element) -> None:
        root.find(f"構成情報/{path}").text = value
    return lambda kit: edited(kit, change)


tamper_manifest_name = _manifest_text("管理情報/申請者情報/氏名", ATTACKER)
tamper_manifest_procedure = _manifest_text("管理情報/手続ID", "care-01")
tamper_manifest_media_type = _manifest_text("添付書類属性情報/メディア型", "image/png")


def _flip_signature_value(root: etree._Element) -> None:
    value = signature(root).find(ds("SignatureValue"))
    raw = bytearray(base64.b64decode(value.text))
    raw[len(raw) // 2] ^= 0x01
    value.text = base64.b64encode(bytes(raw)).decode()


def tamper_signature_value(kit: Kit) -> bytes:
    return edited(kit, _flip_signature_value)


def tamper_signature_value_truncated(kit: Kit) -> bytes:
    def change(root: etree._Element) -> None:
        value = signature(root).find(ds("SignatureValue"))
        value.text = base64.b64encode(base64.b64decode(value.text)[:-16]).decode()
    return edited(kit, change)


def tamper_signed_info_digest(kit: Kit) -> bytes:
    """A DigestValue in SignedInfo changed without re-signing: SignedInfo no longer verifies."""
    def change(root: etree._Element) -> None:
        references(root)[0].find(ds("DigestValue")).text = base64.b64encode(b"\0" * 32).decode()
    return edited(kit, change)


def tamper_certificate_swapped(kit: Kit) -> bytes:
    """Another (trusted) resident's certificate under the first resident's signature."""
    other = base64.b64encode(kit.pki.resident("suzuki-hanako").cert.public_bytes(
        Encoding.DER)).decode()

    def change(root: etree._Element) -> None:
        signature(root).find(f"{ds('KeyInfo')}/{ds('X509Data')}/{ds('X509Certificate')}").text = other
    return edited(kit, change)


# --------------------------------------------------------------------------- wrapping (XSW), detached layout


def _claim_id(attribute: str) -> Builder:
    """Another element claims the value 構成情報 under another ID-like attribute name."""
    return lambda kit: edited(kit, lambda r: r.find("様式ID").set(attribute, "構成情報"))


xsw_duplicate_Id = _claim_id("Id")
xsw_duplicate_id = _claim_id("id")
xsw_duplicate_xml_id = _claim_id(f"{{{XML_NS}}}id")
xsw_duplicate_foreign_ID = _claim_id("{urn:attacker}ID")


def _evil_manifest(root: etree._Element, keep_id: bool) -> etree._Element:
    evil = copy.deepcopy(root.find("構成情報"))
    if not keep_id:
        evil.attrib.pop("ID")
    evil.find("管理情報/申請者情報/氏名").text = ATTACKER
    return evil


def xsw_second_manifest_first(kit: Kit) -> bytes:
    """XSW3: an edited copy (no ID) before the signed 構成情報, for "first match" readers."""
    def change(root: etree._Element) -> None:
        root.insert(list(root).index(root.find("構成情報")), _evil_manifest(root, keep_id=False))
    return edited(kit, change)


def xsw_second_manifest_same_id(kit: Kit) -> bytes:
    """A second 構成情報 with the same ID="構成情報", after the signature."""
    return edited(kit, lambda r: r.append(_evil_manifest(r, keep_id=True)))


def xsw_original_renamed(kit: Kit) -> bytes:
    """XSW5: the signed 構成情報 edited in place with its ID renamed; the pristine copy in 署名情報."""
    def change(root: etree._Element) -> None:
        pristine = copy.deepcopy(root.find("構成情報"))
        original = root.find("構成情報")
        original.set("ID", "x")
        original.find("管理情報/申請者情報/氏名").text = ATTACKER
        root.find("署名情報").append(pristine)
    return edited(kit, change)


def xsw_manifest_wrapped(kit: Kit) -> bytes:
    """XSW4: an edited 構成情報 (no ID) that contains the signed original."""
    def change(root: etree._Element) -> None:
        original = root.find("構成情報")
        evil = _evil_manifest(root, keep_id=False)
        root.replace(original, evil)
        evil.append(original)
    return edited(kit, change)


def xsw_pristine_in_object(kit: Kit) -> bytes:
    """XSW8: the pristine 構成情報 in ds:Signature/ds:Object; the outer one edited."""
    def change(root: etree._Element) -> None:
        etree.SubElement(signature(root), ds("Object")).append(copy.deepcopy(root.find("構成情報")))
        root.find("構成情報/管理情報/申請者情報/氏名").text = ATTACKER
    return edited(kit, change)


def xsw_object_resigned(kit: Kit) -> bytes:
    """A ds:Object in a validly re-signed signature (no second 構成情報)."""
    def change(root: etree._Element) -> None:
        etree.SubElement(etree.SubElement(signature(root), ds("Object")), "メモ").text = "x"
    return edited(kit, change, resign_with=kit.resident.key)


def xsw_ds_manifest_resigned(kit: Kit) -> bytes:
    """ds:Object/ds:Manifest referencing a member: a second layer of references signxml does not check."""
    def change(root: etree._Element) -> None:
        manifest = etree.SubElement(etree.SubElement(signature(root), ds("Object")), ds("Manifest"))
        manifest.append(copy.deepcopy(references(root)[-1]))
    return edited(kit, change, resign_with=kit.resident.key)


def xsw_second_signature(kit: Kit) -> bytes:
    """A second ds:Signature (an attacker's, validly made with another resident's key) first in 署名情報."""
    other = kit.pki.resident("suzuki-hanako")

    def change(root: etree._Element) -> None:
        second = copy.deepcopy(signature(root))
        root.find("署名情報").insert(0, second)
        cert = base64.b64encode(other.cert.public_bytes(
            Encoding.DER)).decode()
        second.find(f"{ds('KeyInfo')}/{ds('X509Data')}/{ds('X509Certificate')}").text = cert
        resign(root, other.key, split(kit.package())[1], which=second)
    return edited(kit, change)


def xsw_second_signature_holder(kit: Kit) -> bytes:
    return edited(kit, lambda r: r.append(copy.deepcopy(r.find("署名情報"))))


def xsw_signature_moved_out(kit: Kit) -> bytes:
    return edited(kit, lambda r: r.append(signature(r)))


def xsw_signature_in_manifest(kit: Kit) -> bytes:
    return edited(kit, lambda r: r.find("構成情報").append(signature(r)))


def xsw_holder_before_manifest(kit: Kit) -> bytes:
    return edited(kit, lambda r: r.insert(0, r.find("署名情報")))


def signature_removed(kit: Kit) -> bytes:
    return edited(kit, lambda r: r.find("署名情報").remove(signature(r)))


def unsigned_package(kit: Kit) -> bytes:
    """No 署名情報 at all, for a procedure that requires a signature."""
    return kit.package(signed=False)
