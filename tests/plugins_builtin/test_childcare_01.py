"""childcare-01 (児童手当 認定請求) tested with its own samples, end to end through validation."""

from __future__ import annotations

import datetime as dt
import timeit
from collections.abc import Mapping
from importlib.metadata import entry_points

import pytest
from lxml import etree

import plugins.childcare_01 as plugin
from gateway.errors import Problem, SchemaError
from gateway.models import Applicant, AttachmentInfo, FormContext, Manifest, TargetRecord, VerifiedPackage
from gateway.plugins import make_plugin_manager
from gateway.validation import run_checks, validate_form, validate_target
from gateway.xmlsafe import parse_xml

PROCEDURE = plugin.PROCEDURE
JST = dt.timezone(dt.timedelta(hours=9))
APPLIED_AT = dt.datetime(2026, 11, 28, 10, 15, tzinfo=JST)
VALID = [v for v in plugin.sample_variants() if v.startswith("valid")]
INVALID = [v for v in plugin.sample_variants() if v.startswith("invalid")]
TARGET_NS = {"t": "urn:jp:gateway:target:jidou-teate:1"}


def context_for(form_xml: bytes, attachments: Mapping[str, tuple[str, str, bytes]] = {},
                settings: Mapping[str, object] = {}) -> FormContext:
    manifest = Manifest(
        arrival_number="202611280000012345", procedure_code="childcare-01", municipality_code="131016",
        application_kind="新規申請", original_arrival_number="", applied_at=APPLIED_AT,
        applicant=Applicant(name="見本　太郎"), form_id="childcare-01", form_version="1",
        form_filename="childcare-01.xml",
        attachments=tuple(AttachmentInfo(title, name, media) for name, (title, media, _) in attachments.items()))
    package = VerifiedPackage(manifest=manifest, form_xml=form_xml,
                              attachments={name: data for name, (_, _, data) in attachments.items()})
    return FormContext(package=package, form=parse_xml(form_xml, what="childcare-01.xml"), settings=settings)


def problems_for(form_xml: bytes, attachments: Mapping[str, tuple[str, str, bytes]] = {},
                 settings: Mapping[str, object] = {}) -> list[Problem]:
    """Schema problems if the schema fails (as the pipeline stops there), else rule problems."""
    context = context_for(form_xml, attachments, settings)
    try:
        validate_form(PROCEDURE, form_xml, context.form)
    except SchemaError as err:
        return list(err.problems)
    return run_checks(PROCEDURE, context)


def transformed(variant: str) -> etree._Element:
    sample = plugin.sample(variant)
    record = PROCEDURE.transform(context_for(sample.form_xml, sample.attachments))
    validate_target(record)
    return etree.fromstring(record.content)


# --------------------------------------------------------------------------- the samples


def test_samples_exist() -> None:
    assert len(VALID) >= 2 and len(INVALID) >= 5
    assert plugin.sample_form() == plugin.sample_form("valid-two-children")


@pytest.mark.parametrize("variant", VALID)
def test_valid_sample_validates_and_transforms_to_a_valid_record(variant: str) -> None:
    sample = plugin.sample(variant)
    context = context_for(sample.form_xml, sample.attachments)
    validate_form(PROCEDURE, sample.form_xml, context.form)
    assert run_checks(PROCEDURE, context) == []
    record = PROCEDURE.transform(context)
    assert isinstance(record, TargetRecord)
    assert (record.target, record.media_type, record.filename) == (
        "jidou-teate", "application/xml", "202611280000012345_childcare-01.xml")
    assert record.schema == PROCEDURE.target_schema and record.schema.is_file()
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


def test_a_mistyped_date_is_explained_in_both_forms() -> None:
    form_xml = plugin.sample_form("valid").replace(b">1988-04-15<", b">1988-13-15<")
    (problem,) = problems_for(form_xml, plugin.sample_attachments("valid"))
    assert (problem.code, problem.path, problem.line) == ("schema-invalid", "/認定請求書/請求者/生年月日", 8)
    assert "2026-11-28 または 令和8年11月28日" in problem.message


def test_no_problem_message_repeats_a_my_number() -> None:
    sample = plugin.sample("invalid-mynumber")
    (problem,) = problems_for(sample.form_xml, sample.attachments)
    assert "456789012347" not in problem.message and "9012347" not in problem.message


def test_sample_attachments_are_real_pdfs() -> None:
    attachments = plugin.sample_attachments("valid")
    assert {title for title, _, _ in attachments.values()} == {"健康保険の資格確認書類", "別居監護申立書"}
    for title, media, data in attachments.values():
        assert media == "application/pdf" and data.startswith(b"%PDF-1.4") and data.rstrip().endswith(b"%%EOF")
        assert data[int(data.rsplit(b"startxref\n", 1)[1].split()[0]):].startswith(b"xref")
    assert plugin.sample_attachments("valid-minimal-wareki") == {}
    with pytest.raises(KeyError):
        plugin.sample("no-such-sample")


# --------------------------------------------------------------------------- the record


def test_record_carries_dates_in_every_form_and_the_children() -> None:
    root = transformed("valid-two-children")
    t = TARGET_NS
    assert root.tag == "{urn:jp:gateway:target:jidou-teate:1}児童手当認定請求データ" and root.get("版") == "1"
    assert root.findtext("t:管理情報/t:到達番号", namespaces=t) == "202611280000012345"
    assert root.findtext("t:管理情報/t:本人確認", namespaces=t) == "電子署名"
    born = root.find("t:請求者/t:生年月日", t)
    assert born.get("精度") == "day"
    assert [born.findtext(f"t:{n}", namespaces=t) for n in ("原文", "西暦", "和暦")] == ["1988-04-15", "19880415", "3630415"]
    assert root.findtext("t:請求者/t:性別コード", namespaces=t) == "1"
    children = root.find("t:児童一覧", t)
    assert children.get("件数") == "2" and [c.get("連番") for c in children] == ["1", "2"]
    assert children[1].findtext("t:同居別居区分", namespaces=t) == "別居"
    assert children[1].findtext("t:別居先住所", namespaces=t) == "長野県長野市大字長野１－１"
    assert root.findtext("t:振込先/t:口座/t:口座番号", namespaces=t) == "1234567"
    assert root.find("t:添付書類一覧", t).get("件数") == "2"


def test_record_from_wareki_form_and_public_account() -> None:
    root = transformed("valid-minimal-wareki")
    t = TARGET_NS
    claim = root.find("t:請求年月日", t)
    assert [claim.findtext(f"t:{n}", namespaces=t) for n in ("原文", "西暦", "和暦")] == ["令和8年11月28日", "20261128", "5081128"]
    child_born = root.find("t:児童一覧/t:児童/t:生年月日", t)
    assert child_born.findtext("t:西暦", namespaces=t) == "20190501"
    assert child_born.findtext("t:和暦", namespaces=t) == "5010501"
    assert root.find("t:振込先/t:公金受取口座", t) is not None and root.find("t:配偶者", t) is None


def test_unknown_birth_date_is_kept_as_written() -> None:
    form_xml = plugin.sample_form("valid-minimal-wareki").replace("<生年月日>平成2年4月15日<".encode(), "<生年月日>年月日不詳<".encode())
    context = context_for(form_xml)
    validate_form(PROCEDURE, form_xml, context.form)
    assert run_checks(PROCEDURE, context) == []
    record = PROCEDURE.transform(context)
    validate_target(record)
    born = etree.fromstring(record.content).find("t:請求者/t:生年月日", TARGET_NS)
    assert born.get("精度") == "unknown" and born.findtext("t:原文", namespaces=TARGET_NS) == "年月日不詳"
    assert born.find("t:西暦", TARGET_NS) is None


def test_transform_is_fast() -> None:
    sample = plugin.sample("valid")
    context = context_for(sample.form_xml, sample.attachments)
    per_record = min(timeit.repeat(lambda: PROCEDURE.transform(context), number=20, repeat=5)) / 20
    assert per_record < 0.002  # seconds; ~0.2-0.3 ms measured, generous for a noisy CI machine


# --------------------------------------------------------------------------- rules in detail


@pytest.mark.parametrize("born,ok", [("2008-04-01", False), ("2008-04-02", True), ("2026-11-28", True)])
def test_child_age_limit_is_the_first_31_march_after_reaching_18(born: str, ok: bool) -> None:
    # reaching 18 on 2026-03-31 (born 2008-04-01) ends on 2026-03-31; born a day later, on 2027-03-31
    form_xml = plugin.sample_form("valid-minimal-wareki").replace("令和元年5月1日".encode(), born.encode())
    codes = [p.code for p in problems_for(form_xml)]
    assert codes == ([] if ok else ["rule-child-age"])


def test_health_insurance_document_can_be_switched_off() -> None:
    form_xml = plugin.sample_form("invalid-attachments")
    found = problems_for(form_xml, settings={"REQUIRE_HEALTH_INSURANCE_DOCUMENT": False})
    assert [(p.code, p.path) for p in found] == [("rule-attachment-missing", "/認定請求書/児童[2]/同居別居")]


def test_attachment_titles_match_by_keyword() -> None:
    form_xml = plugin.sample_form("valid")
    pdf = plugin.sample_attachments("valid")["hoken.pdf"][2]
    attachments = {"a.pdf": ("健康保険の資格を確認できる書類", "application/pdf", pdf),
                   "b.pdf": ("別居監護申立書", "application/pdf", pdf)}
    assert problems_for(form_xml, attachments) == []


def test_neither_account_nor_public_account_is_refused() -> None:
    form_xml = plugin.sample_form("valid-minimal-wareki").replace(
        "<公金受取口座を利用>true</公金受取口座を利用>".encode(), "<公金受取口座を利用>false</公金受取口座を利用>".encode())
    assert [(p.code, p.path) for p in problems_for(form_xml)] == [("rule-account-choice", "/認定請求書/振込先")]


# --------------------------------------------------------------------------- registration


def test_registered_through_its_entry_point() -> None:
    (entry,) = [e for e in entry_points(group="gateway.plugins") if e.name == "childcare_01"]
    assert entry.load() is plugin
    pm = make_plugin_manager({"LOAD_ENTRYPOINTS": False}, extra=[plugin])
    (procedures,) = pm.hook.register_procedures(config={})
    (procedure,) = procedures
    assert (procedure.code, procedure.version, procedure.target) == ("childcare-01", "1", "jidou-teate")
    assert procedure.form_namespace == "urn:jp:gateway:form:childcare-01:1"
    assert procedure.form_schema.is_file() and procedure.sample is not None
