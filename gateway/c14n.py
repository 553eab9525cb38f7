"""Canonical XML 1.0 of a subtree, as every other XMLDSig implementation computes it.

Not ``etree.tostring(node, method="c14n")``: with lxml 6.1 / libxml2 2.14 the inclusive C14N
of an apex whose default namespace is declared on an ancestor emits a spurious ``xmlns=""``
on grandchildren (SignedInfo under ``<Signature xmlns=ds>``), which xmlsec1 and the JDK
rightly do not. Serialising the subtree (lxml writes every in-scope namespace on it) and
canonicalising the re-parsed copy as a whole document is correct; for inclusive C14N the
``xml:*`` attributes inherited from ancestors are added to the apex, as C14N 1.0 requires.
Used by the signer (:mod:`gateway.packaging`) and the verifier (:mod:`gateway.signxml_adapter`).
"""

from __future__ import annotations

from lxml import etree

from gateway.xmlsafe import hardened_parser

_XML_NS = "{http://www.w3.org/XML/1998/namespace}"


def canonicalize(node: etree._Element, *, exclusive: bool) -> bytes:
    """C14N 1.0 without comments of ``node`` and its descendants."""
    copy = etree.fromstring(etree.tostring(node, encoding="UTF-8", with_tail=False), hardened_parser())
    if not exclusive:
        for ancestor in node.iterancestors():
            for name, value in ancestor.attrib.items():
                if name.startswith(_XML_NS) and name not in copy.attrib:
                    copy.set(name, value)
    return etree.tostring(copy.getroottree(), method="c14n", exclusive=exclusive, with_comments=False)
