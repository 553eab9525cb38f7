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
