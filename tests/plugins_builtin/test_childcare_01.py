"""childcare-01 (児童手当 認定請求) tested with its own samples, end to end through validation.

What every procedure is tested for lives in :mod:`procedure_cases`; here, what is childcare-01's own.
"""

from __future__ import annotations

from functools import partial

import pytest
from lxml import etree

import plugins.childcare_01 as plugin
from gateway.validation import run_checks, validate_form, validate_target
from tests.plugins_builtin import procedure_cases as cases

PROCEDURE = plugin.PROCEDURE
SAMPLES = plugin.SAMPLES
TARGET_NS = {"t": "urn:jp:gateway:target:jidou-teate:1"}
context_for = partial(cases.context_for, PROCEDURE)
problems_for = partial(cases.problems_for, PROCEDURE)


def transformed(variant: str) -> etree._Element:
    sample = SAMPLES.sample(variant)
    record = PROCEDURE.transform(context_for(sample.form_xml, sample.attachments))
    validate_target(record)
    return etree.fromstring(record.content)


# --------------------------------------------------------------------------- the samples


def test_samples_are_complete() -> None:
    cases.assert_samples_complete(SAMPLES)
    assert SAMPLES.default_variant == "valid-two-children"


@pytest.mark.parametrize("variant", SAMPLES.variants())
def test_sample_does_what_its_name_says(variant: str) -> None:
    cases.assert_sample(PROCEDURE, SAMPLES, variant)


def test_a_mistyped_date_is_explained_in_both_forms() -> None:
    form_xml = SAMPLES.form().replace(b">1980-04-15<", b">1980-13-15<")
    (problem,) = problems_for(form_xml, SAMPLES.attachments())
    assert (problem.code, problem.path, problem.line) == ("schema-invalid", "/認定請求書/請求者/生年月日", 8)
    assert "2026-11-28 または 令和8年11月28日" in problem.message


def test_no_problem_message_repeats_a_my_number() -> None:
    sample = SAMPLES.sample("invalid-mynumber")
    (problem,) = problems_for(sample.form_xml, sample.attachments)
    assert "456789012347" not in problem.message and "9012347" not in problem.message


def test_sample_attachments() -> None:
    attachments = SAMPLES.attachments()
    assert {title for title, _, _ in attachments.values()} == {"健康保険の資格確認書類", "別居監護申立書"}
    assert {media for _, media, _ in attachments.values()} == {"application/pdf"}
    assert SAMPLES.attachments("valid-minimal-wareki") == {}


def test_module_level_sample_names_are_the_sample_sets() -> None:
    assert PROCEDURE.sample == plugin.sample == SAMPLES.sample
    assert plugin.sample_form() == SAMPLES.form() and plugin.sample_variants() == SAMPLES.variants()
    assert plugin.expected_problems("invalid-account") == SAMPLES.expected_problems("invalid-account")
    assert plugin.sample_attachments("valid-minimal-wareki") == {}


# --------------------------------------------------------------------------- the record


def test_record_carries_dates_in_every_form_and_the_children() -> None:
    root = transformed("valid-two-children")
    t = TARGET_NS
    assert root.tag == "{urn:jp:gateway:target:jidou-teate:1}児童手当認定請求データ" and root.get("版") == "1"
    assert root.findtext("t:管理情報/t:到達番号", namespaces=t) == cases.ARRIVAL_NUMBER
    assert root.findtext("t:管理情報/t:本人確認", namespaces=t) == "電子署名"
    born = root.find("t:請求者/t:生年月日", t)
    assert born.get("精度") == "day"
    assert [born.findtext(f"t:{n}", namespaces=t) for n in ("原文", "西暦", "和暦")] == ["1980-04-15", "19800415", "3550415"]
    assert root.findtext("t:請求者/t:性別コード", namespaces=t) == "1"
    assert root.findtext("t:請求者/t:公務員", namespaces=t) == "false"
    assert [e.tag.split("}")[1] for e in root.find("t:配偶者", t)] == ["氏名", "氏名カナ", "個人番号", "職業"]
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
    form_xml = SAMPLES.form("valid-minimal-wareki").replace("<生年月日>平成2年4月15日<".encode(), "<生年月日>年月日不詳<".encode())
    context = context_for(form_xml)
    validate_form(PROCEDURE, form_xml, context.form)
    assert run_checks(PROCEDURE, context) == []
    record = PROCEDURE.transform(context)
    validate_target(record)
    born = etree.fromstring(record.content).find("t:請求者/t:生年月日", TARGET_NS)
    assert born.get("精度") == "unknown" and born.findtext("t:原文", namespaces=TARGET_NS) == "年月日不詳"
    assert born.find("t:西暦", TARGET_NS) is None


def test_transform_is_fast() -> None:
    cases.assert_transform_is_fast(PROCEDURE, SAMPLES)


# --------------------------------------------------------------------------- rules in detail


@pytest.mark.parametrize("born,ok", [("2008-04-01", False), ("2008-04-02", True), ("2026-11-28", True)])
def test_child_age_limit_is_the_first_31_march_after_reaching_18(born: str, ok: bool) -> None:
    # reaching 18 on 2026-03-31 (born 2008-04-01) ends on 2026-03-31; born a day later, on 2027-03-31
    form_xml = SAMPLES.form("valid-minimal-wareki").replace("令和元年5月1日".encode(), born.encode())
    codes = [p.code for p in problems_for(form_xml)]
    assert codes == ([] if ok else ["rule-child-age"])


def test_health_insurance_document_can_be_switched_off() -> None:
    form_xml = SAMPLES.form("invalid-attachments")
    found = problems_for(form_xml, settings={"REQUIRE_HEALTH_INSURANCE_DOCUMENT": False})
    assert [(p.code, p.path) for p in found] == [("rule-attachment-missing", "/認定請求書/児童[2]/同居別居")]


def test_attachment_titles_match_by_keyword() -> None:
    pdf = SAMPLES.attachments()["hoken.pdf"][2]
    attachments = {"a.pdf": ("健康保険の資格を確認できる書類", "application/pdf", pdf),
                   "b.pdf": ("別居監護申立書", "application/pdf", pdf)}
    assert problems_for(SAMPLES.form(), attachments) == []


@pytest.mark.parametrize("item,old,path", [
    ("請求年月日", "2026-11-28", "/認定請求書/請求年月日"),
    ("生年月日", "1980-04-15", "/認定請求書/請求者/生年月日"),   # no other rule reads it
    ("生年月日", "2015-06-01", "/認定請求書/児童[1]/生年月日"),
])
@pytest.mark.parametrize("day", ["1872-12-31", "1800-01-01", "0001-01-01"])
def test_a_western_date_before_1873_is_refused_as_outside_the_eras(item: str, old: str, path: str, day: str) -> None:
    """Schema-valid, but no era can express it: refused by the rules, never left to the transform."""
    form_xml = SAMPLES.form().replace(f"<{item}>{old}<".encode(), f"<{item}>{day}<".encode())
    found = [(p.code, p.path) for p in problems_for(form_xml, SAMPLES.attachments())]
    assert ("rule-date-era", path) in found
    assert {code for code, _ in found} <= {"rule-date-era", "rule-child-age"}
    problem = next(p for p in problems_for(form_xml, SAMPLES.attachments()) if p.code == "rule-date-era")
    assert problem.message == (f"{item}「{day}」は明治6年1月1日（1873年1月1日）より前の日付です。"
                               "太陽暦の施行前の日付は和暦に換算できないため受け付けられません")
    first_day = SAMPLES.form().replace(f"<{item}>{old}<".encode(), f"<{item}>1873-01-01<".encode())
    assert "rule-date-era" not in [p.code for p in problems_for(first_day, SAMPLES.attachments())]


def test_a_birth_date_before_1873_is_refused_by_the_pipeline_not_left_validated(app, pki) -> None:
    """The bug: 1800-01-01 passed every rule, the transform failed, the application stayed in `validated`."""
    from dataclasses import replace

    from gateway.errors import RuleError
    from gateway.pipeline import Pipeline
    from gateway.plugins import Plugins, make_plugin_manager
    from gateway.samples import make_sample_package, sample_for
    from gateway.store import Store

    config = app.config
    plugins = Plugins(make_plugin_manager(config), config)
    store = Store(config["DATABASE_URL"], on_transition=plugins.state_changed)
    store.upgrade()
    pipeline = Pipeline.from_config(config, plugins, store)
    sample = sample_for(config, "childcare-01")
    sample = replace(sample, form_xml=sample.form_xml.replace(b">1980-04-15<", b">1800-01-01<"))
    package = make_sample_package(config, "childcare-01", sample, pki_dir=pki.directory,
                                  arrival_number="202611280000099001")
    with pytest.raises(RuleError) as caught:
        pipeline.intake(package, source="test")
    assert [(p.code, p.path) for p in caught.value.problems] == [("rule-date-era", "/認定請求書/請求者/生年月日")]
    view = store.get_application("202611280000099001")
    assert view.state == "refused" and not view.records
    assert view.application.error_code == "rule-violation"


def test_neither_account_nor_public_account_is_refused() -> None:
    form_xml = SAMPLES.form("valid-minimal-wareki").replace(
        "<公金受取口座を利用>true</公金受取口座を利用>".encode(), "<公金受取口座を利用>false</公金受取口座を利用>".encode())
    assert [(p.code, p.path) for p in problems_for(form_xml)] == [("rule-account-choice", "/認定請求書/振込先")]


# --------------------------------------------------------------------------- registration


def test_registered_through_its_entry_point() -> None:
    procedure = cases.assert_registered(plugin, "childcare_01")
    assert (procedure.code, procedure.version, procedure.target) == ("childcare-01", "1", "jidou-teate")
    assert procedure.form_namespace == "urn:jp:gateway:form:childcare-01:1"
    assert procedure.channel == "filedrop" and procedure.required_attachments == ()
