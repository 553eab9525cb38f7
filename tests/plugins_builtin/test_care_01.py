"""care-01 (要介護・要支援認定の申請) tested with its own samples, end to end through validation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from importlib.metadata import entry_points

import pytest
from lxml import etree

import plugins.care_01 as plugin
from gateway.errors import Problem, SchemaError
from gateway.models import Applicant, AttachmentInfo, FormContext, Manifest, VerifiedPackage
from gateway.plugins import make_plugin_manager
from gateway.validation import run_checks, validate_form, validate_target
from gateway.xmlsafe import parse_xml

PROCEDURE = plugin.PROCEDURE
JST = dt.timezone(dt.timedelta(hours=9))
APPLIED_AT = dt.datetime(2026, 11, 28, 10, 15, tzinfo=JST)
VALID = [v for v in plugin.sample_variants() if v.startswith("valid")]
INVALID = [v for v in plugin.sample_variants() if v.startswith("invalid")]
T = {"t": "urn:jp:gateway:target:kaigo-hoken:1"}


def context_for(form_xml: bytes, attachments: Mapping[str, tuple[str, str, bytes]] = {},
                settings: Mapping[str, object] = {}, signed: bool = True) -> FormContext:
    manifest = Manifest(
        arrival_number="2026112800000123", procedure_code="care-01", municipality_code="131016",
        application_kind="新規申請", original_arrival_number="", applied_at=APPLIED_AT,
        applicant=Applicant(name="見本　幸子"), form_id="care-01", form_version="1",
        form_filename="care-01.xml",
        attachments=tuple(AttachmentInfo(title, name, media) for name, (title, media, _) in attachments.items()))
    package = VerifiedPackage(manifest=manifest, form_xml=form_xml, signed=signed,
                              attachments={name: data for name, (_, _, data) in attachments.items()})
    return FormContext(package=package, form=parse_xml(form_xml, what="care-01.xml"), settings=settings)


def problems_for(form_xml: bytes, attachments: Mapping[str, tuple[str, str, bytes]] = {},
                 settings: Mapping[str, object] = {}) -> list[Problem]:
    """Schema problems if the schema fails (as the pipeline stops there), else rule problems."""
    context = context_for(form_xml, attachments, settings)
    try:
        validate_form(PROCEDURE, form_xml, context.form)
    except SchemaError as err:
        return list(err.problems)
    return run_checks(PROCEDURE, context)


def with_birth_date(variant: str, born: str) -> bytes:
    form_xml = plugin.sample_form(variant)
    start = form_xml.index("<生年月日>".encode()) + len("<生年月日>".encode())
    end = form_xml.index("</生年月日>".encode())
    return form_xml[:start] + born.encode() + form_xml[end:]


# --------------------------------------------------------------------------- the samples


def test_samples_exist() -> None:
    assert len(VALID) >= 2 and len(INVALID) >= 5
    assert plugin.sample_form() == plugin.sample_form("valid-first-category")


@pytest.mark.parametrize("variant", VALID)
def test_valid_sample_validates_and_transforms_to_a_valid_record(variant: str) -> None:
    sample = plugin.sample(variant)
    context = context_for(sample.form_xml, sample.attachments)
    validate_form(PROCEDURE, sample.form_xml, context.form)
    assert run_checks(PROCEDURE, context) == []
    record = PROCEDURE.transform(context)
    assert (record.target, record.media_type, record.filename) == (
        "kaigo-hoken", "application/xml", "2026112800000123_care-01.xml")
    validate_target(record)


@pytest.mark.parametrize("variant", INVALID)
def test_invalid_sample_yields_exactly_its_expected_problems(variant: str) -> None:
    sample = plugin.sample(variant)
    found = problems_for(sample.form_xml, sample.attachments)
    expected = plugin.expected_problems(variant)
    assert expected, f"{variant} has no expected problems"
    assert sorted((p.code, p.path) for p in found) == sorted((e["code"], e["path"]) for e in expected)
    for problem in found:
        assert isinstance(problem.line, int) and problem.line > 0
        assert problem.message and not problem.message.isascii()


# --------------------------------------------------------------------------- the record


def test_first_category_record() -> None:
    sample = plugin.sample("valid-first-category")
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
    sample = plugin.sample("valid-second-category-wareki")
    root = etree.fromstring(PROCEDURE.transform(context_for(sample.form_xml, sample.attachments)).content)
    person = root.find("t:被保険者", T)
    assert person.find("t:被保険者番号", T) is None
    assert person.findtext("t:被保険者区分コード", namespaces=T) == "2"
    assert person.findtext("t:生年月日/t:西暦", namespaces=T) == "19680701"
    assert root.findtext("t:申請年月日/t:西暦", namespaces=T) == "20261128"
    assert root.findtext("t:特定疾病名", namespaces=T) == "脳血管疾患"
    assert root.findtext("t:本人の居所/t:施設名", namespaces=T) == "見本総合病院"
    assert root.find("t:添付書類一覧", T).get("件数") == "1"


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
    assert [p.code for p in problems_for(form_xml, plugin.sample_attachments(variant))] == codes


def test_insurer_check_digit_is_opt_in() -> None:
    form_xml = plugin.sample_form("valid").replace(b">131011<", b">131012<")
    assert problems_for(form_xml) == []
    found = problems_for(form_xml, settings={"INSURER_CHECK_DIGIT": "mod10-21"})
    assert [(p.code, p.path) for p in found] == [("rule-insurer-number", "/要介護認定申請書/被保険者/保険者番号")]
    assert "検査用数字" in found[0].message
    assert problems_for(plugin.sample_form("valid"), settings={"INSURER_CHECK_DIGIT": "mod10-21"}) == []


def test_agent_other_than_other_needs_an_office_number() -> None:
    form_xml = plugin.sample_form("valid").replace("    <事業所番号>1370000001</事業所番号>\n".encode(), b"")
    assert [(p.code, p.path) for p in problems_for(form_xml)] == [
        ("rule-office-number-missing", "/要介護認定申請書/提出代行者/種別")]
    other = form_xml.replace("<種別>地域包括支援センター</種別>".encode(), "<種別>その他</種別>".encode())
    assert problems_for(other) == []


# --------------------------------------------------------------------------- registration


def test_registered_through_its_entry_point() -> None:
    (entry,) = [e for e in entry_points(group="gateway.plugins") if e.name == "care_01"]
    assert entry.load() is plugin
    pm = make_plugin_manager({"LOAD_ENTRYPOINTS": False}, extra=[plugin])
    (procedures,) = pm.hook.register_procedures(config={})
    (procedure,) = procedures
    assert (procedure.code, procedure.version, procedure.target) == ("care-01", "1", "kaigo-hoken")
    assert procedure.form_namespace == "urn:jp:gateway:form:care-01:1"
    assert procedure.form_schema.is_file() and procedure.target_schema.is_file()
