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
from dataclasses import dataclass, field

from gateway import FormContext, Problem
from gateway.identifiers import (
    check_insured_number,
    check_insurer_number,
    check_my_number,
    check_office_number,
)
from gateway.validation import (
    Dates,
    Items,
    date_problem,
    has_attachment,
    items_of,
    once_per_package,
    problem_at,
    reference_date,
    text_of,
)
from gateway.wareki import legal_age_on

FORM_NAMESPACE = "urn:jp:gateway:form:care-01:1"
NS = {"f": FORM_NAMESPACE}

FIRST_CATEGORY_AGE = 65   # 第1号被保険者: 65歳以上
SECOND_CATEGORY_AGE = 40  # 第2号被保険者: 40歳以上65歳未満 (医療保険加入者)
MEDICAL_INSURANCE_COPY = ("医療保険",)
"""Titles vary (被保険者証の写し, 資格確認書の写し): any attachment naming 医療保険 counts."""


@dataclass(frozen=True)
class Application:
    """The form as the rules and the transform read it: items by local name, block by block.

    ``form`` holds the form's own items (申請年月日, 申請区分, 特定疾病名, 情報提供への同意) and
    the blocks' elements; the blocks' items follow. An optional block the form leaves out is None.
    """

    form: Items
    insured: Items
    """被保険者"""
    applicant: Items
    """申請者"""
    agent: Items | None
    """提出代行者"""
    residence: Items
    """本人の居所"""
    doctor: Items
    """主治医"""
    medical_insurance: Items | None
    """医療保険"""
    contact: Items
    """訪問調査の連絡先"""
    dates: Dates = field(default_factory=Dates)
    """parse_date for this form's dates: the rules and the transform read each one once."""


@once_per_package
def read_application(context: FormContext) -> Application:
    """The schema-valid form's items, read once per package: the checks and the transform share it."""
    items = items_of(context.form)

    def block(name: str) -> Items | None:
        elem = items.get(name)
        return items_of(elem) if elem is not None else None

    return Application(form=items, insured=items_of(items["被保険者"]), applicant=items_of(items["申請者"]),
                       agent=block("提出代行者"), residence=items_of(items["本人の居所"]),
                       doctor=items_of(items["主治医"]), medical_insurance=block("医療保険"),
                       contact=items_of(items["訪問調査の連絡先"]))


def application_date(context: FormContext) -> dt.date:
    """申請年月日 when it is an exact day, else the application's arrival day."""
    app = read_application(context)
    return app.dates(app.form["申請年月日"].text or "").value or reference_date(context)


def check_my_numbers(context: FormContext) -> Iterator[Problem]:
    elem = read_application(context).insured["個人番号"]  # the form's only 個人番号
    if not check_my_number(text_of(elem)):
        yield problem_at(elem, "個人番号の検査用数字が一致しません。番号を確認してください",
                         "rule-mynumber-check-digit")


def check_numbers(context: FormContext) -> Iterator[Problem]:
    """被保険者番号 10 digits, 保険者番号 6 (check digit if configured), 事業所番号 10."""
    app = read_application(context)
    insured = app.insured.get("被保険者番号")
    if insured is not None and not check_insured_number(text_of(insured)):
        yield problem_at(insured, f"被保険者番号は10桁の数字です（{len(text_of(insured))}桁です）", "rule-insured-number")
    insurer = app.insured["保険者番号"]
    rule = context.settings.get("INSURER_CHECK_DIGIT") or None
    if not check_insurer_number(text_of(insurer), check_digit_rule=rule):
        detail = f"{len(text_of(insurer))}桁です" if len(text_of(insurer)) != 6 else "検査用数字が一致しません"
        yield problem_at(insurer, f"保険者番号は6桁の数字です（{detail}）", "rule-insurer-number")
    office = (app.agent or {}).get("事業所番号")
    if office is not None and not check_office_number(text_of(office)):
        yield problem_at(office, f"事業所番号は10桁の数字です（{len(text_of(office))}桁です）", "rule-office-number")


def check_dates(context: FormContext) -> Iterator[Problem]:
    """申請年月日 is an exact past day; the birth date may be partial, as the register allows."""
    today = reference_date(context)
    app = read_application(context)
    for elem, register_form in ((app.form["申請年月日"], False), (app.insured["生年月日"], True)):
        if problem := date_problem(elem, today=today, register_form=register_form, parse=app.dates):
            yield problem


def check_category(context: FormContext) -> Iterator[Problem]:
    """第1号 (65+) / 第2号 (40-64) must match the age on the application date.

    Unknown or partial birth dates are left to staff.
    """
    app = read_application(context)
    born_elem = app.insured["生年月日"]
    born = app.dates(text_of(born_elem)).value
    on = application_date(context)
    if born is None or born > on:
        return
    age = legal_age_on(born, on)
    if age < SECOND_CATEGORY_AGE:
        yield problem_at(born_elem, f"申請日に{age}歳です。40歳未満の方は介護保険の被保険者ではありません",
                         "rule-insured-age")
        return
    expected = "第1号" if age >= FIRST_CATEGORY_AGE else "第2号"
    category = app.insured["被保険者区分"]
    if text_of(category) != expected:
        yield problem_at(category, f"申請日に{age}歳のため被保険者区分は{expected}です", "rule-insured-category")


def check_category_requirements(context: FormContext) -> Iterator[Problem]:
    """第1号 needs the 被保険者番号; 第2号 needs 特定疾病名, 医療保険 and a copy of its card."""
    app = read_application(context)
    category = app.insured["被保険者区分"]
    if text_of(category) == "第1号":
        if not text_of(app.insured.get("被保険者番号")):
            yield problem_at(category, "第1号被保険者は被保険者番号を記入してください", "rule-insured-number-missing")
        return
    if not text_of(app.form.get("特定疾病名")):
        yield problem_at(category, "第2号被保険者は特定疾病名を記入してください", "rule-specified-disease")
    if app.medical_insurance is None:
        yield problem_at(category, "第2号被保険者は医療保険（保険者名・番号）を記入してください",
                         "rule-medical-insurance-missing")
    if not has_attachment(context, *MEDICAL_INSURANCE_COPY):
        yield problem_at(category, "第2号被保険者は「医療保険の被保険者証の写し」を添付してください",
                         "rule-attachment-missing")


def check_applicant(context: FormContext) -> Iterator[Problem]:
    """Someone other than the insured person must give their name."""
    applicant = read_application(context).applicant
    relation = applicant["本人との関係"]
    if text_of(relation) != "本人" and not text_of(applicant.get("氏名")):
        yield problem_at(relation, "本人以外が申請するときは申請者の氏名を記入してください", "rule-applicant-name")


def check_residence(context: FormContext) -> Iterator[Problem]:
    """入院 / 入所 need the facility's name and address (認定調査 goes there)."""
    residence = read_application(context).residence
    kind = residence["区分"]
    if text_of(kind) != "自宅" and not (text_of(residence.get("施設名")) and text_of(residence.get("所在地"))):
        yield problem_at(kind, f"{text_of(kind)}中のときは施設名と所在地を記入してください", "rule-residence-facility")


def check_agent(context: FormContext) -> Iterator[Problem]:
    """A 提出代行者 other than その他 is a designated provider and gives its 事業所番号."""
    agent = read_application(context).agent
    if agent is None:
        return
    kind = agent["種別"]
    if text_of(kind) != "その他" and "事業所番号" not in agent:
        yield problem_at(kind, f"{text_of(kind)}が提出代行するときは事業所番号を記入してください",
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
