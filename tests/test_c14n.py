"""gateway.c14n: the subtree C14N every verifier computes; in place only when that is the same."""

from __future__ import annotations

from copy import deepcopy

import pytest
from lxml import etree

from gateway.c14n import _document_copy, canonicalize, canonicalize_copy, reparsed_copy, self_contained

DOCUMENTS = [
    # 構成情報 as the packages have it: nothing declared above it.
    '<DataRoot><様式ID>KOUSEI</様式ID><構成情報 ID="構成情報"><管理情報><到達番号>1</到達番号></管理情報>'
    '<!-- c --><?pi x?><添付書類属性情報 a="&amp;&lt;&#13;" b=\'"\'>x &amp; y<![CDATA[<z>]]></添付書類属性情報>'
    '</構成情報><署名情報><Signature xmlns="urn:ds"><SignedInfo><C/></SignedInfo></Signature></署名情報></DataRoot>',
    # Namespaces declared inside the subtree, default and prefixed, with an undeclaration; on
    # the apex itself (A) libxml2 renders a spurious xmlns="" on p:E, so A is not self-contained.
    '<R><A xmlns="urn:a" xmlns:p="urn:p"><B p:x="1"><C xmlns=""><D/></C><p:E xmlns:q="urn:q"/></B></A></R>',
    '<R><S><A xmlns="urn:a"><B><C/></B></A><A xmlns:p="urn:p"><p:B><C xmlns="urn:c"><D/></C></p:B></A></S></R>',
    # xml:* attributes inside the subtree (rendered as written) and on an ancestor (inherited).
    '<R><S xml:lang="ja"><T xml:space="preserve"> <U/> </T></S></R>',
    '<R xml:lang="ja"><S><T/></S></R>',
    # Namespaces above the apex: the libxml2 case, and an unused prefix inclusive C14N renders.
    '<R xmlns:p="urn:p"><S xmlns="urn:ds"><I><A><B/></A></I></S></R>',
    '<R xmlns:unused="urn:u"><S><T/></S></R>',
    '<p:R xmlns:p="urn:p"><p:S><T/></p:S></p:R>',
]


def elements(document: str) -> list[etree._Element]:
    return list(etree.fromstring(document.encode()).iter(etree.Element))


@pytest.mark.parametrize("document", DOCUMENTS)
@pytest.mark.parametrize("exclusive", [False, True])
def test_in_place_only_when_it_gives_the_copys_bytes(document, exclusive):
    # Only self-contained nodes take the in-place path (the others are the copy by definition).
    for node in (node for node in elements(document) if self_contained(node)):
        assert canonicalize(node, exclusive=exclusive) == canonicalize_copy(node, exclusive=exclusive)


def test_what_counts_as_self_contained():
    root = etree.fromstring(DOCUMENTS[0].encode())
    assert self_contained(root.find("構成情報")) and self_contained(root.find("構成情報/管理情報"))
    assert not self_contained(root)  # the document root: lxml would render the whole document
    assert not self_contained(next(root.iter("{urn:ds}SignedInfo")))  # xmlns declared on Signature
    assert not self_contained(etree.fromstring(DOCUMENTS[1].encode()).find("{urn:a}A"))  # declares xmlns
    assert self_contained(etree.fromstring(DOCUMENTS[2].encode()).find("S"))  # declarations only below
    assert not self_contained(etree.fromstring(DOCUMENTS[4].encode()).find("S"))  # inherits xml:lang
    assert not self_contained(etree.fromstring(DOCUMENTS[6].encode()).find("S"))  # in scope: xmlns:unused


def test_the_copy_is_needed_where_namespaces_are_inherited():
    """Why the copy exists: libxml2's in-place C14N of this apex writes xmlns="" on B."""
    apex = etree.fromstring(DOCUMENTS[5].encode()).find(".//{urn:ds}I")
    assert not self_contained(apex)
    assert canonicalize(apex, exclusive=False) == b'<I xmlns="urn:ds" xmlns:p="urn:p"><A><B></B></A></I>'
    assert etree.tostring(apex, method="c14n") != canonicalize(apex, exclusive=False)


# Namespace arrangements for the copy: prefixes redeclared, one URI under two prefixes, a
# prefix used only by an attribute, declarations above the apex used or not.
COPY_DOCUMENTS = [*DOCUMENTS,
    '<R xmlns:p="urn:1"><S xmlns:p="urn:2"><p:T p:a="x"><U xmlns:p="urn:1" p:b="y"/></p:T></S></R>',
    '<R xmlns:p="urn:p"><S xmlns="urn:d"><T p:a="1"><V xmlns=""/></T></S></R>',
    '<R xmlns:a="urn:x" xmlns:b="urn:x"><S><a:T b:y="1"/></S></R>',
    '<R xmlns:a="urn:x"><S xmlns:b="urn:x"><T a:y="1"/></S></R>',
    '<R xmlns="urn:d" xml:lang="ja"><S xml:space="preserve"><T> x </T></S></R>',
    '<p:R xmlns:p="urn:p" xmlns:q="urn:q"><q:S><T q:a="1" xml:lang="en"/></q:S></p:R>',
]


def _reference_c14n(node: etree._Element, exclusive: bool) -> bytes:
    """The copy as it always was made: the subtree serialised and parsed again."""
    copy = reparsed_copy(node)
    if not exclusive:
        for ancestor in node.iterancestors():
            for name, value in ancestor.attrib.items():
                if name.startswith("{http://www.w3.org/XML/1998/namespace}") and name not in copy.attrib:
                    copy.set(name, value)
    return etree.tostring(copy.getroottree(), method="c14n", exclusive=exclusive, with_comments=False)


@pytest.mark.parametrize("document", COPY_DOCUMENTS)
@pytest.mark.parametrize("exclusive", [False, True])
def test_the_deep_copy_canonicalizes_as_the_reparsed_copy(document, exclusive):
    """Every element, whichever way _document_copy goes (deep copy or its fallback)."""
    for node in elements(document):
        assert canonicalize_copy(node, exclusive=exclusive) == _reference_c14n(node, exclusive)


def test_the_deep_copy_is_taken_where_it_declares_every_namespace_in_scope():
    signed_info = next(etree.fromstring(DOCUMENTS[0].encode()).iter("{urn:ds}SignedInfo"))
    copy = _document_copy(signed_info)
    assert copy.getparent() is None and copy.tail is None and copy.nsmap == {None: "urn:ds"}
    assert etree.tostring(copy) == b'<SignedInfo xmlns="urn:ds"><C/></SignedInfo>'
    unused = etree.fromstring(COPY_DOCUMENTS[6].encode()).find("S")  # xmlns:unused above: not copied
    assert deepcopy(unused).nsmap == {} and _document_copy(unused).nsmap == {"unused": "urn:u"}
