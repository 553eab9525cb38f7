"""Business rules of care-01 (要介護・要支援認定の申請), run after the form passed its schema.

Each check takes the :class:`~gateway.FormContext` and yields located problems with a stable
``rule-…`` code. Messages never repeat a 個人番号 (problems are stored and shown to staff).

Settings (``PROCEDURES."care-01"`` in the gateway configuration):

``INSURER_CHECK_DIGIT`` (default none)
    Check the 保険者番号 check digit with a rule from
    :data:`gateway.identifiers.INSURER_CHECK_DIGIT_RULES` (``"mod10-21"``). The rule is not
    published for 介護保険, so it is off unless the municipality turns it on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from lxml import etree

from gateway import FormContext, Problem
from gateway.identifiers import (
    check_insured_number,
    check_insurer_number,
    check_my_number,
    check_office_number,
)
from gateway.validation import date_problem, has_attachment, problem_at, reference_date
from gateway.wareki import legal_age_on, parse_date

FORM_NAMESPACE = "urn:jp:gateway:form:care-01:1"
NS = {"f": FORM_NAMESPACE}

FIRST_CATEGORY_AGE = 65   # 第1号被保険者: 65歳以上
SECOND_CATEGORY_AGE = 40  # 第2号被保険者: 40歳以上65歳未満 (医療保険加入者)
MEDICAL_INSURANCE_COPY = ("医療保険",)
"""Titles vary (被保険者証の写し, 資格確認書の写し): any attachment naming 医療保険 counts."""


def text(elem: etree._Element | None) -> str:
    return (elem.text or "").strip() if elem is not None else ""


def application_date(context: FormContext) -> dt.date:
    """申請年月日 when it is an exact day, else the application's arrival day."""
    written = parse_date(context.form.findtext("f:申請年月日", namespaces=NS) or "")
    return written.value or reference_date(context)


def check_my_numbers(context: FormContext) -> Iterator[Problem]:
    for elem in context.form.iterfind(".//f:個人番号", NS):
        if not check_my_number(text(elem)):
            yield problem_at(elem, "個人番号の検査用数字が一致しません。番号を確認してください",
                             "rule-mynumber-check-digit")


def check_numbers(context: FormContext) -> Iterator[Problem]:
    """被保険者番号 10 digits, 保険者番号 6 (check digit if configured), 事業所番号 10."""
    form = context.form
    insured = form.find("f:被保険者/f:被保険者番号", NS)
    if insured is not None and not check_insured_number(text(insured)):
        yield problem_at(insured, f"被保険者番号は10桁の数字です（{len(text(insured))}桁です）", "rule-insured-number")
    insurer = form.find("f:被保険者/f:保険者番号", NS)
    rule = context.settings.get("INSURER_CHECK_DIGIT") or None
    if insurer is not None and not check_insurer_number(text(insurer), check_digit_rule=rule):
        detail = f"{len(text(insurer))}桁です" if len(text(insurer)) != 6 else "検査用数字が一致しません"
        yield problem_at(insurer, f"保険者番号は6桁の数字です（{detail}）", "rule-insurer-number")
    office = form.find("f:提出代行者/f:事業所番号", NS)
    if office is not None and not check_office_number(text(office)):
        yield problem_at(office, f"事業所番号は10桁の数字です（{len(text(office))}桁です）", "rule-office-number")


def check_dates(context: FormContext) -> Iterator[Problem]:
    """申請年月日 is an exact past day; the birth date may be partial, as the register allows."""
    today = reference_date(context)
    for path, register_form in (("f:申請年月日", False), ("f:被保険者/f:生年月日", True)):
        elem = context.form.find(path, NS)
        if elem is not None and (problem := date_problem(elem, today=today, register_form=register_form)):
            yield problem


def check_category(context: FormContext) -> Iterator[Problem]:
    """第1号 (65+) / 第2号 (40-64) must match the age on the application date.

    Unknown or partial birth dates are left to staff.
    """
    person = context.form.find("f:被保険者", NS)
    born_elem = person.find("f:生年月日", NS)
    category = person.find("f:被保険者区分", NS)
    born = parse_date(text(born_elem)).value
    on = application_date(context)
    if born is None or born > on:
        return
    age = legal_age_on(born, on)
    if age < SECOND_CATEGORY_AGE:
        yield problem_at(born_elem, f"申請日に{age}歳です。40歳未満の方は介護保険の被保険者ではありません",
                         "rule-insured-age")
        return
    expected = "第1号" if age >= FIRST_CATEGORY_AGE else "第2号"
    if text(category) != expected:
        yield problem_at(category, f"申請日に{age}歳のため被保険者区分は{expected}です", "rule-insured-category")


def check_category_requirements(context: FormContext) -> Iterator[Problem]:
    """第1号 needs the 被保険者番号; 第2号 needs 特定疾病名, 医療保険 and a copy of its card."""
    form = context.form
    category = form.find("f:被保険者/f:被保険者区分", NS)
    if text(category) == "第1号":
        if not text(form.find("f:被保険者/f:被保険者番号", NS)):
            yield problem_at(category, "第1号被保険者は被保険者番号を記入してください", "rule-insured-number-missing")
        return
    if not text(form.find("f:特定疾病名", NS)):
        yield problem_at(category, "第2号被保険者は特定疾病名を記入してください", "rule-specified-disease")
    if form.find("f:医療保険", NS) is None:
        yield problem_at(category, "第2号被保険者は医療保険（保険者名・番号）を記入してください",
                         "rule-medical-insurance-missing")
    if not has_attachment(context, *MEDICAL_INSURANCE_COPY):
        yield problem_at(category, "第2号被保険者は「医療保険の被保険者証の写し」を添付してください",
                         "rule-attachment-missing")


def check_applicant(context: FormContext) -> Iterator[Problem]:
    """Someone other than the insured person must give their name."""
    relation = context.form.find("f:申請者/f:本人との関係", NS)
    if text(relation) != "本人" and not text(context.form.find("f:申請者/f:氏名", NS)):
        yield problem_at(relation, "本人以外が申請するときは申請者の氏名を記入してください", "rule-applicant-name")


def check_residence(context: FormContext) -> Iterator[Problem]:
    """入院 / 入所 need the facility's name and address (認定調査 goes there)."""
    residence = context.form.find("f:本人の居所", NS)
    kind = residence.find("f:区分", NS)
    if text(kind) != "自宅" and not (text(residence.find("f:施設名", NS)) and text(residence.find("f:所在地", NS))):
        yield problem_at(kind, f"{text(kind)}中のときは施設名と所在地を記入してください", "rule-residence-facility")


def check_agent(context: FormContext) -> Iterator[Problem]:
    """A 提出代行者 other than その他 is a designated provider and gives its 事業所番号."""
    agent = context.form.find("f:提出代行者", NS)
    if agent is None:
        return
    kind = agent.find("f:種別", NS)
    if text(kind) != "その他" and agent.find("f:事業所番号", NS) is None:
        yield problem_at(kind, f"{text(kind)}が提出代行するときは事業所番号を記入してください",
                         "rule-office-number-missing")


CHECKS = (
    check_my_numbers,
    check_numbers,
    check_dates,
    check_category,
    check_category_requirements,
    check_applicant,
    check_residence,
    check_agent,
)
