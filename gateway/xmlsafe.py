"""The one hardened way the gateway parses XML (``security.md`` §3).

Every XML byte string that arrives from outside goes through :func:`parse_xml`: the manifest,
the signature and the form. One parser configuration for all of them means no parser
differential between what the signature check sees and what the business logic reads.

The parser never resolves entities, never touches the network, never loads or applies a DTD
and keeps libxml2's size and depth limits (``huge_tree=False``: depth 256, text nodes 10 MB).
XInclude is never called. On top of the parser, documents are refused when they carry a
DOCTYPE at all, an entity, a processing instruction other than a prolog ``xml-stylesheet``
(which e-Gov forms carry for display and which nothing here acts on), or an encoding other
than the UTF-8 the spec prescribes.
"""

from __future__ import annotations

import re
import threading

from lxml import etree

from gateway.errors import XmlError

_UTF8_NAMES = frozenset({b"utf-8", b"utf8"})
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF8_DECLARATIONS = (b'<?xml version="1.0" encoding="UTF-8"', b'<?xml version="1.0" encoding="utf-8"',
                      b"<?xml version='1.0' encoding='UTF-8'")
"""How nearly every document begins (the last as lxml writes it): declarations that
:data:`_XML_DECL_ENCODING` reads as UTF-8."""
_XML_DECL_ENCODING = re.compile(
    rb"<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*[\"'][^\"']*[\"'][ \t\r\n]+"
    rb"encoding[ \t\r\n]*=[ \t\r\n]*[\"']([^\"']*)[\"']")
_PROLOG_PI_TARGETS = frozenset({"xml-stylesheet"})
_ERR = etree.ErrorTypes
_ENCODING_ERRORS = frozenset({_ERR.ERR_INVALID_ENCODING, _ERR.ERR_UNSUPPORTED_ENCODING,
                              _ERR.ERR_UNKNOWN_ENCODING, _ERR.ERR_ENCODING_NAME})

_ENTITY_ERRORS = frozenset({_ERR.ERR_UNDECLARED_ENTITY, _ERR.WAR_UNDECLARED_ENTITY, _ERR.ERR_ENTITY_LOOP,
                            _ERR.ERR_ENTITY_BOUNDARY})

_local = threading.local()


def hardened_parser() -> etree.XMLParser:
    """This thread's parser (lxml parsers must not be shared between threads)."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
            attribute_defaults=False, huge_tree=False, remove_comments=False, remove_pis=False,
            collect_ids=False,  # IDs are judged by signature.py, never by the parser (no DTD)
            # libxml2 decodes UTF-8 whatever the document declares; a declaration of anything
            # else has already been refused by _check_bytes.
            encoding="utf-8",
        )
    return parser


def parse_xml(data: bytes, *, what: str) -> etree._Element:
    """Parse ``data`` (one document named ``what`` in messages) and return its root element.

    :raises XmlError: ``xml-malformed``, ``xml-encoding``, ``xml-dtd-forbidden``,
        ``xml-entity-forbidden``, ``xml-pi-forbidden``, ``xml-too-deep``, ``xml-too-large``.
    """
    if not isinstance(data, bytes):  # a str would bypass the encoding rules
        raise TypeError("parse_xml takes bytes")
    _check_bytes(data, what)
    try:
        root = etree.fromstring(data, hardened_parser())
    except etree.XMLSyntaxError as exc:
        raise _syntax_error(exc, what) from exc
    if root is None:  # pragma: no cover - lxml raises for empty documents; keep the contract anyway
        raise XmlError(f"{what}: 空の文書です", code="xml-malformed")
    _check_document(root, what)
    return root


def _check_bytes(data: bytes, what: str) -> None:
    """Refuse before libxml2 sees the document: other encodings, and any DTD at all.

    A DOCTYPE is refused on sight rather than after parsing, so that libxml2 never processes
    an internal subset (entity declarations, parameter entities, external identifiers).
    The text ``<!DOCTYPE`` can only occur raw in a DTD, a comment or a CDATA section; the
    latter two are refused too, which no legitimate form needs.
    """
    body = data[len(_UTF8_BOM):] if data.startswith(_UTF8_BOM) else data
    if body[:2] in (b"\xfe\xff", b"\xff\xfe") or b"\x00" in body[:4]:
        raise XmlError(f"{what}: 文字コードは UTF-8 である必要があります（UTF-16/UTF-32）", code="xml-encoding")
    # The usual declarations are recognised without the regular expression (its costliest part).
    match = None if body.startswith(_UTF8_DECLARATIONS) else _XML_DECL_ENCODING.match(body)
    if match and match.group(1).lower() not in _UTF8_NAMES:
        declared = match.group(1).decode("ascii", "replace")
        raise XmlError(f"{what}: 文字コードは UTF-8 である必要があります（{declared}）", code="xml-encoding")
    if b"<!DOCTYPE" in body:
        if b"<!ENTITY" in body:
            raise XmlError(f"{what}: 実体宣言（ENTITY）は使用できません", code="xml-entity-forbidden")
        raise XmlError(f"{what}: DOCTYPE（DTD）は使用できません", code="xml-dtd-forbidden")


def _check_document(root: etree._Element, what: str) -> None:
    # Defence in depth: _check_bytes has refused every DOCTYPE already.
    docinfo = root.getroottree().docinfo
    dtd = docinfo.internalDTD or docinfo.externalDTD
    if dtd is not None or docinfo.doctype:
        if dtd is not None and any(True for _ in dtd.iterentities()):
            raise XmlError(f"{what}: 実体宣言（ENTITY）は使用できません", code="xml-entity-forbidden")
        raise XmlError(f"{what}: DOCTYPE（DTD）は使用できません", code="xml-dtd-forbidden")
    for node in root.iter(etree.Entity, etree.ProcessingInstruction):  # one walk for both
        if isinstance(node, etree._Entity):  # unreachable without a DTD; defence in depth
            raise XmlError(f"{what}: 実体参照は使用できません", code="xml-entity-forbidden")
        raise XmlError(f"{what}: 処理命令（<?{node.target} ...?>）は使用できません", code="xml-pi-forbidden")
    for node in root.itersiblings(preceding=True):  # the prolog
        if isinstance(node, etree._ProcessingInstruction) and node.target not in _PROLOG_PI_TARGETS:
            raise XmlError(f"{what}: 処理命令（<?{node.target} ...?>）は使用できません", code="xml-pi-forbidden")
    for node in root.itersiblings():  # after the root element: nothing but comments
        if isinstance(node, etree._ProcessingInstruction):
            raise XmlError(f"{what}: 処理命令（<?{node.target} ...?>）は使用できません", code="xml-pi-forbidden")


def _syntax_error(exc: etree.XMLSyntaxError, what: str) -> XmlError:
    # libxml2 messages quote element names from the document, not text content.
    code = exc.code
    message = exc.msg or str(exc)
    where = f"{what} {exc.lineno}行目: " if exc.lineno else f"{what}: "
    if code in _ENCODING_ERRORS:
        return XmlError(f"{where}UTF-8 として読めない文字があります", code="xml-encoding")
    if code in (_ERR.ERR_RESOURCE_LIMIT, _ERR.ERR_NAME_TOO_LONG) or "Excessive depth" in message \
            or "Huge input" in message:
        if "depth" in message:
            return XmlError(f"{where}要素の入れ子が深すぎます", code="xml-too-deep")
        return XmlError(f"{where}XML の要素またはテキストが大きすぎます", code="xml-too-large")
    if code in _ENTITY_ERRORS:
        return XmlError(f"{where}実体参照は使用できません", code="xml-entity-forbidden")
    return XmlError(f"{where}XML として正しくありません（{message}）", code="xml-malformed")
