"""care-01 (要介護・要支援認定の申請) tested with its own samples, end to end through validation.

What every procedure is tested for lives in :mod:`procedure_cases`; here, what is care-01's own.
"""

from __future__ import annotations

from functools import partial

import pytest
from lxml import etree

import plugins.care_01 as plugin
from tests.plugins_builtin import procedure_cases as cases

PROCEDURE = plugin.PROCEDURE
SAMPLES = plugin.SAMPLES
T = {"t": "urn:jp:gateway:target:kaigo-hoken:1"}
context_for = partial(cases.context_for, PROCEDURE)
problems_for = partial(cases.problems_for, PROCEDURE)


def with_birth_date(variant: str, born: str) -> bytes:
    form_xml = SAMPLES.form(variant)
    start = form_xml.index("<生年月日>".encode()) + len("<生年月日>".encode())
    end = form_xml.index("</生年月日>".encode())
    return form_xml[:start] + born.encode() + form_xml[end:]


# --------------------------------------------------------------------------- the samples


def test_samples_are_complete() -> None:
    cases.assert_samples_complete(SAMPLES)
    assert SAMPLES.default_variant == "valid-first-category"
    assert SAMPLES.attachments() == {}


@pytest.mark.parametrize("variant", SAMPLES.variants())
def test_sample_does_what_its_name_says(variant: str) -> None:
    cases.assert_sample(PROCEDURE, SAMPLES, variant)


# --------------------------------------------------------------------------- the record


def test_first_category_record() -> None:
    sample = SAMPLES.sample("valid-first-category")
    record = PROCEDURE.transform(context_for(sample.form_xml, sample.attachments, signed=False))
    root = etree.fromstring(record.content)
    assert root.tag == "{urn:jp:gateway:target:kaigo-hoken:1}要介護認定申請データ"
    person = root.find("t:被保険者", T)
    assert person.findtext("t:被保険者番号", namespaces=T) == "0000012345"
    assert person.findtext("t:被保険者区分コード", namespaces=T) == "1"
    assert person.findtext("t:申請時年齢", namespaces=T) == "80"
    assert person.findtext("t:生年月日/t:和暦", namespaces=T) == "3210303"
    assert root.findtext("t:提出代行者/t:事業所番号", namespaces=T) == "1370000001"
    assert root.findtext("t:訪問調査連絡先/t:本人との関係", namespaces=T) == "長女"
    assert root.findtext("t:情報提供同意", namespaces=T) == "true"
    assert root.findtext("t:管理情報/t:本人確認", namespaces=T) == "要本人確認"


def test_second_category_record_from_wareki_form() -> None:
    sample = SAMPLES.sample("valid-second-category-wareki")
    root = etree.fromstring(PROCEDURE.transform(context_for(sample.form_xml, sample.attachments)).content)
    person = root.find("t:被保険者", T)
    assert person.find("t:被保険者番号", T) is None
    assert person.findtext("t:被保険者区分コード", namespaces=T) == "2"
    assert person.findtext("t:生年月日/t:西暦", namespaces=T) == "19680701"
    assert root.findtext("t:申請年月日/t:西暦", namespaces=T) == "20261128"
    assert root.findtext("t:特定疾病名", namespaces=T) == "脳血管疾患"
    assert root.findtext("t:本人の居所/t:施設名", namespaces=T) == "見本総合病院"
    assert root.find("t:添付書類一覧", T).get("件数") == "1"


def test_transform_is_fast() -> None:
    cases.assert_transform_is_fast(PROCEDURE, SAMPLES)


# --------------------------------------------------------------------------- rules in detail


@pytest.mark.parametrize("born,category,codes", [
    ("1961-11-29", "第1号", []),                           # reaches 65 on 2026-11-28: 第1号 that day
    ("1961-11-30", "第1号", ["rule-insured-category"]),    # still 64
    ("1961-11-30", "第2号", []),
    ("1986-11-29", "第2号", []),                           # reaches 40 on 2026-11-28
    ("1986-11-30", "第2号", ["rule-insured-age"]),
    ("昭和○年頃", "第1号", []),                             # unknown birth dates are left to staff
])
def test_category_follows_the_legal_age_on_the_application_date(born: str, category: str, codes: list[str]) -> None:
    variant = "valid-first-category" if category == "第1号" else "valid-second-category-wareki"
    form_xml = with_birth_date(variant, born)
    assert [p.code for p in problems_for(form_xml, SAMPLES.attachments(variant))] == codes


@pytest.mark.parametrize("variant", ["valid-first-category", "valid-second-category-wareki"])
@pytest.mark.parametrize("born", ["1872-12-31", "1800-01-01"])
def test_a_western_birth_date_before_1873_is_refused_as_outside_the_eras(variant: str, born: str) -> None:
    """Schema-valid, but no era can express it: refused by the rules, never left to the transform
    (as 第1号 at 153 or more, no other rule refused it)."""
    found = problems_for(with_birth_date(variant, born), SAMPLES.attachments(variant))
    assert [(p.code, p.path) for p in found if p.code == "rule-date-era"] == [
        ("rule-date-era", "/要介護認定申請書/被保険者/生年月日")]
    assert {p.code for p in found} <= {"rule-date-era", "rule-insured-category"}


def test_a_western_application_date_before_1873_is_refused() -> None:
    valid = SAMPLES.form("valid")
    start = valid.index("<申請年月日>".encode()) + len("<申請年月日>".encode())
    form_xml = valid[:start] + b"1872-12-31" + valid[valid.index("</申請年月日>".encode()):]
    assert [(p.code, p.path) for p in problems_for(form_xml)] == [("rule-date-era", "/要介護認定申請書/申請年月日")]


def test_insurer_check_digit_is_opt_in() -> None:
    form_xml = SAMPLES.form("valid").replace(b">131011<", b">131012<")
    assert problems_for(form_xml) == []
    found = problems_for(form_xml, settings={"INSURER_CHECK_DIGIT": "mod10-21"})
    assert [(p.code, p.path) for p in found] == [("rule-insurer-number", "/要介護認定申請書/被保険者/保険者番号")]
    assert "検査用数字" in found[0].message
    assert problems_for(SAMPLES.form("valid"), settings={"INSURER_CHECK_DIGIT": "mod10-21"}) == []


def test_agent_other_than_other_needs_an_office_number() -> None:
    form_xml = SAMPLES.form("valid").replace("    <事業所番号>1370000001</事業所番号>\n".encode(), b"")
    assert [(p.code, p.path) for p in problems_for(form_xml)] == [
        ("rule-office-number-missing", "/要介護認定申請書/提出代行者/種別")]
    other = form_xml.replace("<種別>地域包括支援センター</種別>".encode(), "<種別>その他</種別>".encode())
    assert problems_for(other) == []


# --------------------------------------------------------------------------- registration


def test_registered_through_its_entry_point() -> None:
    procedure = cases.assert_registered(plugin, "care_01")
    assert (procedure.code, procedure.version, procedure.target) == ("care-01", "1", "kaigo-hoken")
    assert procedure.form_namespace == "urn:jp:gateway:form:care-01:1"
    assert procedure.channel == "filedrop" and procedure.required_attachments == ()
