"""Builders for the SignedInfo and KeyInfo cases: references, transforms, algorithms, KeyInfo.

Each builder takes a :class:`~tests.hostile.kit.Kit` and returns the package bytes. Most are
re-signed with the resident's own key (``resign``): the signature is valid, only what it
declares is hostile, so the gateway must refuse it for that reason and no other.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from tests.hostile.certs import key
from tests.hostile.kit import DS, Kit, ds, edited, references, resign, rezip, serialize, signature, signed_info

Builder = Callable[[Kit], bytes]


# --------------------------------------------------------------------------- references


def _add_reference(uri: str | None) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        reference = copy.deepcopy(references(root)[-1])
        reference.attrib.pop("URI")
        if uri is not None:
            reference.set("URI", uri)
        signed_info(root).append(reference)
    return change


def extra_reference(uri_of: Callable[[Kit], str | None]) -> Builder:
    """One more Reference, validly re-signed: the gateway must refuse it before resolving it."""
    return lambda kit: edited(kit, _add_reference(uri_of(kit)), resign_with=kit.resident.key)


def reference_dropped(index: int) -> Builder:
    """Reference ``index`` removed from SignedInfo, validly re-signed."""
    def change(root: etree._Element) -> None:
        signed_info(root).remove(references(root)[index])
    return lambda kit: edited(kit, change, resign_with=kit.resident.key)


def unreferenced_member(kit: Kit) -> bytes:
    """A member added to the archive that neither the references nor 構成情報 name."""
    kousei, members = kit.parts()
    members["追加書類.pdf"] = b"%PDF-1.4\n% unsigned\n"
    return rezip(kousei, members)


def referenced_member_missing(kit: Kit) -> bytes:
    """A signed, referenced attachment removed from the archive."""
    kousei, members = kit.parts()
    members.pop(next(n for n in members if n.endswith(".pdf")))
    return rezip(kousei, members)


def member_unlisted_but_signed(kit: Kit) -> bytes:
    """The resident signs (references) a member that 構成情報 does not list."""
    attachments = kit.sample_attachments
    name, (_, _, data) = next(iter(attachments.items()))
    kousei, members = kit.parts(attachments={k: v for k, v in attachments.items() if k != name})
    members[name] = data
    root = etree.fromstring(kousei)
    _add_reference(name)(root)
    resign(root, kit.resident.key, members)
    return rezip(serialize(root), members)


def member_listed_not_present(kit: Kit) -> bytes:
    """構成情報 names an attachment the archive lacks; the signature covers what is there."""
    attachments = kit.sample_attachments
    missing = next(iter(attachments))
    kousei, members = kit.parts()
    members.pop(missing)
    root = etree.fromstring(kousei)
    signed_info(root).remove(next(r for r in references(root) if r.get("URI") == missing))
    resign(root, kit.resident.key, members)
    return rezip(serialize(root), members)


# --------------------------------------------------------------------------- transforms and algorithms


def _set_algorithm(path: str, algorithm: str, index: int = 0, resign: bool = False) -> Builder:
    def change(root: etree._Element) -> None:
        root.xpath(path, namespaces={"ds": DS})[index].set("Algorithm", algorithm)
    return lambda kit: edited(kit, change, resign_with=kit.resident.key if resign else None)


MANIFEST_TRANSFORM = "//ds:Reference[1]/ds:Transforms/ds:Transform"
SIGNATURE_METHOD = "//ds:SignedInfo/ds:SignatureMethod"
C14N_METHOD = "//ds:SignedInfo/ds:CanonicalizationMethod"


def transform(algorithm: str, resign: bool = True) -> Builder:
    return _set_algorithm(MANIFEST_TRANSFORM, algorithm, resign=resign)


def xslt_reading_files(kit: Kit) -> bytes:
    """An XSLT transform whose stylesheet would read a local file and fetch a URL (never run)."""
    def change(root: etree._Element) -> None:
        node = root.xpath(MANIFEST_TRANSFORM, namespaces={"ds": DS})[0]
        node.set("Algorithm", "http://www.w3.org/TR/1999/REC-xslt-19991116")
        xsl = "http://www.w3.org/1999/XSL/Transform"
        sheet = etree.SubElement(node, f"{{{xsl}}}stylesheet", version="1.0", nsmap={"xsl": xsl})
        template = etree.SubElement(sheet, f"{{{xsl}}}template", match="/")
        etree.SubElement(template, f"{{{xsl}}}copy-of", select=f"document('{kit.secret_file}')")
        etree.SubElement(template, f"{{{xsl}}}copy-of", select=f"document('{kit.external}/xslt')")
    return edited(kit, change, resign_with=kit.resident.key)


def xpath_transform_expression(kit: Kit) -> bytes:
    def change(root: etree._Element) -> None:
        node = root.xpath(MANIFEST_TRANSFORM, namespaces={"ds": DS})[0]
        node.set("Algorithm", "http://www.w3.org/TR/1999/REC-xpath-19991116")
        etree.SubElement(node, ds("XPath")).text = "count(//. | //@* | //namespace::*) > 0"
    return edited(kit, change, resign_with=kit.resident.key)


def transform_on_member(kit: Kit) -> bytes:
    def change(root: etree._Element) -> None:
        refs = references(root)
        refs[1].insert(0, copy.deepcopy(refs[0].find(ds("Transforms"))))
    return edited(kit, change, resign_with=kit.resident.key)


def hmac_output_length(kit: Kit) -> bytes:
    """hmac-sha1 truncated to 8 bits (CVE-2009-0217)."""
    def change(root: etree._Element) -> None:
        method = signed_info(root).find(ds("SignatureMethod"))
        method.set("Algorithm", "http://www.w3.org/2000/09/xmldsig#hmac-sha1")
        etree.SubElement(method, ds("HMACOutputLength")).text = "8"
    return edited(kit, change)


def algorithm(path: str, uri: str, index: int = 0, resign: bool = False) -> Builder:
    return _set_algorithm(path, uri, index, resign)


# --------------------------------------------------------------------------- KeyInfo


def _key_info(root: etree._Element) -> etree._Element:
    return signature(root).find(ds("KeyInfo"))


def _x509_data(root: etree._Element) -> etree._Element:
    return _key_info(root).find(ds("X509Data"))


def _add_key_value(key_info: etree._Element, public_key: rsa.RSAPublicKey) -> None:
    numbers = public_key.public_numbers()
    value = etree.SubElement(etree.SubElement(key_info, ds("KeyValue")), ds("RSAKeyValue"))
    etree.SubElement(value, ds("Modulus")).text = base64.b64encode(
        numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")).decode()
    etree.SubElement(value, ds("Exponent")).text = "AQAB"


def key_value_next_to_x509(kit: Kit) -> bytes:
    """An attacker's RSAKeyValue next to the resident's certificate (validly re-signed)."""
    return edited(kit, lambda r: _add_key_value(_key_info(r), key("keyvalue").public_key()),
                  resign_with=kit.resident.key)


def key_value_only(kit: Kit) -> bytes:
    """X509Data replaced by the attacker's KeyValue, signed with the attacker's key."""
    def change(root: etree._Element) -> None:
        _key_info(root).remove(_x509_data(root))
        _add_key_value(_key_info(root), key("keyvalue").public_key())
    return edited(kit, change, resign_with=key("keyvalue"))


def retrieval_method(kit: Kit) -> bytes:
    return edited(kit, lambda r: etree.SubElement(_key_info(r), ds("RetrievalMethod"), URI=f"{kit.external}/key"))


def two_certificates(kit: Kit) -> bytes:
    return edited(kit, lambda r: _x509_data(r).append(copy.deepcopy(_x509_data(r)[0])))


def no_certificate(kit: Kit) -> bytes:
    return edited(kit, lambda r: _x509_data(r).remove(_x509_data(r)[0]))


def garbage_certificate(kit: Kit) -> bytes:
    return edited(kit, lambda r: setattr(_x509_data(r)[0], "text", base64.b64encode(b"\x30\x82garbage").decode()))


def issuer_serial_mismatch(kit: Kit) -> bytes:
    def change(root: etree._Element) -> None:
        block = etree.SubElement(_x509_data(root), ds("X509IssuerSerial"))
        etree.SubElement(block, ds("X509IssuerName")).text = "CN=attacker"
        etree.SubElement(block, ds("X509SerialNumber")).text = "12345"
    return edited(kit, change)
