"""Canonical XML 1.0 of a subtree, as every other XMLDSig implementation computes it.

Not ``etree.tostring(node, method="c14n")``: with lxml 6.1 / libxml2 2.14 the inclusive C14N
of an apex whose default namespace is declared on an ancestor emits a spurious ``xmlns=""``
on grandchildren (SignedInfo under ``<Signature xmlns=ds>``), which xmlsec1 and the JDK
rightly do not. Serialising the subtree (lxml writes every in-scope namespace on it) and
canonicalising the re-parsed copy as a whole document is correct (libxml2's deep copy gives
the same document, cheaper, where it declares every namespace in scope); for inclusive C14N
the ``xml:*`` attributes inherited from ancestors are added to the apex, as C14N 1.0 requires.
Used by the signer (:mod:`gateway.packaging`) and the verifier (:mod:`gateway.signxml_adapter`).

A subtree with nothing in scope at its apex (:func:`self_contained`: no namespace declared on
the apex or above it, no ``xml:*`` attribute on an ancestor; e.g. 構成情報 under a plain
``DataRoot``) is already its own document as far as C14N is concerned: it is canonicalized in
place, which gives the same bytes without the copy (``tests/test_c14n.py`` compares the two;
an apex that declares the default namespace itself hits the same libxml2 fault, so it is not
"self-contained").
"""

from __future__ import annotations

from lxml import etree

from gateway.xmlsafe import hardened_parser

_XML_NS = "{http://www.w3.org/XML/1998/namespace}"


def canonicalize(node: etree._Element, *, exclusive: bool) -> bytes:
    """C14N 1.0 without comments of ``node`` and its descendants."""
    if self_contained(node):
        return etree.tostring(node, method="c14n", exclusive=exclusive, with_comments=False)
    return canonicalize_copy(node, exclusive=exclusive)


def canonicalize_copy(node: etree._Element, *, exclusive: bool) -> bytes:
    """:func:`canonicalize` of a copy of ``node`` as a document of its own (always correct)."""
    copy = _document_copy(node)
    if not exclusive:
        for ancestor in node.iterancestors():
            for name, value in ancestor.attrib.items():
                if name.startswith(_XML_NS) and name not in copy.attrib:
                    copy.set(name, value)
    return etree.tostring(copy.getroottree(), method="c14n", exclusive=exclusive, with_comments=False)


def _document_copy(node: etree._Element) -> etree._Element:
    """``node`` and its descendants as the root of a new document that declares every namespace
    in scope at ``node``.

    Serialising the subtree (lxml writes every in-scope namespace on its apex) and parsing it
    again is the reference (:func:`reparsed_copy`). libxml2's deep copy gives the same tree
    without the text round trip: it copies each element's own declarations and declares on
    the new root the namespaces the subtree uses from above; so it is taken when that is
    every namespace in scope (``nsmap``, compared below; an unused declaration above the apex
    is not copied) and the subtree has no entity reference (the parser never makes one).
    """
    copy = node.__copy__()  # lxml's copy is deep (copy.deepcopy would only add its memo around it)
    copy.tail = None  # the copied tail would be text beside the new root
    if copy.nsmap == node.nsmap and next(node.iter(etree.Entity), None) is None:
        return copy
    return reparsed_copy(node)


def reparsed_copy(node: etree._Element) -> etree._Element:
    """``node`` serialised and parsed again, the root of a document of its own."""
    return etree.fromstring(etree.tostring(node, encoding="UTF-8", with_tail=False), hardened_parser())


def self_contained(node: etree._Element) -> bool:
    """Whether ``node`` is below another element yet has no namespace in scope (none declared
    on it or on an ancestor) and no ``xml:*`` attribute to inherit from an ancestor.

    (A document's root element is not: lxml would canonicalize the whole document, prolog and
    epilogue included.)
    """
    if node.getparent() is None or node.nsmap:  # nsmap: every namespace in scope at the node
        return False
    return not inherits_xml_attributes(node)


def inherits_xml_attributes(node: etree._Element) -> bool:
    """Whether an ancestor of ``node`` carries an ``xml:*`` attribute (inclusive C14N 1.0
    renders those on the apex of a subtree)."""
    return any(name.startswith(_XML_NS) for ancestor in node.iterancestors() for name in ancestor.attrib)
