"""gateway.targetxml: the common blocks of every target record, built with real lxml elements."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from lxml import etree

from gateway.models import Applicant, AttachmentInfo, FormContext, Manifest, VerifiedPackage
from gateway.targetxml import SEX_CODES, BuiltRecord, TargetBuilder, xs_boolean
from gateway.validation import Dates

TARGET_NS = "urn:example:target:1"
FORM_NS = "urn:example:form:1"
T = {"t": TARGET_NS}
JST = dt.timezone(dt.timedelta(hours=9))

xml = TargetBuilder(TARGET_NS, FORM_NS)

FORM = f"""<申請書 xmlns="{FORM_NS}">
  <申請者>
    <氏名> 見本　太郎 </氏名>
    <!-- a comment is not an item -->
    <フリガナ>ミホン　タロウ</フリガナ>
    <電話番号/>
  </申請者>
  <連絡先><電話番号>03-0000-0000</電話番号><メモ>x</メモ></連絡先>
</申請書>""".encode()


def context(*, signed: bool = True, original: str = "", applied_at: dt.datetime | None = None,
            attachments: tuple[AttachmentInfo, ...] = ()) -> FormContext:
    manifest = Manifest(
        arrival_number="202611280000012345", procedure_code="example-01", municipality_code="131016",
        application_kind="再提出" if original else "新規申請", original_arrival_number=original,
        applied_at=applied_at, applicant=Applicant(name="見本　太郎"), form_id="example-01", form_version="2",
        form_filename="example-01.xml", attachments=attachments)
    return FormContext(package=VerifiedPackage(manifest=manifest, form_xml=FORM, signed=signed),
                       form=etree.fromstring(FORM))


def children(elem: etree._Element) -> list[tuple[str, str | None]]:
    return [(etree.QName(child).localname, child.text) for child in elem]


# --------------------------------------------------------------------------- elements


def test_root_uses_the_target_namespace_as_default_and_carries_its_version() -> None:
    root = xml.root("データ", version="3")
    assert root.tag == f"{{{TARGET_NS}}}データ" and root.nsmap == {None: TARGET_NS}
    assert root.get("版") == "3" and xml.root("データ").get("版") == "1"
    assert etree.tostring(root, encoding="unicode") == f'<データ xmlns="{TARGET_NS}" 版="3"/>'


def test_add_puts_elements_in_the_target_namespace() -> None:
    root = xml.root("データ")
    empty = xml.add(root, "空")
    xml.add(root, "値", "")
    xml.add(root, "名", "見本")
    assert empty.tag == f"{{{TARGET_NS}}}空" and empty.text is None
    assert children(root) == [("空", None), ("値", ""), ("名", "見本")]
    assert "<空/><値></値>".encode() in etree.tostring(root, encoding="UTF-8")  # "" is written out, not omitted


def test_add_all_adds_each_item_in_order() -> None:
    root = xml.root("データ")
    xml.add_all(root, [("名", "見本"), ("値", ""), ("名", "二")])
    assert children(root) == [("名", "見本"), ("値", ""), ("名", "二")]
    assert all(child.tag.startswith(f"{{{TARGET_NS}}}") for child in root)


def test_items_are_the_blocks_children_stripped_without_comments() -> None:
    form = etree.fromstring(FORM)
    assert xml.items(form.find(f"{{{FORM_NS}}}申請者")) == {"氏名": "見本　太郎", "フリガナ": "ミホン　タロウ", "電話番号": ""}
    assert xml.items(None) == {}


def test_copy_keeps_order_renames_and_skips_absent_items() -> None:
    block = xml.add(xml.root("データ"), "申請者")
    values = {"氏名": "見本　太郎", "フリガナ": "ミホン　タロウ", "電話番号": ""}
    xml.copy(block, values, ("フリガナ", "氏名カナ"), "住所", "氏名", "電話番号")
    assert children(block) == [("氏名カナ", "ミホン　タロウ"), ("氏名", "見本　太郎"), ("電話番号", "")]


def test_copy_skips_what_is_absent_or_none() -> None:
    block = xml.add(xml.root("データ"), "申請者")
    xml.copy(block, {"氏名": "見本", "電話番号": None}, "氏名", "電話番号")  # type: ignore[dict-item]
    assert children(block) == [("氏名", "見本")]


def test_add_block_writes_a_block_already_read() -> None:
    root = xml.root("データ")
    block = xml.add_block(root, "連絡先", {"電話番号": "03", "メモ": "x"}, "電話番号", as_name="連絡先情報")
    assert block is not None and children(root) == [("連絡先情報", None)] and children(block) == [("電話番号", "03")]
    assert xml.add_block(root, "代理人", None, "氏名") is None and len(root) == 1
    empty = xml.add_block(root, "空", {}, "氏名")
    assert empty is not None and len(empty) == 0


def test_copy_block_copies_an_optional_block_of_the_form() -> None:
    form = etree.fromstring(FORM)
    root = xml.root("データ")
    block = xml.copy_block(root, form, "連絡先", "電話番号", as_name="連絡先情報")
    assert block is not None and children(root) == [("連絡先情報", None)]
    assert children(block) == [("電話番号", "03-0000-0000")]
    assert xml.copy_block(root, form, "代理人", "氏名") is None and len(root) == 1


@pytest.mark.parametrize("written,precision,parts", [
    ("令和8年11月28日", "day", ["令和8年11月28日", "20261128", "5081128"]),
    (" 1988-04-15 ", "day", ["1988-04-15", "19880415", "3630415"]),
    ("令和2年3月", "month", ["令和2年3月"]),
    ("年月日不詳", "unknown", ["年月日不詳"]),
    ("平成31年5月1日", "out-of-era", ["平成31年5月1日"]),
])
def test_add_date_writes_original_and_only_exact_days_in_both_calendars(written: str, precision: str,
                                                                       parts: list[str]) -> None:
    block = xml.add_date(xml.root("データ"), "生年月日", written)
    assert block.get("精度") == precision
    assert children(block) == list(zip(["原文", "西暦", "和暦"], parts))
    dates = Dates()
    again = xml.add_date(xml.root("データ"), "生年月日", written, dates)  # the package's parses, shared
    assert etree.tostring(again) == etree.tostring(block) and dates(written) is dates(written)


# --------------------------------------------------------------------------- common blocks


def test_management_block_from_the_manifest() -> None:
    applied = dt.datetime(2026, 11, 28, 10, 15, tzinfo=JST)
    block = xml.add_management(xml.root("データ"), context(applied_at=applied))
    assert children(block) == [
        ("到達番号", "202611280000012345"), ("受付団体コード", "131016"), ("手続コード", "example-01"),
        ("様式バージョン", "2"), ("申請種別", "新規申請"), ("申請日時", "2026-11-28T10:15:00+09:00"),
        ("本人確認", "電子署名")]


def test_management_block_of_an_unsigned_resubmission_without_time() -> None:
    block = xml.add_management(xml.root("データ"), context(signed=False, original="202611270000000001"))
    assert children(block)[4:] == [("申請種別", "再提出"), ("初回到達番号", "202611270000000001"),
                                   ("本人確認", "要本人確認")]


def test_attachment_list_counts_and_describes_each() -> None:
    attachments = (AttachmentInfo("別居監護申立書", "bekkyo.pdf", "application/pdf"),
                   AttachmentInfo("健康保険の資格確認書類", "hoken.jpg", "image/jpeg"))
    listing = xml.add_attachments(xml.root("データ"), context(attachments=attachments))
    assert listing.get("件数") == "2"
    assert [children(block) for block in listing] == [
        [("名称", "別居監護申立書"), ("ファイル名", "bekkyo.pdf"), ("メディア型", "application/pdf")],
        [("名称", "健康保険の資格確認書類"), ("ファイル名", "hoken.jpg"), ("メディア型", "image/jpeg")]]
    empty = xml.add_attachments(xml.root("データ"), context())
    assert empty.get("件数") == "0" and len(empty) == 0


def test_codes_and_booleans() -> None:
    assert SEX_CODES == {"男": "1", "女": "2"}
    assert [xs_boolean(v) for v in ("true", " 1 ", "false", "0", "", None)] == ["true", "true"] + ["false"] * 4


# --------------------------------------------------------------------------- the result


def test_record_is_utf8_xml_named_after_the_arrival_and_procedure() -> None:
    root = xml.root("データ")
    xml.add(root, "名", "見本")
    schema = Path("/schemas/example.xsd")
    record = xml.record(root, context(), target="example", schema=schema)
    assert record.content == (b"<?xml version='1.0' encoding='UTF-8'?>\n"
                              + etree.tostring(root, encoding="UTF-8"))
    assert isinstance(record, BuiltRecord) and record.tree is root  # validate_target checks the tree
    assert "tree" not in repr(record)
    assert "<名>見本</名>".encode() in record.content
    assert (record.filename, record.media_type, record.target, record.schema) == (
        "202611280000012345_example-01.xml", "application/xml", "example", schema)


# --------------------------------------------------------------------------- templates


class _OneByOne(TargetBuilder):
    """The builder as it was before templates: every element made in place by etree.SubElement.

    Only how elements are made is overridden; the bytes must be the same either way.
    """

    def root(self, name: str, version: str = "1") -> etree._Element:
        return etree.Element(self._target + name, {"版": version}, nsmap={None: self.target_namespace})

    def add_all(self, parent: etree._Element, items) -> None:  # type: ignore[no-untyped-def]
        for name, text in items:
            etree.SubElement(parent, self._target + name).text = text

    def _add_block(self, parent, name, items, attribute=None):  # type: ignore[no-untyped-def]
        block = etree.SubElement(parent, self._target + name, None if attribute is None else dict([attribute]))
        self.add_all(block, items)
        return block


ODD_TEXTS = ("", " 前後の空白 ", "a&b<c>d\"e'f", "]]>", "改行\r\nと\tタブ", "𠮷野家🍣", "&amp;", "\u3000")


def _build(builder: TargetBuilder, parent: etree._Element, salt: str = "") -> etree._Element:
    """Every way the builder adds elements, with texts that need escaping."""
    attachments = (AttachmentInfo("別居監護申立書" + salt, "a&b.pdf", "application/pdf"),
                   AttachmentInfo("<写し>", "b.png", "image/png"))
    ctx = context(applied_at=dt.datetime(2026, 11, 28, 10, 15, tzinfo=JST), attachments=attachments)
    builder.add_management(parent, ctx)
    for written in ("令和8年11月28日", " 1988-04-15 ", "令和2年3月", "年月日不詳", "平成31年5月1日"):
        builder.add_date(parent, "日付", written)
    block = builder.add(parent, "申請者")
    builder.copy(block, {f"項目{i}": text + salt for i, text in enumerate(ODD_TEXTS)},
                 *(f"項目{i}" for i in range(len(ODD_TEXTS))), ("項目0", "改名"), "ない項目")
    builder.add_all(block, [])
    builder.add_all(block, [("同名", "一"), ("同名", "二"), ("空", "")])
    builder.add_block(parent, "連絡先", {"電話番号": "03" + salt, "メモ": "x"}, "電話番号", "メモ", as_name="連絡")
    builder.add_block(parent, "空の連絡先", {}, "電話番号")
    builder.copy_block(parent, etree.fromstring(FORM), "申請者", "氏名", ("フリガナ", "カナ"), "電話番号")
    builder.add_attachments(parent, ctx)
    builder.add_attachments(parent, context())
    return parent


@pytest.mark.parametrize("make_parent", [
    lambda b: b.root("データ", "2"),                                             # as transforms do
    lambda b: etree.SubElement(b.root("データ"), f"{{{TARGET_NS}}}中"),             # deeper
    lambda b: etree.Element("素"),                                               # no namespace declared
    lambda b: etree.Element(f"{{{TARGET_NS}}}接頭辞", nsmap={"t": TARGET_NS}),     # the target ns with a prefix
    lambda b: etree.Element("{urn:other}他", nsmap={None: "urn:other"}),          # another default namespace
    lambda b: etree.SubElement(etree.Element("{urn:other}他", nsmap={"t": TARGET_NS}), "{urn:other}子"),
], ids=["root", "nested", "plain", "prefixed", "other-default", "prefixed-above"])
def test_templates_make_the_same_bytes_as_elements_made_one_by_one(make_parent) -> None:  # type: ignore[no-untyped-def]
    new, old = TargetBuilder(TARGET_NS, FORM_NS), _OneByOne(TARGET_NS, FORM_NS)
    for salt in ("", "2"):  # the second time from templates made the first time
        expected = etree.tostring(_build(old, make_parent(old), salt).getroottree(), encoding="UTF-8")
        assert etree.tostring(_build(new, make_parent(new), salt).getroottree(), encoding="UTF-8") == expected
    assert etree.tostring(new.root("データ")) == etree.tostring(old.root("データ"))


def test_templates_past_the_limit_are_made_for_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway import targetxml

    monkeypatch.setattr(targetxml, "TEMPLATES_PER_THREAD", 2)
    new, old = TargetBuilder(TARGET_NS, FORM_NS), _OneByOne(TARGET_NS, FORM_NS)
    for _ in range(2):
        assert (etree.tostring(_build(new, new.root("データ")))
                == etree.tostring(_build(old, old.root("データ"))))
    assert len(new._templates()) == 2


def test_a_template_is_never_part_of_a_record_and_keeps_no_text() -> None:
    builder = TargetBuilder(TARGET_NS, FORM_NS)
    first = _build(builder, builder.root("データ"), "一回目")
    second = _build(builder, builder.root("データ"), "二回目")
    assert b"\xe4\xb8\x80\xe5\x9b\x9e\xe7\x9b\xae" not in etree.tostring(second)  # 一回目
    assert etree.tostring(first) != etree.tostring(second)
    for template in builder._templates().values():
        assert all(elem.text is None for elem in template.iter()) and template.getparent() is None
        assert all(value == "" for elem in template.iter() for value in elem.attrib.values())


def test_one_builder_in_many_threads_makes_the_same_records() -> None:
    import threading

    builder, reference = TargetBuilder(TARGET_NS, FORM_NS), _OneByOne(TARGET_NS, FORM_NS)
    expected = {str(n): etree.tostring(_build(reference, reference.root("データ"), str(n))) for n in range(8)}
    wrong: list[str] = []

    def work(n: int) -> None:
        for _ in range(40):
            if etree.tostring(_build(builder, builder.root("データ"), str(n))) != expected[str(n)]:
                wrong.append(str(n))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
