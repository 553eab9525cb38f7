"""構成情報 → Manifest, and the unverified 到達番号 peek."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from lxml import etree

from gateway.errors import MunicipalityError, PackageError, XmlError
from gateway.identifiers import check_arrival_number
from gateway.manifest import manifest_file_names, parse_kousei, parse_manifest, peek_arrival_number
from gateway.models import Applicant, AttachmentInfo
from gateway.packaging import build_manifest
from gateway.xmlsafe import parse_xml

JST = dt.timezone(dt.timedelta(hours=9))
APPLICANT = Applicant(name="山田　太郎", name_kana="ヤマダ　タロウ", postal_code="1000001",
                      address="東京都千代田区千代田１－１", phone="0312345678", email="taro@example.jp")


def kousei(**overrides) -> bytes:
    fields = dict(arrival_number="202611280000012345", procedure_code="childcare-01", municipality_code="131016",
                  form_filename="childcare-01.xml", applicant=APPLICANT,
                  attachments=[AttachmentInfo("健康保険の資格を確認できる書類", "hoken.pdf", "application/pdf")],
                  applied_at=dt.datetime(2026, 11, 28, 10, 15, tzinfo=JST))
    fields.update(overrides)
    return build_manifest(**fields)


def manifest_of(data: bytes):
    return parse_manifest(parse_xml(data, what="kousei.xml").find("構成情報"))


def replaced(old: str, new: str, data: bytes | None = None) -> bytes:
    text = (data or kousei()).decode()
    assert old in text
    return text.replace(old, new, 1).encode()


def test_parses_every_field():
    m = manifest_of(kousei())
    assert (m.arrival_number, m.procedure_code, m.municipality_code) == ("202611280000012345", "childcare-01", "131016")
    assert m.application_kind == "新規申請" and m.original_arrival_number == ""
    assert m.applied_at == dt.datetime(2026, 11, 28, 10, 15, tzinfo=JST)
    assert m.applicant == APPLICANT  # the full-width space in 氏名 is kept
    assert (m.form_id, m.form_version, m.form_filename) == ("childcare-01", "1", "childcare-01.xml")
    assert m.attachments == (AttachmentInfo("健康保険の資格を確認できる書類", "hoken.pdf", "application/pdf"),)
    assert manifest_file_names(m) == ("childcare-01.xml", "hoken.pdf")


def test_resubmission_and_withdrawal_need_the_original_arrival_number():
    m = manifest_of(kousei(application_kind="再提出", original_arrival_number="202611270000000000"))
    assert m.application_kind == "再提出" and m.original_arrival_number == "202611270000000000"
    with pytest.raises(PackageError) as info:
        manifest_of(kousei(application_kind="取下げ"))
    assert info.value.code == "package-manifest-invalid"
    with pytest.raises(PackageError) as info:
        manifest_of(kousei(original_arrival_number="202611270000000000"))
    assert info.value.code == "package-manifest-invalid"


@pytest.mark.parametrize("number", ["123456789012345", "1234567890123456789", "２０２６１１２８００００００１２３４５",
                                    "20261128000001234a"])
def test_arrival_number_is_16_to_18_ascii_digits(number):
    with pytest.raises(PackageError) as info:
        manifest_of(kousei(arrival_number=number))
    assert info.value.code == "package-manifest-invalid"


@pytest.mark.parametrize("code", ["131017", "13101", "1310160", "１３１０１６"])
def test_municipality_code_check_digit(code):
    with pytest.raises(MunicipalityError) as info:
        manifest_of(kousei(municipality_code=code))
    assert info.value.code == "municipality-code-invalid"
    assert manifest_of(kousei(municipality_code="011002")).municipality_code == "011002"


@pytest.mark.parametrize("old, new, code", [
    ("<申請種別>新規申請</申請種別>", "<申請種別>変更申請</申請種別>", "package-manifest-invalid"),
    ("2026-11-28T10:15:00+09:00", "2026-11-28T10:15:00", "package-manifest-invalid"),
    ("2026-11-28T10:15:00+09:00", "2026-11-28", "package-manifest-invalid"),
    ("2026-11-28T10:15:00+09:00", "令和8年11月28日", "package-manifest-invalid"),
    ("<メディア型>application/pdf</メディア型>", "<メディア型>text/html</メディア型>", "package-manifest-invalid"),
    ("<手続ID>childcare-01</手続ID>", "<手続ID>../childcare</手続ID>", "package-manifest-invalid"),
    ("<到達番号>202611280000012345</到達番号>",
     "<到達番号>202611280000012345</到達番号><到達番号>202611280000099999</到達番号>", "package-manifest-structure"),
    ("<氏名>山田　太郎</氏名>", "<氏名><姓>山田</姓></氏名>", "package-manifest-structure"),
    ("<氏名>山田　太郎</氏名>", "<氏名>  </氏名>", "package-manifest-structure"),
    ("<申請書ファイル名称>childcare-01.xml</申請書ファイル名称>", "", "package-manifest-structure"),
    ("<添付書類ファイル名称>hoken.pdf</添付書類ファイル名称>",
     "<添付書類ファイル名称>childcare-01.xml</添付書類ファイル名称>", "package-manifest-invalid"),
    ("<添付書類ファイル名称>hoken.pdf</添付書類ファイル名称>",
     "<添付書類ファイル名称>kousei.xml</添付書類ファイル名称>", "package-manifest-invalid"),
])
def test_invalid_manifests(old, new, code):
    with pytest.raises(PackageError) as info:
        manifest_of(replaced(old, new))
    assert info.value.code == code


def test_xml_whitespace_is_trimmed_but_full_width_space_kept():
    m = manifest_of(replaced("<氏名>山田　太郎</氏名>", "<氏名>\n  山田　太郎　\n</氏名>"))
    assert m.applicant.name == "山田　太郎　"


def test_not_the_manifest_element():
    with pytest.raises(PackageError) as info:
        parse_manifest(parse_xml(kousei(), what="kousei.xml"))
    assert info.value.code == "package-manifest-structure"


def test_peek_arrival_number():
    def peek(members: dict[str, bytes]) -> str | None:
        return peek_arrival_number(parse_kousei(members))

    assert peek({"kousei.xml": kousei()}) == "202611280000012345"
    assert peek({}) is None
    assert peek({"kousei.xml": replaced("202611280000012345", "12345")}) is None
    two = replaced("<到達番号>202611280000012345</到達番号>",
                   "<到達番号>202611280000012345</到達番号><到達番号>202611280000099999</到達番号>")
    assert peek({"kousei.xml": two}) is None
    other_root = replaced("<DataRoot>", "<Other>").replace(b"</DataRoot>", b"</Other>")
    assert peek({"kousei.xml": other_root}) is None


def test_parse_kousei_is_the_hardened_parse_and_keeps_its_refusal_code():
    tree = parse_kousei({"kousei.xml": kousei()})
    assert tree is not None and tree.tag == "DataRoot"
    assert parse_kousei({}) is None
    for data, code in [(b"<DataRoot><broken", "xml-malformed"),
                       (b'<!DOCTYPE x [<!ENTITY a "1">]><DataRoot/>', "xml-entity-forbidden"),
                       ("<DataRoot/>".encode("utf-16"), "xml-encoding")]:
        with pytest.raises(XmlError) as caught:
            parse_kousei({"kousei.xml": data})
        assert caught.value.code == code


def _peek_by_element_path(kousei):
    """peek_arrival_number as it was written with ElementPath (the reference for the walk)."""
    if kousei is None or kousei.tag != "DataRoot":
        return None
    found = kousei.findall("構成情報/管理情報/到達番号")
    if len(found) != 1 or len(found[0]):
        return None
    value = (found[0].text or "").strip(" \t\r\n")
    return value if check_arrival_number(value) else None


def test_the_peek_walks_the_children_exactly_as_element_path_did():
    # Random trees of the tags on the path, their namespaced twins, other elements, comments,
    # PIs and texts (good and bad numbers, XML and full-width spaces): the same answer for each,
    # and for each of their elements taken as the root.
    rng = random.Random(20261129)
    tags = ["構成情報", "管理情報", "到達番号", "{urn:x}構成情報", "{urn:x}管理情報", "{urn:x}到達番号", "other"]
    texts = [None, "202611280000012345", " 202611280000012345\n", "\u3000202611280000012345", "12", "x"]

    def grow(parent, depth):
        for _ in range(rng.randrange(1, 4)):
            kind = rng.random()
            if kind < 0.1:
                parent.append(etree.Comment("c"))
            elif kind < 0.15:
                parent.append(etree.ProcessingInstruction("pi"))
            else:
                on_path = depth <= 3 and rng.random() < 0.7  # mostly the path's own tag at its depth
                child = etree.SubElement(parent, tags[depth - 1] if on_path else rng.choice(tags))
                child.text = rng.choice(texts)
                if depth < 4 and rng.random() < 0.6:
                    grow(child, depth + 1)

    found = 0
    for _ in range(3000):
        root = etree.Element(rng.choice(["DataRoot"] * 5 + ["{urn:x}DataRoot", "構成情報"]))
        grow(root, 1)
        for element in root.iter(tag=etree.Element):
            assert peek_arrival_number(element) == _peek_by_element_path(element)
        found += peek_arrival_number(root) is not None
    assert found > 40  # the shapes do reach a readable number often enough to mean something
